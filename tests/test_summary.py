import numpy as np
import pandas as pd

from kronos_integration.confidence import day_confidence
from kronos_integration.forecast import Forecast
from kronos_integration.grid import FutureGrid
from kronos_integration.summary import bar_path, daily_predictions


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
    history_close = np.array([9.0, 11.0, 10.0])  # the current price is the last: 10
    days = daily_predictions(forecast, grid, history_close)
    assert [d["timestamp"] for d in days] == ["2025-03-10T16:00:00", "2025-03-11T16:00:00"]
    assert [d["date"] for d in days] == ["2025-03-10", "2025-03-11"]
    assert days[0]["predicted_price"] == 10.0
    assert days[0]["probability_up"] == 0.5
    assert days[1]["probability_up"] == 1.0
    assert days[1]["quantiles"] == {"0.5": 35.0}
    # Each day's confidence is read at its last bar, that many bars after the history.
    expected = day_confidence(closes[:, [1, 3]], 10.0, history_close, [2, 4])
    assert [d["confidence"] for d in days] == expected and None not in expected
    path = bar_path(forecast)
    assert (
        len(path) == 4
        and path[3]["mean"]["close"] == 35.0
        and path[3]["quantiles"]["0.5"]["open"] == 35.0
    )
