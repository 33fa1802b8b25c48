"""A forecast's summaries as JSON-ready data: per horizon day, and per future bar.

A day is read at its last bar: the sample mean of the close, the requested quantiles of the sample
closes, the share of paths that close above the current price, and the confidence of
`kronos_integration.confidence` (null with one sample: there is no spread to measure).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kronos_integration.confidence import day_confidence
from kronos_integration.forecast import CANDLE_COLUMNS, Forecast
from kronos_integration.grid import FutureGrid

CLOSE = CANDLE_COLUMNS.index("close")


def quantile_key(level: float) -> str:
    """The JSON key of a quantile level, its shortest exact spelling: 0.1 -> "0.1",
    0.025 -> "0.025", 0.123456789 -> "0.123456789" (so distinct levels never share a key)."""
    return repr(float(level))


def daily_predictions(
    forecast: Forecast, grid: FutureGrid, history_close: np.ndarray
) -> list[dict[str, Any]]:
    """One entry per horizon day, taken at that day's last bar; `history_close` (T,) are the
    closes the forecast followed (the last is the current price)."""
    quantiles = forecast.quantiles  # (Q, L, 6)
    mean = forecast.mean  # (L, 6)
    current_price = float(history_close[-1])
    positions = list(grid.day_end_positions)
    confidences = day_confidence(
        forecast.paths[:, positions, CLOSE],
        current_price,
        history_close,
        [p + 1 for p in positions],
    )
    days = []
    for day, (position, confidence) in enumerate(zip(positions, confidences, strict=True), 1):
        closes = forecast.paths[:, position, CLOSE]  # (S,)
        stamp = grid.timestamps[position]
        days.append(
            {
                "day": day,
                "date": stamp.date().isoformat(),
                "timestamp": stamp.isoformat(),
                "predicted_price": float(mean[position, CLOSE]),
                "confidence": confidence,
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


def history_bars(candles: pd.DataFrame) -> list[dict[str, Any]]:
    """History bars as JSON-ready data, oldest first: timestamp and `CANDLE_COLUMNS`."""
    values = candles[list(CANDLE_COLUMNS)].to_numpy(dtype=np.float64)
    return [
        {"timestamp": stamp.isoformat(), **dict(zip(CANDLE_COLUMNS, map(float, row), strict=True))}
        for stamp, row in zip(candles.index, values, strict=True)
    ]
