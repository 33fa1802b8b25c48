"""The one forecasting signature evaluation uses, and the naive baselines that share it.

A `PathForecaster` takes a batch of `Window`s and returns, per window, float64 sample paths
(sample_count, len(window.future), 6) in price units, columns `CANDLE_COLUMNS` — the shape every
backend of the service returns, so a backtest, the conformal layer and the server call the same
function. `from_backend` adapts any of the pipeline's backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from kronos_integration.backends.base import Backend, ForecastTask
from kronos_integration.forecast import CANDLE_COLUMNS
from kronos_integration.request import Sampling


@dataclass(frozen=True)
class Window:
    """One forecast to make: the history (candles indexed by timestamp), the future bar
    timestamps to forecast, and the seed to sample with."""

    history: pd.DataFrame
    future: pd.DatetimeIndex
    seed: int


PathForecaster = Callable[[Sequence[Window]], list[np.ndarray]]


MAX_ROWS = 256
"""Most sample paths (windows × samples) one backend call draws: a Kronos-small batch of 256
rows at 420 bars holds about 3.5 GB of attention cache."""


def from_backend(
    backend: Backend,
    sample_count: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.9,
    deadline: float | None = None,
    max_rows: int = MAX_ROWS,
) -> PathForecaster:
    """A `PathForecaster` that asks `backend` for the windows in calls of at most `max_rows`
    sample paths. A backend that decodes a batch (`info.batches`: Kronos) gets one `Sampling`
    per call, seeded by its first window's seed, so the call is one batch; any other draws each
    window with that window's own seed. `deadline` (a `time.monotonic()` instant) goes to every
    task."""
    per_call = max(1, max_rows // sample_count)

    def sampling(seed: int) -> Sampling:
        return Sampling(sample_count, temperature, top_k, top_p, seed)

    def forecast(windows: Sequence[Window]) -> list[np.ndarray]:
        paths: list[np.ndarray] = []
        for start in range(0, len(windows), per_call):
            chunk = windows[start : start + per_call]
            seeds = [chunk[0].seed if backend.info.batches else w.seed for w in chunk]
            tasks = [
                ForecastTask(w.history, w.future, sampling(seed), deadline)
                for w, seed in zip(chunk, seeds, strict=True)
            ]
            paths.extend(backend.forecast(tasks))
        return paths

    return forecast


def _log_returns(history: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(history["close"].to_numpy(dtype=np.float64)))


def _flat_bars(closes: np.ndarray) -> np.ndarray:
    """Bars whose open, high, low and close are `closes` (S, L), no volume: (S, L, 6)."""
    paths = np.zeros((*closes.shape, len(CANDLE_COLUMNS)))
    paths[..., :4] = closes[..., None]
    return paths


def random_walk(windows: Sequence[Window]) -> list[np.ndarray]:
    """Tomorrow = today: one path that stays at the last close."""
    return [
        _flat_bars(np.full((1, len(w.future)), float(w.history["close"].iloc[-1]))) for w in windows
    ]


def drift(windows: Sequence[Window]) -> list[np.ndarray]:
    """One path from the last close along the window's mean log return."""
    paths = []
    for w in windows:
        steps = np.arange(1, len(w.future) + 1)
        mean = float(_log_returns(w.history).mean())
        paths.append(_flat_bars(float(w.history["close"].iloc[-1]) * np.exp(mean * steps)[None]))
    return paths


def gaussian_random_walk(sample_count: int = 64) -> PathForecaster:
    """Log returns i.i.d. normal with the window's mean and standard deviation. The samples are
    the normal's quantiles at (i + 0.5) / S, so each bar's marginal is exact up to S."""
    z = scipy.stats.norm.ppf((np.arange(sample_count) + 0.5) / sample_count)

    def forecast(windows: Sequence[Window]) -> list[np.ndarray]:
        paths = []
        for w in windows:
            returns = _log_returns(w.history)
            steps = np.arange(1, len(w.future) + 1)
            log_move = returns.mean() * steps + returns.std() * np.sqrt(steps) * z[:, None]
            paths.append(_flat_bars(float(w.history["close"].iloc[-1]) * np.exp(log_move)))
        return paths

    return forecast
