"""A forecast's summaries as JSON-ready data: per horizon day, and per future bar.

Confidence of a day is `1 / (1 + 10 * (P90 - P10) / P50)` over the sample closes of that day's last
bar: 1 when every sample path agrees, 0.5 when the 80 % band is 10 % of the median wide, falling
towards 0 as the spread widens (0 when the median is not above zero). With one sample there is no
spread to measure and it is null.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kronos_integration.forecast import CANDLE_COLUMNS, Forecast
from kronos_integration.grid import FutureGrid

CONFIDENCE_SCALE = 10.0
CONFIDENCE_BAND = (0.1, 0.5, 0.9)
CLOSE = CANDLE_COLUMNS.index("close")


def confidence(closes: np.ndarray) -> float | None:
    """Confidence from the spread of sample closes (shape (S,)); None when S < 2."""
    if closes.size < 2:
        return None
    low, median, high = np.quantile(closes, CONFIDENCE_BAND)
    if median <= 0:
        return 0.0
    return float(1.0 / (1.0 + CONFIDENCE_SCALE * (high - low) / median))


def quantile_key(level: float) -> str:
    """The JSON key of a quantile level, its shortest exact spelling: 0.1 -> "0.1",
    0.025 -> "0.025", 0.123456789 -> "0.123456789" (so distinct levels never share a key)."""
    return repr(float(level))


def daily_predictions(
    forecast: Forecast, grid: FutureGrid, current_price: float
) -> list[dict[str, Any]]:
    """One entry per horizon day, taken at that day's last bar."""
    quantiles = forecast.quantiles  # (Q, L, 6)
    mean = forecast.mean  # (L, 6)
    days = []
    for day, position in enumerate(grid.day_end_positions, start=1):
        closes = forecast.paths[:, position, CLOSE]  # (S,)
        stamp = grid.timestamps[position]
        days.append(
            {
                "day": day,
                "date": stamp.date().isoformat(),
                "timestamp": stamp.isoformat(),
                "predicted_price": float(mean[position, CLOSE]),
                "confidence": confidence(closes),
                "probability_up": float(np.mean(closes > current_price)),
                "quantiles": {
                    quantile_key(level): float(quantiles[i, position, CLOSE])
                    for i, level in enumerate(forecast.quantile_levels)
                },
            }
        )
    return days


def bar_path(forecast: Forecast) -> list[dict[str, Any]]:
    """Every predicted bar: its sample-mean OHLCV and the OHLCV of each quantile level."""
    quantiles = forecast.quantiles  # (Q, L, 6)
    mean = forecast.mean  # (L, 6)

    def candle(values: np.ndarray) -> dict[str, float]:
        return {name: float(v) for name, v in zip(CANDLE_COLUMNS, values, strict=True)}

    return [
        {
            "timestamp": stamp.isoformat(),
            "mean": candle(mean[i]),
            "quantiles": {
                quantile_key(level): candle(quantiles[q, i])
                for q, level in enumerate(forecast.quantile_levels)
            },
        }
        for i, stamp in enumerate(forecast.timestamps)
    ]
