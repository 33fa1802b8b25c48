"""A statistical forecaster with the same interface and output shape as Kronos.

Filtered historical simulation with a volatility that reverts to the history's own level:
close-to-close log returns get a GARCH(1,1) variance with variance targeting
(σ²ₜ₊₁ = (1 − α − β)·σ̄² + α·εₜ² + β·σ²ₜ, σ̄² the window's variance; α, β by Gaussian
quasi-likelihood over a small grid that includes the constant-variance random walk), a drift
shrunk towards zero by how far the window's mean is from zero in standard errors (positive-part
James–Stein: μ·max(0, 1 − 1/t²)), and shocks resampled from the history's standardised residuals
and their mirror images (the data's own tails, no invented skew; paths come in antithetic pairs).
Opens, wicks and volumes are drawn from the history's gap, wick and log-volume spreads, so every
path is a sequence of valid OHLCV bars.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.signal

from kronos_integration.forecast import CANDLE_COLUMNS, PRICE_COLUMNS

logger = logging.getLogger(__name__)

MIN_RETURNS = 2
SIMULATOR_VERSION = "statistical-simulator/garch-fhs-2"
PERSISTENCE_GRID: tuple[float, ...] = (0.8, 0.9, 0.95, 0.97, 0.98, 0.99)
ALPHA_GRID: tuple[float, ...] = (0.02, 0.04, 0.07, 0.1, 0.15, 0.2)
GARCH_WEIGHT = 0.5
"""Weight of the GARCH forecast against the long-run variance in the first bar's variance (a blend:
GARCH alone under-covered one-day bands by 4 points on the training series)."""


@dataclass(frozen=True)
class Garch:
    """GARCH(1,1) with variance targeting, per bar: σ²ₜ₊₁ = (1 − α − β)·σ̄² + α·εₜ² + β·σ²ₜ.
    α = β = 0 is a constant variance σ̄²."""

    long_run_variance: float
    alpha: float
    beta: float

    def variances(self, deviations: np.ndarray) -> np.ndarray:
        """Conditional variances (T + 1,) of `deviations` (T,), from σ̄²; the last is the next
        bar's."""
        omega = (1.0 - self.alpha - self.beta) * self.long_run_variance
        drive = omega + self.alpha * deviations**2
        start = [self.beta * self.long_run_variance]
        tail = scipy.signal.lfilter([1.0], [1.0, -self.beta], drive, zi=start)[0]
        return np.concatenate([[self.long_run_variance], tail])

    def step(self, variance: np.ndarray, deviation: np.ndarray) -> np.ndarray:
        omega = (1.0 - self.alpha - self.beta) * self.long_run_variance
        return np.asarray(omega + self.alpha * deviation**2 + self.beta * variance)


def fit_garch(deviations: np.ndarray) -> Garch:
    """The grid's (α, β) of highest Gaussian quasi-likelihood for zero-mean `deviations`."""
    long_run = float(np.mean(deviations**2))
    candidates = [Garch(long_run, 0.0, 0.0)] + [
        Garch(long_run, alpha, persistence - alpha)
        for persistence in PERSISTENCE_GRID
        for alpha in ALPHA_GRID
        if alpha < persistence
    ]
    if long_run <= 0:
        return candidates[0]

    def log_likelihood(model: Garch) -> float:
        variances = model.variances(deviations)[:-1]
        return float(-0.5 * np.sum(np.log(variances) + deviations**2 / variances))

    return max(candidates, key=log_likelihood)


def shrunk_drift(returns: np.ndarray) -> float:
    """The mean of `returns` times max(0, 1 − 1/t²), t its t-statistic: zero unless the window's
    trend stands clear of its noise."""
    mean = float(returns.mean())
    spread = float(returns.std())
    if spread == 0.0:
        return mean
    t_squared = mean**2 * len(returns) / spread**2
    return mean * max(0.0, 1.0 - 1.0 / t_squared) if t_squared > 0 else 0.0


@dataclass(frozen=True)
class Calibration:
    """What the simulator learned from one history (all log quantities per bar)."""

    last_close: float
    drift: float
    volatility: float
    garch: Garch
    residuals: np.ndarray = field(repr=False)
    gap_sigma: float
    wick_sigma: float
    log_volume_mean: float
    log_volume_sigma: float
    amount_ratio: float
    has_volume: bool

    @property
    def long_run_volatility(self) -> float:
        return float(np.sqrt(self.garch.long_run_variance))


class StatisticalSimulator:
    """GARCH + filtered-historical-simulation of OHLCV bars.

    The temperature scales every shock, like a sampling temperature.
    """

    def calibrate(self, df: pd.DataFrame) -> Calibration:
        """Fit drift, GARCH volatility, residuals and bar shapes to `df` (OHLC[V] columns)."""
        prices = _checked_prices(df)
        open_, high, low, close = (prices[:, i] for i in range(4))
        returns = np.diff(np.log(close))
        deviations = returns - returns.mean()
        garch = fit_garch(deviations)
        variances = garch.variances(deviations)
        scaled = deviations / np.sqrt(np.where(variances[:-1] > 0, variances[:-1], 1.0))
        mirrored = np.concatenate([scaled, -scaled])
        spread = mirrored.std()
        residuals = mirrored / spread if spread > 0 else np.zeros_like(mirrored)
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
            drift=shrunk_drift(returns),
            volatility=float(
                np.sqrt(GARCH_WEIGHT * variances[-1] + (1 - GARCH_WEIGHT) * garch.long_run_variance)
            ),
            garch=garch,
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
        half = samples // 2
        for step in range(pred_len):
            drawn = rng.choice(c.residuals, size=samples - half)
            shocks = np.concatenate([drawn, -drawn[:half]])  # antithetic pairs
            deviation = np.sqrt(variance) * shocks
            # The GARCH learns from the unscaled move: fed back, the temperature would compound
            # (T**2 per bar), shrinking paths to a point for T < 1 and overflowing for T > 1.
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
            variance = c.garch.step(variance, deviation)
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
