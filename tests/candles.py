"""Candle series for tests: seeded random walks of valid OHLCV bars."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def make_candles(
    bars: int = 120,
    *,
    freq: str = "B",
    start: str = "2024-01-02",
    seed: int = 0,
    last_close: float = 50.0,
    volatility: float = 0.01,
) -> pd.DataFrame:
    """`bars` OHLCV candles indexed by timestamp; daily business days by default."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, volatility, bars)
    close = last_close * np.exp(np.cumsum(returns) - returns.sum())
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, volatility, bars))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, volatility, bars))
    volume = rng.uniform(1e3, 5e3, bars).round()
    index = pd.date_range(start, periods=bars, freq=freq, name="timestamp")
    return pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "amount": volume * close,
        },
        index=index,
    )


def candle_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The JSON form of candles that /predict accepts."""
    records = frame.reset_index().to_dict(orient="records")
    for record in records:
        record["timestamp"] = record["timestamp"].isoformat()
    return records
