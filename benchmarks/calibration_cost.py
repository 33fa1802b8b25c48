"""What conformal calibration costs a Kronos forecast: time per request with and without it.

A Kronos-small-shaped random checkpoint (the shapes of `benchmarks.predictor_speed`) is saved,
loaded through the service's Kronos backend, and asked through `pipeline.run_forecast` for IBM
(vendored daily history, XNYS calendar, default lookback 400) with `calibrate` off and on, per
horizon and sample count. Calibration adds one batched backend call of KRONOS_CALIBRATION_ORIGINS
(30) inner forecasts. Prints a table of medians, their ratio and peak memory, then a JSON line.

    python -m benchmarks.calibration_cost [--device cuda] [--horizons 1 5 20] [--samples 8]
        [--repeats 3] [--origins 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.checkpoints import save_random_checkpoints
from benchmarks.predictor_speed import peak_memory_mib
from benchmarks.real_series import vendored
from kronos_integration.backends import create_backend
from kronos_integration.backends.base import Backend
from kronos_integration.config import ForecastSettings, ModelSettings
from kronos_integration.history import History
from kronos_integration.pipeline import ForecastResult, run_forecast
from kronos_integration.request import ForecastRequest

WARM_UP = ForecastRequest(
    "IBM", horizon_days=1, instrument_type="symbol", calendar="XNYS", sample_count=1, seed=0
)


def small_backend(folder: Path, device: str) -> Backend:
    """Random Kronos-small and Tokenizer-base weights, saved and loaded like real ones."""
    model_dir, tokenizer_dir = save_random_checkpoints(folder, "small")
    settings = ModelSettings(
        model_id=str(model_dir), tokenizer_id=str(tokenizer_dir), device=device
    )
    return create_backend("kronos", settings)


def timed(
    backend: Backend, history: History, request: ForecastRequest, settings: ForecastSettings
) -> tuple[float, ForecastResult]:
    started = time.perf_counter()
    result = run_forecast(backend, history, request, settings)
    if result.backend.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration_cost")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--samples", type=int, nargs="+", default=[8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--origins", type=int, default=30)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    history = History(vendored("IBM").iloc[-600:], "request")
    settings = ForecastSettings(calibration_origins=args.origins)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        backend = small_backend(Path(folder), args.device)
        timed(backend, history, WARM_UP, settings)
        for calibrate in (False, True):  # all plain runs first: the CPU's peak RSS only grows
            for horizon in args.horizons:
                for samples in args.samples:
                    request = dataclasses.replace(
                        WARM_UP, horizon_days=horizon, sample_count=samples, seed=1,
                        calibrate=calibrate,
                    )  # fmt: skip
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    runs = [timed(backend, history, request, settings) for _ in range(args.repeats)]
                    calibration = runs[-1][1].calibration
                    rows.append(
                        {
                            "horizon_days": horizon,
                            "samples": samples,
                            "calibrate": calibrate,
                            "median_s": statistics.median(t for t, _ in runs),
                            "calibration_ms": calibration.get("elapsed_ms", 0.0),
                            "inner_origins": calibration["origins"],
                            "peak_mib": round(peak_memory_mib(device), 1),
                        }
                    )
    plain = {(r["horizon_days"], r["samples"]): r for r in rows if not r["calibrate"]}
    print(f"device {device} | torch {torch.__version__} threads {torch.get_num_threads()}")
    print(
        f"{'days':>4} {'samples':>7} {'plain s':>8} {'calibrated s':>12} {'ratio':>6} "
        f"{'origins':>7} {'peak MiB plain/calibrated':>26}"
    )
    for row in (r for r in rows if r["calibrate"]):
        base = plain[(row["horizon_days"], row["samples"])]
        row["ratio"] = row["median_s"] / base["median_s"]
        print(
            f"{row['horizon_days']:>4} {row['samples']:>7} {base['median_s']:>8.3f} "
            f"{row['median_s']:>12.3f} {row['ratio']:>5.1f}x {row['inner_origins']:>7} "
            f"{base['peak_mib']:>12.0f} / {row['peak_mib']:<12.0f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "calibration_cost",
                "device": str(device),
                "machine": platform.machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
