"""Conformal calibration of any backend's sample paths from a backtest on the request's history.

Inner origins: the last `origins` positions of the history that leave `min_window` bars before them
and a realised future after them; each inner forecast sees at most `window` bars (the outer
forecast's lookback), else all bars before its origin. The backend forecasts each (one batched
call); at each step ahead the realised close's distance from the forecast median is measured in
units of the forecast's half-band (above: P_hi − median; below: median − P_lo, in log price) for
the 80 % and 90 % bands. The split-conformal quantile of those distances (rank ⌈(n + 1)·c⌉ of n) is
the factor that makes that band cover c of the inner origins; the factor of a step is the mean over
both bands, pooled over steps in doubling buckets (1, 2–3, 4–7, …). Inner origins overlap and are
few, so the factor's logarithm is shrunk towards 0 by origins / (origins + SHRINK_ORIGINS) and the
factor clipped to [0.67, 2]: a handful of origins moves the bands little.

Applying it spreads every path's log prices away from the per-step median close by the step's
factor (p ↦ m·(p/m)^f): quantiles move, the median and bar validity (high ≥ open, close ≥ low)
stay. Steps beyond the ones the history can check take the last checked bucket's factor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_integration.evaluation.forecasters import PathForecaster, Window
from kronos_integration.forecast import CANDLE_COLUMNS, sample_quantiles

logger = logging.getLogger(__name__)

CLOSE = CANDLE_COLUMNS.index("close")
BANDS: tuple[float, ...] = (0.8, 0.9)
FACTOR_RANGE = (0.67, 2.0)
SHRINK_ORIGINS = 30
DEFAULT_ORIGINS = 30
MIN_WINDOW = 100
METHOD = "split-conformal band scaling"


@dataclass(frozen=True)
class ConformalFit:
    """Per-step band factors learned from the history (1.0 = the backend was calibrated).

    Attributes:
        factors: one factor per future step (L,); all 1.0 when `calibrated` is False.
        calibrated: whether factors came from a backtest (False: too little history).
        origins: inner origins used.
        checked_steps: steps ahead the history could check; later steps reuse the last factor.
        coverage_before: per band, the share of inner outcomes inside the raw band.
        reason: why not calibrated, or "".
    """

    factors: np.ndarray
    calibrated: bool
    origins: int
    checked_steps: int
    coverage_before: dict[str, float]
    reason: str = ""

    def metadata(self) -> dict[str, object]:
        """What a response says about its calibration (`metadata.calibration`)."""
        return {
            "requested": True,
            "calibrated": self.calibrated,
            "method": METHOD if self.calibrated else None,
            "origins": self.origins,
            "checked_steps": self.checked_steps,
            "factor_first_step": float(self.factors[0]) if self.calibrated else None,
            "factor_last_step": float(self.factors[-1]) if self.calibrated else None,
            "coverage_before": self.coverage_before,
            "reason": self.reason or None,
        }


def not_requested() -> dict[str, object]:
    """`metadata.calibration` of a forecast that was not asked to be calibrated."""
    unused = ConformalFit(np.ones(1), False, 0, 0, {}, "not requested")
    return {**unused.metadata(), "requested": False}


def inner_windows(
    history: pd.DataFrame,
    steps: int,
    *,
    origins: int,
    min_window: int,
    seed: int,
    window: int | None = None,
) -> tuple[list[Window], int]:
    """The inner backtest's windows (at most `window` bars each) and the steps each can check."""
    available = len(history) - min_window - origins + 1
    checked = min(steps, available)
    if checked < 1:
        return [], 0
    first = len(history) - checked - origins + 1  # the first inner origin
    length = first if window is None else min(window, first)
    windows = []
    for k in range(origins):
        end = first + k
        windows.append(
            Window(
                history.iloc[end - length : end],
                pd.DatetimeIndex(history.index[end : end + checked]),
                seed + k,
            )
        )
    return windows, checked


def fit_conformal(
    history: pd.DataFrame,
    forecast: PathForecaster,
    steps: int,
    *,
    origins: int = DEFAULT_ORIGINS,
    min_window: int = MIN_WINDOW,
    seed: int = 0,
    window: int | None = None,
) -> ConformalFit:
    """Band factors for `steps` future bars of `forecast` on `history` (candles by timestamp);
    the inner forecasts are one call of `forecast`."""
    windows, checked = inner_windows(
        history, steps, origins=origins, min_window=min_window, seed=seed, window=window
    )
    if not windows:
        reason = (
            f"{len(history)} bars leave no room for {origins} inner origins "
            f"after {min_window} bars of history"
        )
        return ConformalFit(np.ones(steps), False, 0, 0, {}, reason)
    close = history["close"]
    distances = {band: np.empty((origins, checked)) for band in BANDS}
    for k, (inner, paths) in enumerate(zip(windows, forecast(windows), strict=True)):
        log_paths = np.log(paths[:, :checked, CLOSE])  # (S, checked)
        median = np.median(log_paths, axis=0)
        realised = np.log(np.asarray(close.loc[inner.future], dtype=np.float64))  # what followed
        for band in BANDS:
            low, high = sample_quantiles(log_paths, ((1 - band) / 2, (1 + band) / 2), axis=0)
            above = realised >= median
            width = np.where(above, high - median, median - low)
            gap = np.abs(realised - median)
            with np.errstate(divide="ignore", invalid="ignore"):
                distances[band][k] = np.where(width > 0, gap / width, np.inf)
    factors = _bucket_factors(distances, checked)
    full = np.concatenate([factors, np.full(steps - checked, factors[-1])])
    coverage = {f"{band:g}": float(np.mean(distances[band] <= 1.0)) for band in BANDS}
    logger.debug("conformal: %d origins, %d steps, factors %s", origins, checked, factors)
    return ConformalFit(full, True, origins, checked, coverage)


def _bucket_factors(distances: dict[float, np.ndarray], checked: int) -> np.ndarray:
    factors = np.empty(checked)
    origins = len(next(iter(distances.values())))
    weight = origins / (origins + SHRINK_ORIGINS)
    low = 0
    while low < checked:
        high = min(checked, 2 * low + 1)  # steps low+1 … high: 1, 2–3, 4–7, …
        per_band = []
        for band, values in distances.items():
            pooled = np.sort(values[:, low:high].reshape(-1))
            rank = min(len(pooled), int(np.ceil((len(pooled) + 1) * band))) - 1
            per_band.append(pooled[rank])
        factor = np.exp(weight * np.log(max(float(np.mean(per_band)), 1e-9)))
        factors[low:high] = np.clip(factor, *FACTOR_RANGE)
        low = high
    return factors


def apply_conformal(paths: np.ndarray, fit: ConformalFit) -> np.ndarray:
    """`paths` (S, L, 6) with each step's log prices spread from the median close by its factor."""
    if not fit.calibrated:
        return paths
    out = paths.copy()
    median = np.median(np.log(paths[:, :, CLOSE]), axis=0)  # (L,)
    factors = fit.factors[: paths.shape[1], None]  # (L, 1)
    prices = np.log(paths[:, :, :4])  # (S, L, 4)
    out[:, :, :4] = np.exp(median[:, None] + factors * (prices - median[:, None]))
    return out


def conformal_forecaster(
    forecast: PathForecaster, *, origins: int = DEFAULT_ORIGINS, min_window: int = MIN_WINDOW
) -> PathForecaster:
    """`forecast` calibrated per window on that window's own history. The inner forecasts of
    all windows go to `forecast` together, one call (a batch, for backends that decode one)."""

    def calibrated(windows: Sequence[Window]) -> list[np.ndarray]:
        plans = [
            inner_windows(
                w.history, len(w.future), origins=origins, min_window=min_window, seed=w.seed
            )
            for w in windows
        ]
        inner = [x for plan, _ in plans for x in plan]
        inner_paths = iter(forecast(inner)) if inner else iter(())
        outer = forecast(windows)
        results = []
        for w, (plan, _), paths in zip(windows, plans, outer, strict=True):
            fit = fit_conformal(
                w.history,
                _replay([next(inner_paths) for _ in plan]),
                len(w.future),
                origins=origins,
                min_window=min_window,
                seed=w.seed,
            )
            results.append(apply_conformal(paths, fit))
        return results

    return calibrated


def _replay(paths: list[np.ndarray]) -> PathForecaster:
    """A forecaster that answers with paths already computed (for the batched inner run)."""
    return lambda windows: paths[: len(windows)]
