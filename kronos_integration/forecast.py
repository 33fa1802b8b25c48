"""`Forecast`, the sample paths `KronosPredictor.forecast` returns, and the candle columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
CANDLE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "amount")
DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)


def sample_quantiles(
    samples: np.ndarray, levels: float | Sequence[float], axis: int = 0
) -> np.ndarray:
    """Quantiles of sample paths along `axis` (levels first in the result, as `np.quantile`),
    read so that a band between two of them covers its nominal share of a new outcome on average.

    Of S exchangeable samples, the k-th smallest lies below a new outcome with probability
    k / (S + 1); level p is read at rank p·(S + 1) (numpy's "weibull" method), so P10–P90 of
    S samples covers 80 % in expectation. numpy's default (rank 1 + p·(S − 1)) reads inside it: at
    8 samples its P10–P90 covers 62 % (5.6 of 9 gaps). Beyond the extreme samples nothing is
    extrapolated: a band wider than (S − 1)/(S + 1) (78 % at 8 samples, 90 % needs 19) is read
    at the lowest and highest sample and covers less than nominal. The median is the same either
    way."""
    return np.asarray(np.quantile(samples, levels, axis=axis, method="weibull"))


@dataclass(frozen=True)
class Forecast:
    """Sample paths of a forecast and their summaries, in price units.

    Attributes:
        timestamps: the `pred_len` future bar timestamps.
        paths: float64 array (sample_count, pred_len, 6), columns `CANDLE_COLUMNS`.
        quantile_levels: the levels of `quantiles`, each in (0, 1).
        seed: the seed the sampler used, or None when it was not seeded.
    """

    timestamps: pd.DatetimeIndex
    paths: np.ndarray
    quantile_levels: tuple[float, ...] = DEFAULT_QUANTILES
    seed: int | None = None

    @property
    def sample_count(self) -> int:
        return int(self.paths.shape[0])

    @property
    def mean(self) -> np.ndarray:
        """Sample mean, (pred_len, 6): what the reference predictor returns."""
        return np.asarray(self.paths.mean(axis=0))

    @property
    def quantiles(self) -> np.ndarray:
        """Per-bar quantiles over the samples (`sample_quantiles`), (len(quantile_levels),
        pred_len, 6)."""
        return sample_quantiles(self.paths, self.quantile_levels, axis=0)


def check_quantile_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Return `levels` as a sorted tuple, or raise ValueError if any is outside (0, 1)."""
    out = tuple(sorted(float(q) for q in levels))
    if not out:
        raise ValueError("quantiles: at least one level is required")
    if any(not 0.0 < q < 1.0 for q in out):
        raise ValueError(f"quantiles: every level must lie strictly between 0 and 1, got {out}")
    return out
