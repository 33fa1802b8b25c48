"""A Gaussian random walk of log closes: the naive baseline every forecast is measured against.

Closes move by independent normal log returns with zero drift and the standard deviation of the
window's close-to-close log returns (times the temperature). A bar opens at the previous close;
its high and low are the larger and smaller of open and close; volume is the window's median.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kronos_integration.backends.base import BackendInfo, ForecastTask
from kronos_integration.config import ModelSettings

VERSION = "gaussian-random-walk-1"


def random_walk_paths(
    candles: pd.DataFrame, pred_len: int, sample_count: int, temperature: float, seed: int
) -> np.ndarray:
    """float64 (sample_count, pred_len, 6) paths after `candles` (see module docstring)."""
    close = candles["close"].to_numpy(dtype=np.float64)
    sigma = float(np.std(np.diff(np.log(close)))) * temperature
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, sigma, (sample_count, pred_len))
    closes = close[-1] * np.exp(np.cumsum(steps, axis=1))  # (S, L)
    opens = np.concatenate([np.full((sample_count, 1), close[-1]), closes[:, :-1]], axis=1)
    volume = np.full_like(closes, float(candles["volume"].median()))
    amount = volume * (opens + closes) / 2
    bars = (opens, np.maximum(opens, closes), np.minimum(opens, closes), closes, volume, amount)
    return np.stack(bars, axis=-1)


class RandomWalkBackend:
    """`random_walk_paths` behind the `Backend` protocol (applies the temperature)."""

    def __init__(self, max_context: int) -> None:
        self.info = BackendInfo(name="random_walk", version=VERSION, max_context=max_context)

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        results = []
        for task in tasks:
            if task.deadline is not None and time.monotonic() > task.deadline:
                raise TimeoutError("the random walk's deadline passed before it started")
            sampling = task.sampling
            results.append(
                random_walk_paths(
                    task.candles,
                    len(task.future),
                    sampling.sample_count,
                    sampling.temperature,
                    sampling.seed,
                )
            )
        return results


def load(settings: ModelSettings) -> RandomWalkBackend:
    return RandomWalkBackend(settings.max_context)
