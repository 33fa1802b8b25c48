"""Rolling-origin backtests: forecast from many past origins and score against what happened.

At each origin the model sees the `window` bars before it and forecasts the calendar's future grid
for the largest horizon; each horizon day is scored at its session's last bar against the close
of the last real bar at or before that time. Prices are divided by the origin's last close, so
scores pool across instruments. Every model sees the same origins, windows and seeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kronos_integration.calendars import TradingCalendar, future_grid
from kronos_integration.evaluation import metrics
from kronos_integration.evaluation.forecasters import PathForecaster, Window
from kronos_integration.forecast import CANDLE_COLUMNS
from kronos_integration.grid import FutureGrid

logger = logging.getLogger(__name__)

CLOSE = CANDLE_COLUMNS.index("close")
BANDS: tuple[float, ...] = (0.5, 0.8, 0.9)
PINBALL_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)

ConfidenceFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(samples (O, D, S) as ratios to the last close, history volatility (O,) per bar, steps (O, D)
bars ahead) -> confidence (O, D) in [0, 1]."""


@dataclass(frozen=True)
class BacktestConfig:
    """Horizons in sessions, how many origins, history bars per forecast, forecasts per call."""

    horizon_days: tuple[int, ...] = (1, 5, 20)
    origins: int = 200
    window: int = 400
    batch_size: int = 10
    seed: int = 0


@dataclass
class BacktestResult:
    """What a backtest saw. O origins, D horizons, S samples (per model).

    Attributes:
        origin_times: timestamp of each origin's last history bar (O,).
        horizon_days: the horizons (D,).
        steps: bars ahead of each horizon's scored bar (O, D).
        observed: realised close / last close (O, D).
        volatility: standard deviation of the window's log returns, per bar (O,).
        naive_scale: mean |one-bar relative change| in the window, MASE's denominator (O,).
        date_match: the scored bar is on the grid's date for that day (O, D).
        samples: per model, forecast closes / last close (O, D, S).
    """

    origin_times: pd.DatetimeIndex
    horizon_days: tuple[int, ...]
    steps: np.ndarray
    observed: np.ndarray
    volatility: np.ndarray
    naive_scale: np.ndarray
    date_match: np.ndarray
    samples: dict[str, np.ndarray] = field(default_factory=dict)


def rolling_origins(
    candles: pd.DataFrame, calendar: TradingCalendar, config: BacktestConfig
) -> list[tuple[int, FutureGrid]]:
    """Up to `config.origins` evenly spaced origins (position of the first bar not seen) whose
    largest horizon has happened within `candles`, each with its future grid."""
    index = pd.DatetimeIndex(candles.index)
    horizon = max(config.horizon_days)
    bars_per_session = int(pd.Series(index.normalize()).value_counts().median())
    last = len(index) - horizon * bars_per_session
    if last <= config.window:
        return []
    positions = np.unique(np.linspace(config.window, last, config.origins).round().astype(int))
    plan = []
    for position in positions:
        grid = future_grid(index[position - config.window : position], horizon, calendar)
        if grid.timestamps[-1] <= index[-1]:
            plan.append((int(position), grid))
    return plan


class NoOriginError(ValueError):
    """The series leaves no origin: too few bars for the window and the longest horizon."""


def run_backtest(
    candles: pd.DataFrame,
    models: Mapping[str, PathForecaster],
    calendar: TradingCalendar,
    config: BacktestConfig = BacktestConfig(),
    *,
    progress: Callable[[int, int], object] | None = None,
) -> BacktestResult:
    """Forecast every origin with every model and keep what scoring needs.

    `progress(done, total)` is called with origins forecast so far after each batch (e.g. to
    move a progress bar). Raises NoOriginError when the series is too short for one origin.
    """
    plan = rolling_origins(candles, calendar, config)
    if not plan:
        longest = max(config.horizon_days)
        raise NoOriginError(
            f"{len(candles)} bars leave no origin for a backtest with a window of {config.window} "
            f"bars before it and {longest} session{'s' if longest > 1 else ''} after it"
        )
    index = pd.DatetimeIndex(candles.index)
    close = candles["close"].to_numpy(dtype=np.float64)
    days = np.asarray(config.horizon_days) - 1
    rows = []
    for number, (position, grid) in enumerate(plan):
        ends = np.asarray(grid.day_end_positions)[days]
        stamps = grid.timestamps[ends]
        scored = index.searchsorted(stamps, side="right") - 1
        window_close = close[position - config.window : position]
        returns = np.diff(np.log(window_close))
        rows.append(
            {
                "window": Window(
                    candles.iloc[position - config.window : position],
                    grid.timestamps,
                    config.seed + number,
                ),
                "ends": ends,
                "observed": close[scored] / close[position - 1],
                "date_match": index[scored].normalize() == stamps.normalize(),
                "volatility": float(returns.std()),
                "naive_scale": float(np.mean(np.abs(np.diff(window_close)) / window_close[:-1])),
            }
        )
    result = BacktestResult(
        origin_times=index[[position - 1 for position, _ in plan]],
        horizon_days=tuple(config.horizon_days),
        steps=np.stack([row["ends"] + 1 for row in rows]),
        observed=np.stack([row["observed"] for row in rows]),
        volatility=np.asarray([row["volatility"] for row in rows]),
        naive_scale=np.asarray([row["naive_scale"] for row in rows]),
        date_match=np.stack([np.asarray(row["date_match"]) for row in rows]),
    )
    batches = [rows[i : i + config.batch_size] for i in range(0, len(rows), config.batch_size)]
    collected: dict[str, list[np.ndarray]] = {name: [] for name in models}
    done = 0
    if progress is not None:
        progress(done, len(rows))
    for batch in batches:
        windows = [row["window"] for row in batch]
        for name, forecast in models.items():
            for row, paths in zip(batch, forecast(windows), strict=True):
                last = float(row["window"].history["close"].iloc[-1])
                collected[name].append(paths[:, row["ends"], CLOSE].T / last)  # (D, S)
        done += len(batch)
        if progress is not None:
            progress(done, len(rows))
    result.samples = {name: np.stack(values) for name, values in collected.items()}
    logger.info("backtest: %d origins, models %s", len(rows), ", ".join(models))
    return result


def score_frame(
    result: BacktestResult,
    *,
    confidence: Mapping[str, ConfidenceFn] | None = None,
    series: str = "",
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, origin, horizon) with every per-forecast score.

    Columns: series, model, origin, horizon, steps, covered_<band>, pinball, crps, abs_error,
    ape (absolute % error), ase (MASE term), hit (direction), brier, p_up, up, pit, confidence
    (NaN where no function is given for the model), scaled_error (|median − observed| divided by
    volatility · sqrt(steps)), date_match.
    """
    rng = np.random.default_rng(seed)
    origins, horizons = result.observed.shape
    frames = []
    for model, samples in result.samples.items():
        flat = samples.reshape(origins * horizons, -1)
        observed = result.observed.reshape(-1)
        steps = result.steps.reshape(-1)
        volatility = np.repeat(result.volatility, horizons)
        error = metrics.absolute_error(flat, observed)
        columns: dict[str, object] = {
            "series": series,
            "model": model,
            "origin": np.repeat(result.origin_times, horizons),
            "horizon": np.tile(result.horizon_days, origins),
            "steps": steps,
            **{f"covered_{b:g}": metrics.covered(flat, observed, b) for b in BANDS},
            "pinball": metrics.pinball(flat, observed, PINBALL_LEVELS),
            "crps": metrics.crps(flat, observed),
            "abs_error": error,
            "ape": 100.0 * error / observed,
            "ase": error / np.repeat(result.naive_scale, horizons),
            "hit": metrics.direction_hit(flat, observed),
            "brier": metrics.brier(flat, observed),
            "p_up": metrics.probability_up(flat),
            "up": observed > 1.0,
            "pit": metrics.pit(flat, observed, rng),
            "scaled_error": np.abs(np.log(np.median(flat, axis=1) / observed))
            / (volatility * np.sqrt(steps)),
            "date_match": result.date_match.reshape(-1),
            "ensemble": flat.shape[1],
        }
        score = (confidence or {}).get(model)
        columns["confidence"] = (
            score(samples, result.volatility, result.steps).reshape(-1)
            if score
            else np.full(len(observed), np.nan)
        )
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def summarize(frame: pd.DataFrame, *, baseline: str = "gaussian_random_walk") -> dict:
    """Pooled scores per model and horizon (and over all horizons), JSON-ready.

    `pinball_vs_baseline` / `crps_vs_baseline` divide by the baseline model's mean on the same
    rows (below 1: better). Over all horizons of the model: `reliability`, the reliability diagram
    of P(up) (see `metrics.reliability`; None for a point forecast), and `confidence`, its
    Spearman correlation with the volatility-scaled error (negative when higher confidence means
    smaller error) and the coverage of the most confident tenth.
    """
    reference = frame[frame["model"] == baseline].groupby("horizon")[["pinball", "crps"]].mean()
    models: dict[str, dict] = {}
    for model, rows in frame.groupby("model", sort=False):
        per_horizon = {}
        for horizon, part in rows.groupby("horizon"):
            entry = _scores(part)
            if horizon in reference.index:
                entry["pinball_vs_baseline"] = float(
                    entry["pinball"] / reference.at[horizon, "pinball"]
                )
                entry["crps_vs_baseline"] = float(entry["crps"] / reference.at[horizon, "crps"])
            per_horizon[str(horizon)] = entry
        models[str(model)] = {
            "horizons": per_horizon,
            "reliability": reliability(rows),
            "confidence": confidence_ranking(rows),
        }
    return {
        "series": sorted(set(frame["series"])),
        "forecasts_per_model": int(len(frame) / max(frame["model"].nunique(), 1)),
        "baseline": baseline,
        "models": models,
    }


def _scores(part: pd.DataFrame) -> dict:
    """Means of the per-forecast scores; band, Brier and PIT scores are None for a point
    forecast (one sample: no band, no probability)."""
    spread = bool((part["ensemble"] > 1).all())
    scores = {
        "n": len(part),
        **{f"coverage_{b:g}": float(part[f"covered_{b:g}"].mean()) for b in BANDS},
        "pinball": float(part["pinball"].mean()),
        "crps": float(part["crps"].mean()),
        "mae": float(part["abs_error"].mean()),
        "mape": float(part["ape"].mean()),
        "mase": float(part["ase"].mean()),
        "direction_hit": float(part["hit"].mean()),
        "brier": float(part["brier"].mean()),
        "pit_histogram": metrics.pit_histogram(part["pit"].to_numpy()),
        "date_accuracy": float(part["date_match"].mean()),
    }
    if not spread:
        scores.update({f"coverage_{b:g}": None for b in BANDS})
        scores.update(brier=None, pit_histogram=None)
    return scores


def reliability(rows: pd.DataFrame) -> list[dict[str, float]] | None:
    """`metrics.reliability` of one model's rows; None for a point forecast (P(up) is 0 or 1)."""
    if not bool((rows["ensemble"] > 1).all()):
        return None
    return metrics.reliability(rows["p_up"].to_numpy(), rows["up"].to_numpy())


def confidence_ranking(rows: pd.DataFrame, tenth: float = 0.1) -> dict | None:
    """How confidence ranks realised errors; None when the model has no confidence."""
    rows = rows.dropna(subset=["confidence"])
    if rows.empty:
        return None
    top = rows[rows["confidence"] >= rows["confidence"].quantile(1.0 - tenth)]
    quintile = pd.qcut(rows["confidence"].rank(method="first"), 5, labels=False)
    return {
        "spearman_vs_scaled_error": metrics.spearman(
            rows["confidence"].to_numpy(), rows["scaled_error"].to_numpy()
        ),
        "top_tenth": {
            "n": len(top),
            "coverage_0.8": float(top["covered_0.8"].mean()),
            "coverage_0.9": float(top["covered_0.9"].mean()),
            "scaled_error": float(top["scaled_error"].mean()),
        },
        "scaled_error_by_quintile": [
            float(v) for v in rows.groupby(quintile)["scaled_error"].mean().to_numpy()
        ],
        "mean": float(rows["confidence"].mean()),
    }


def pooled(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Score frames of several series as one (for `summarize` over series)."""
    return pd.concat(list(frames), ignore_index=True)
