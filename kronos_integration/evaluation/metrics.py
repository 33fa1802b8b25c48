"""Scores of ensemble forecasts against what happened, one value per forecast.

Every function takes `samples` (N, S) — S sample values of N forecasts — and `observed` (N,), in
the same unit; the backtest passes prices divided by the last close, so scores pool across
instruments. CRPS comes from scoringrules, rank correlation from scipy; the rest are a line of
numpy each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats
import scoringrules

from kronos_integration.forecast import sample_quantiles

PIT_BINS = 10
RELIABILITY_BINS = 10
"""The reliability diagram groups forecasts into tenths by P(up) (equal counts, not widths: P(up)
crowds around 0.5, where fixed-width bins would leave a few points and many near-empty bins)."""


def central_band(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges (N,) of the central `level` band (e.g. 0.8: P10–P90), read as the
    service reads its bands (`sample_quantiles`)."""
    tail = (1.0 - level) / 2.0
    low, high = sample_quantiles(samples, (tail, 1.0 - tail), axis=1)
    return low, high


def covered(samples: np.ndarray, observed: np.ndarray, level: float) -> np.ndarray:
    """Whether each observation lies in its central `level` band (N,) bool."""
    low, high = central_band(samples, level)
    return (observed >= low) & (observed <= high)


def pinball(samples: np.ndarray, observed: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Pinball (quantile) loss averaged over `levels`, (N,)."""
    quantiles = sample_quantiles(samples, levels, axis=1)  # (Q, N)
    taus = np.asarray(levels)[:, None]
    error = observed[None, :] - quantiles
    return np.asarray(np.mean(np.maximum(taus * error, (taus - 1.0) * error), axis=0))


def crps(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score of the ensemble (scoringrules, fair estimator), (N,);
    the absolute error for a one-member ensemble (a point forecast)."""
    if samples.shape[1] == 1:
        return np.asarray(np.abs(samples[:, 0] - observed))
    return np.asarray(scoringrules.crps_ensemble(observed, samples, estimator="fair"))


def pit(samples: np.ndarray, observed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Probability integral transform (N,) in [0, 1]: the share of samples below the observation,
    ties broken at random (uniform for a calibrated forecast)."""
    below = np.mean(samples < observed[:, None], axis=1)
    equal = np.mean(samples == observed[:, None], axis=1)
    return np.asarray(below + rng.uniform(size=len(observed)) * equal)


def pit_histogram(values: np.ndarray, bins: int = PIT_BINS) -> list[float]:
    """Share of PIT values per equal-width bin (a flat 1/bins each when calibrated)."""
    counts, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return (counts / max(len(values), 1)).tolist()


def probability_up(samples: np.ndarray, reference: float | np.ndarray = 1.0) -> np.ndarray:
    """Share of samples above `reference` (N,): the forecast's P(up)."""
    return np.asarray(np.mean(samples > np.reshape(reference, (-1, 1)), axis=1))


def reliability(
    p_up: np.ndarray, up: np.ndarray, bins: int = RELIABILITY_BINS
) -> list[dict[str, float]]:
    """The reliability diagram's points: forecasts sorted by P(up) (N,) and cut into `bins` groups
    of equal count (fewer when N is smaller), each with its mean P(up) `p_up`, the share that went
    up `observed` (from `up` (N,) bool) and its size `n`. Calibrated: `observed` ≈ `p_up`."""
    if len(p_up) == 0:
        return []
    groups = np.array_split(np.argsort(p_up, kind="stable"), min(bins, len(p_up)))
    return [
        {"p_up": float(p_up[g].mean()), "observed": float(up[g].mean()), "n": len(g)}
        for g in groups
    ]


def brier(samples: np.ndarray, observed: np.ndarray, reference: float = 1.0) -> np.ndarray:
    """Brier score of P(observed > reference), (N,); 0.25 for a constant 0.5."""
    return np.asarray((probability_up(samples, reference) - (observed > reference)) ** 2)


def direction_hit(samples: np.ndarray, observed: np.ndarray, reference: float = 1.0) -> np.ndarray:
    """1 when the median moves the way the observation did, 0 when not, 0.5 for a flat median."""
    moved = np.sign(np.median(samples, axis=1) - reference)
    hit = (moved == np.sign(observed - reference)).astype(float)
    return np.asarray(np.where(moved == 0, 0.5, hit))


def absolute_error(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """|median − observed| (N,): MAE's terms; MAPE divides them by `observed`."""
    return np.asarray(np.abs(np.median(samples, axis=1) - observed))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of `x` and `y` (scipy); NaN for fewer than 3 pairs."""
    if len(x) < 3:
        return float("nan")
    return float(scipy.stats.spearmanr(x, y).statistic)
