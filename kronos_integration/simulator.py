"""A statistical forecaster with the same interface and output shape as Kronos.

Filtered historical simulation: close-to-close log returns get a constant drift (their mean) and
an EWMA volatility (RiskMetrics, lambda 0.94); each simulated bar draws a shock from the history's
own standardised residuals, scales it by the current volatility, and feeds it back into the
EWMA, so volatility clusters along a path. Opens, wicks and volumes are drawn from the history's
gap, wick and log-volume spreads, so every path is a sequence of valid OHLCV bars.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kronos_integration.forecast import CANDLE_COLUMNS, PRICE_COLUMNS

logger = logging.getLogger(__name__)

MIN_RETURNS = 2
SIMULATOR_VERSION = "statistical-simulator/ewma-fhs-1"


@dataclass(frozen=True)
class Calibration:
    """What the simulator learned from one history (all log quantities per bar)."""

    last_close: float
    drift: float
    volatility: float
    residuals: np.ndarray = field(repr=False)
    gap_sigma: float
    wick_sigma: float
    log_volume_mean: float
    log_volume_sigma: float
    amount_ratio: float
    has_volume: bool


class StatisticalSimulator:
    """Drift + EWMA-volatility simulator of OHLCV bars.

    The temperature scales every shock, like a sampling temperature.
    """

    def __init__(self, ewma_lambda: float = 0.94) -> None:
        if not 0.0 < ewma_lambda < 1.0:
            raise ValueError(f"ewma_lambda must lie in (0, 1), got {ewma_lambda}")
        self.ewma_lambda = ewma_lambda

    def calibrate(self, df: pd.DataFrame) -> Calibration:
        """Fit drift, volatility, residuals and bar shapes to `df` (open, high, low, close, ...)."""
        prices = _checked_prices(df)
        open_, high, low, close = (prices[:, i] for i in range(4))
        returns = np.diff(np.log(close))
        drift = float(returns.mean())
        deviations = returns - drift
        variance = float(np.mean(deviations[: min(len(deviations), 20)] ** 2))
        scaled = np.empty_like(deviations)
        for i, deviation in enumerate(deviations):
            sigma = np.sqrt(variance)
            scaled[i] = deviation / sigma if sigma > 0 else 0.0
            variance = self.ewma_lambda * variance + (1 - self.ewma_lambda) * deviation**2
        spread = scaled.std()
        residuals = (scaled - scaled.mean()) / spread if spread > 0 else np.zeros_like(scaled)
        gaps = np.log(open_[1:] / close[:-1])
        wicks = np.concatenate(
            [np.log(high / np.maximum(open_, close)), np.log(np.minimum(open_, close) / low)]
        )
        volume = _optional_column(df, "volume")
        amount = _optional_column(df, "amount")
        traded = volume > 0
        typical = prices.mean(axis=1)
        log_volume = np.log(volume[traded]) if traded.any() else np.zeros(1)
        ratios = amount[traded] / (volume[traded] * typical[traded])
        return Calibration(
            last_close=float(close[-1]),
            drift=drift,
            volatility=float(np.sqrt(variance)),
            residuals=residuals,
            gap_sigma=float(np.sqrt(np.mean(gaps**2))),
            wick_sigma=float(np.sqrt(np.mean(wicks**2))),
            log_volume_mean=float(log_volume.mean()),
            log_volume_sigma=float(log_volume.std()),
            amount_ratio=float(np.median(ratios)) if ratios.size and np.median(ratios) > 0 else 1.0,
            has_volume=bool(traded.any()),
        )

    def sample_paths(
        self,
        candles: pd.DataFrame,
        pred_len: int,
        *,
        sample_count: int = 1,
        temperature: float = 1.0,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> np.ndarray:
        """Simulate `sample_count` paths of `pred_len` bars after `candles`.

        The simulation is one vectorised pass, so `deadline` (a `time.monotonic()` instant) is
        checked once, before it starts. Returns float64 (sample_count, pred_len, 6) in price units,
        columns `CANDLE_COLUMNS`. Raises ValueError on bad candles, pred_len or sample_count < 1,
        or a temperature that is not positive.
        """
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the simulation's deadline passed before it started")
        if pred_len < 1:
            raise ValueError(f"pred_len must be at least 1, got {pred_len}")
        if sample_count < 1:
            raise ValueError(f"sample_count must be at least 1, got {sample_count}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        calibration = self.calibrate(candles)
        rng = np.random.default_rng(seed)
        return self._simulate(calibration, pred_len, sample_count, temperature, rng)

    def _simulate(
        self,
        c: Calibration,
        pred_len: int,
        samples: int,
        temperature: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        paths = np.empty((samples, pred_len, len(CANDLE_COLUMNS)))
        previous_close = np.full(samples, c.last_close)
        variance = np.full(samples, c.volatility**2)
        for step in range(pred_len):
            # The EWMA learns from the unscaled move: fed back, the temperature would compound
            # (T**2 per bar), shrinking paths to a point for T < 1 and overflowing for T > 1.
            deviation = np.sqrt(variance) * rng.choice(c.residuals, size=samples)
            close = previous_close * np.exp(c.drift + temperature * deviation)
            open_ = previous_close * np.exp(rng.normal(0.0, c.gap_sigma * temperature, samples))
            wick_scale = c.wick_sigma * temperature
            high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, wick_scale, samples)))
            low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, wick_scale, samples)))
            if c.has_volume:
                volume = np.exp(rng.normal(c.log_volume_mean, c.log_volume_sigma, samples))
            else:
                volume = np.zeros(samples)
            amount = volume * (open_ + high + low + close) / 4 * c.amount_ratio
            paths[:, step] = np.stack([open_, high, low, close, volume, amount], axis=1)
            variance = self.ewma_lambda * variance + (1 - self.ewma_lambda) * deviation**2
            previous_close = close
        return paths


def _checked_prices(df: pd.DataFrame) -> np.ndarray:
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing column(s) {', '.join(missing)}")
    prices = df[list(PRICE_COLUMNS)].to_numpy(dtype=np.float64)
    if len(prices) < MIN_RETURNS + 1:
        raise ValueError(f"df needs at least {MIN_RETURNS + 1} bars, got {len(prices)}")
    if not np.isfinite(prices).all():
        raise ValueError("df has NaN or infinite prices")
    if (prices <= 0).any():
        raise ValueError("df prices must be positive")
    return prices


def _optional_column(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.zeros(len(df))
    values = df[name].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"df has NaN or infinite {name}")
    return values
