from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from kronos_integration.forecast import Forecast
from kronos_integration.grid import FutureGrid
from kronos_integration.summary import bar_path, confidence, daily_predictions


def test_confidence_formula_and_its_fall_with_spread():
    assert confidence(np.full(10, 50.0)) == 1.0
    assert confidence(np.array([50.0])) is None
    closes = np.linspace(95, 105, 101)  # P10 96, P50 100, P90 104: spread 8 %
    assert confidence(closes) == pytest.approx(1 / (1 + 10 * 0.08))
    values = [confidence(100 + width * np.linspace(-1, 1, 51)) for width in (0.5, 2, 5, 20, 80)]
    assert all(a > b for a, b in pairwise(values))


def test_daily_predictions_read_each_days_last_bar():
    stamps = pd.DatetimeIndex(
        ["2025-03-10 10:00", "2025-03-10 16:00", "2025-03-11 10:00", "2025-03-11 16:00"]
    )
    grid = FutureGrid(stamps, (1, 3), pd.Timedelta(hours=6))
    closes = np.array(
        [[9, 11, 0, 20], [9, 9, 0, 30], [9, 13, 0, 40], [9, 7, 0, 50]], dtype=float
    )  # (S, L)
    paths = np.repeat(closes[:, :, None], 6, axis=2)
    forecast = Forecast(stamps, paths, (0.5,), seed=1)
    days = daily_predictions(forecast, grid, current_price=10.0)
    assert [d["timestamp"] for d in days] == ["2025-03-10T16:00:00", "2025-03-11T16:00:00"]
    assert [d["date"] for d in days] == ["2025-03-10", "2025-03-11"]
    assert days[0]["predicted_price"] == 10.0
    assert days[0]["probability_up"] == 0.5
    assert days[1]["probability_up"] == 1.0
    assert days[1]["quantiles"] == {"0.5": 35.0}
    path = bar_path(forecast)
    assert (
        len(path) == 4
        and path[3]["mean"]["close"] == 35.0
        and path[3]["quantiles"]["0.5"]["open"] == 35.0
    )
