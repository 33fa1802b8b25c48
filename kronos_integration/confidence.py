"""Confidence of a forecast day: how narrow its band is against the instrument's usual moves.

    confidence = 1 / (1 + r²),   r = (P90 − P10) / (2 · 1.2816 · σ · √n)

P10, P90: the 10th and 90th percentiles of log(sample close / last close) at that day's last bar;
σ: the standard deviation of the history's close-to-close log returns (per bar); n: bars from the
last history bar to that day's last bar. r compares the forecast's 80 % band with the band of a
Gaussian random walk at the history's long-run volatility: r = 1 gives 0.5, a band narrower than
usual (a calm regime) goes towards 1, a wider one towards 0. Price level, the instrument's
volatility and the horizon are divided out, so values compare across instruments and horizons;
on backtests it ranks volatility-scaled errors (see `benchmarks/calibration.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kronos_integration.forecast import sample_quantiles

Z_90 = 1.2815515655446004
"""Standard normal 90th percentile: a Gaussian 80 % band is 2·Z_90 standard deviations wide."""


def history_volatility(close: np.ndarray) -> float:
    """Standard deviation of close-to-close log returns (per bar) of `close` (T,), T ≥ 2."""
    close = np.asarray(close, dtype=np.float64)
    if close.size < 2:
        raise ValueError("history_volatility needs at least 2 closes")
    return float(np.diff(np.log(close)).std())


def band_confidence(ratios: np.ndarray, volatility: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Confidence (..., D) from sample closes divided by the last close, `ratios` (..., D, S);
    `volatility` broadcasts against (...,), `steps` against (..., D). NaN where S < 2 or σ is 0."""
    ratios = np.asarray(ratios, dtype=np.float64)
    low, high = sample_quantiles(np.log(ratios), (0.1, 0.9), axis=-1)  # (..., D)
    usual = 2.0 * Z_90 * np.asarray(volatility)[..., None] * np.sqrt(steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (high - low) / usual
    out = 1.0 / (1.0 + r**2)
    valid = (ratios.shape[-1] >= 2) & (usual > 0)
    return np.asarray(np.where(valid, out, np.nan))


def day_confidence(
    closes: np.ndarray, last_close: float, history_close: np.ndarray, steps: Sequence[int]
) -> list[float | None]:
    """Per horizon day: confidence from sample closes (S, D) at each day's last bar, the
    history's closes (T,), and bars ahead of each day (D,); None when S < 2 (no spread)."""
    values = band_confidence(
        np.asarray(closes, dtype=np.float64).T / last_close,
        np.asarray(history_volatility(history_close)),
        np.asarray(steps, dtype=np.float64),
    )
    return [None if np.isnan(v) else float(v) for v in values]
