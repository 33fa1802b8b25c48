"""Backtest a CSV/Parquet of candles offline in simulated mode (until the CLI's `backtest` uses
the pipeline's backends):

    python -m kronos_integration.evaluation FILE [--horizon-days 1,5,20] [--origins 200]
        [--window 400] [--samples 64] [--calendar XNYS] [--conformal] [--report out.html]
        [--json out.json]

Prints the JSON summary (or writes it to --json) and shows a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from kronos_integration.backends.simulated import SimulatedBackend
from kronos_integration.calendars import resolve_calendar
from kronos_integration.candles import read_candles_file, validate_candles
from kronos_integration.confidence import band_confidence
from kronos_integration.conformal import conformal_forecaster
from kronos_integration.evaluation.backtest import (
    BacktestConfig,
    run_backtest,
    score_frame,
    summarize,
)
from kronos_integration.evaluation.forecasters import (
    PathForecaster,
    drift,
    from_backend,
    gaussian_random_walk,
    random_walk,
)
from kronos_integration.evaluation.report import write_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kronos_integration.evaluation")
    parser.add_argument("file", type=Path)
    parser.add_argument("--horizon-days", default="1,5,20")
    parser.add_argument("--origins", type=int, default=200)
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--calendar", default=None, help="MIC, 24/5 or 24/7 (default: inferred)")
    parser.add_argument("--conformal", action="store_true", help="also score conformal bands")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        horizons = tuple(int(h) for h in args.horizon_days.split(","))
        candles = validate_candles(read_candles_file(args.file))
        calendar = resolve_calendar(
            args.calendar, timestamps=pd.DatetimeIndex(candles.index)
        ).calendar
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    simulated = from_backend(SimulatedBackend(args.window), args.samples)
    models: dict[str, PathForecaster] = {"simulated": simulated}
    if args.conformal:
        models["simulated+conformal"] = conformal_forecaster(simulated)
    models.update(
        random_walk=random_walk,
        drift=drift,
        gaussian_random_walk=gaussian_random_walk(args.samples),
    )
    config = BacktestConfig(horizon_days=horizons, origins=args.origins, window=args.window)
    result = run_backtest(
        candles,
        models,
        calendar,
        config,
        progress=lambda batches: tqdm(batches, desc="origins (batches)", file=sys.stderr),
    )
    scored = {name: band_confidence for name in models if name.startswith("simulated")}
    frame = score_frame(result, confidence=scored, series=args.file.stem)
    summary = summarize(frame)
    summary["calendar"] = calendar.name
    text = json.dumps(summary, indent=1)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    else:
        print(text)
    if args.report:
        write_html(summary, frame, args.report, f"Backtest of {args.file.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
