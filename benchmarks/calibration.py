"""Before/after calibration table on real series (simulated mode, offline):

    python -m benchmarks.calibration [--origins 200] [--samples 64] [--conformal] [--json out.json]

Before: the seed's model — EWMA volatility (λ 0.94, never reverting), the window's mean return as
drift — sampled by today's simulator (`SeedEwmaSimulator`), scored with the seed's confidence
1 / (1 + 10·(P90 − P10)/P50). After: `StatisticalSimulator` and `confidence.band_confidence`.
Groups: training (IBM, MSFT, vendored), held-out daily (S&P 500, NASDAQ, AAPL, GOOG, from
installed packages), hourly EUR/USD (24/5 calendar). Daily series use the XNYS calendar. Prints
one table row per group, model and horizon, then the summaries as one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np
import pandas as pd

from benchmarks.real_series import HELD_OUT_DAILY, TRAINING, eurusd_hourly, held_out, vendored
from kronos_integration.backends.simulated import SimulatedBackend
from kronos_integration.calendars import exchange_calendar
from kronos_integration.confidence import band_confidence
from kronos_integration.conformal import conformal_forecaster
from kronos_integration.evaluation.backtest import (
    BacktestConfig,
    ConfidenceFn,
    pooled,
    run_backtest,
    score_frame,
    summarize,
)
from kronos_integration.evaluation.forecasters import (
    PathForecaster,
    from_backend,
    gaussian_random_walk,
)
from kronos_integration.simulator import Calibration, Garch, StatisticalSimulator

SEED_EWMA_LAMBDA = 0.94


class SeedEwmaSimulator(StatisticalSimulator):
    """The seed's model: EWMA variance (GARCH with ω = 0, α = 1 − λ, β = λ: no long-run level)
    and the unshrunk mean return as drift."""

    def calibrate(self, df: pd.DataFrame) -> Calibration:
        fitted = super().calibrate(df)
        returns = np.diff(np.log(df["close"].to_numpy(dtype=np.float64)))
        ewma = Garch(float(returns.var()), 1.0 - SEED_EWMA_LAMBDA, SEED_EWMA_LAMBDA)
        variance = ewma.variances(returns - returns.mean())[-1]
        return dataclasses.replace(
            fitted, drift=float(returns.mean()), volatility=float(np.sqrt(variance)), garch=ewma
        )


def seed_confidence(samples: np.ndarray, volatility: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The seed's confidence, 1 / (1 + 10·(P90 − P10)/P50), over ratios (O, D, S)."""
    low, median, high = np.quantile(samples, (0.1, 0.5, 0.9), axis=-1)
    return np.asarray(1.0 / (1.0 + 10.0 * (high - low) / median))


GROUPS: dict[str, tuple[str, ...]] = {
    "training daily": TRAINING,
    "held-out daily": HELD_OUT_DAILY,
    "EUR/USD hourly": ("EURUSD",),
}


def _series(name: str) -> tuple[pd.DataFrame, str]:
    if name == "EURUSD":
        return eurusd_hourly(), "24/5"
    return (vendored(name) if name in TRAINING else held_out(name)), "XNYS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration")
    parser.add_argument("--origins", type=int, default=200, help="origins per series")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--conformal", action="store_true", help="add after+conformal (slow)")
    parser.add_argument("--json", default=None, help="also write the summaries here")
    args = parser.parse_args(argv)
    models: dict[str, PathForecaster] = {
        "before": from_backend(SimulatedBackend(512, SeedEwmaSimulator()), args.samples),
        "after": from_backend(SimulatedBackend(512), args.samples),
        "gaussian_random_walk": gaussian_random_walk(args.samples),
    }
    confidence: dict[str, ConfidenceFn] = {"before": seed_confidence, "after": band_confidence}
    if args.conformal:
        models["after+conformal"] = conformal_forecaster(models["after"])
        confidence["after+conformal"] = band_confidence
    config = BacktestConfig(origins=args.origins)
    summaries = {}
    started = time.perf_counter()
    for group, names in GROUPS.items():
        frames = []
        for name in names:
            candles, calendar = _series(name)
            result = run_backtest(candles, models, exchange_calendar(calendar), config)
            frames.append(score_frame(result, confidence=confidence, series=name))
        summaries[group] = summarize(pooled(frames))
    _print_table(summaries)
    print(f"elapsed {time.perf_counter() - started:.0f} s", file=sys.stderr)
    line = json.dumps({"benchmark": "calibration", "origins": args.origins, **summaries})
    print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(line)
    return 0


def _print_table(summaries: dict[str, dict]) -> None:
    header = (
        f"{'group':16} {'model':22} {'days':>4} {'80%':>6} {'90%':>6} {'pinball/GRW':>11} "
        f"{'Brier':>6} {'dates':>6} | {'conf ρ':>7} {'top10% 80':>9} {'top10% 90':>9}"
    )
    print(header)
    print("-" * len(header))
    for group, summary in summaries.items():
        for model, entry in summary["models"].items():
            ranking = entry["confidence"]
            for horizon, s in entry["horizons"].items():
                tail = (
                    f"{ranking['spearman_vs_scaled_error']:>7.3f} "
                    f"{ranking['top_tenth']['coverage_0.8']:>9.3f} "
                    f"{ranking['top_tenth']['coverage_0.9']:>9.3f}"
                    if ranking and horizon == next(iter(entry["horizons"]))
                    else ""
                )
                print(
                    f"{group:16} {model:22} {horizon:>4} {s['coverage_0.8']:>6.3f} "
                    f"{s['coverage_0.9']:>6.3f} {s['pinball_vs_baseline']:>11.3f} "
                    f"{s['brier']:>6.3f} {s['date_accuracy']:>6.3f} | {tail}"
                )


if __name__ == "__main__":
    raise SystemExit(main())
