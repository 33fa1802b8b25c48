"""Cross-request batching on a real gunicorn: requests per second with batching off and on.

    python -m benchmarks.batching [--clients 8] [--horizon-days 1] [--samples 8]
        [--windows 0 20] [--rounds 2] [--seconds 60] [--workers 2] [--torch-threads 1]
    python -m benchmarks.batching --in-process [--device cuda] [--clients 8] [--samples 8]
        [--rounds 2]

Serves a random-weight checkpoint of the Kronos-small layout (with a Kronos-Tokenizer-base-shaped
tokenizer) in kronos mode. Each client is its own instrument: its own inline history of 450
24-minute bars on the `24/7` calendar, ending at the day's last bar, so one horizon day is 60
future bars; its own seed. Clients send their request back to back for `--seconds` against one
server per `KRONOS_BATCH_WINDOW_MS` value; the values are run in turn, `--rounds` times
(interleaved, so a busy machine hurts both alike). Prints a table (answered req/s, p50 and p99
latency, statuses, the mean batch size from /metrics) and one JSON line, with the ratio of each
window's req/s to the first window's (0: batching off).

`--in-process` measures the ceiling without HTTP, gunicorn or scheduling: in one process and
thread, the same model and histories, seconds per forecast when each decodes alone and when
1…`--clients` of them decode as one batch (`KronosPredictor.forecast_jobs`), and whether every
batched job's paths equal its paths alone (exactly: a token flipped by float rounding between
batch shapes would show as a difference).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from benchmarks.checkpoints import save_random_checkpoints
from benchmarks.live_server import LiveServer, metric_sum, request
from benchmarks.load import drive, percentile_ms
from benchmarks.predictor_speed import random_pair
from kronos_integration.forecast import Forecast
from kronos_integration.predictor import ForecastJob, KronosPredictor

BARS = 450
BAR = pd.Timedelta(minutes=24)  # 60 bars a day on the 24/7 calendar


def client_body(client: int, horizon_days: int, samples: int) -> dict[str, Any]:
    """Client `client`'s request: its own instrument, history and seed."""
    rng = np.random.default_rng(client)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, BARS)))
    stamps = pd.date_range(end="2024-03-05 23:36", periods=BARS, freq=BAR)
    candles = [
        {
            "timestamp": stamp.isoformat(),
            "open": round(c * (1 + rng.normal(0, 0.0005)), 4),
            "high": round(c * 1.001, 4),
            "low": round(c * 0.999, 4),
            "close": round(c, 4),
            "volume": round(float(rng.uniform(1e3, 1e4)), 1),
        }
        for stamp, c in zip(stamps, close, strict=True)
    ]
    return {
        "symbol": f"BENCH{client}",
        "calendar": "24/7",
        "candles": candles,
        "horizon_days": horizon_days,
        "sample_count": samples,
        "seed": client,
    }


def measure(
    model: tuple[Path, Path], window_ms: int, args: argparse.Namespace, log: Path
) -> dict[str, Any]:
    env = {
        "KRONOS_MODE": "kronos",
        "KRONOS_MODEL_ID": str(model[0]),
        "KRONOS_TOKENIZER_ID": str(model[1]),
        "HF_HUB_OFFLINE": "1",
        "KRONOS_BATCH_WINDOW_MS": str(window_ms),
        "KRONOS_TORCH_THREADS": str(args.torch_threads),
        "KRONOS_MAX_INFLIGHT": str(args.max_inflight),
        "KRONOS_THREADS": str(max(8, args.max_inflight + 2)),
        "KRONOS_REQUEST_TIMEOUT_S": "110",
        "KRONOS_TIMEOUT": "120",
        "KRONOS_LOG_LEVEL": "WARNING",
    }
    bodies = [client_body(c, args.horizon_days, args.samples) for c in range(args.clients)]
    with LiveServer(env, log, workers=args.workers).start(ready_timeout_s=300) as server:
        status, _, body = request(server.port, "POST", "/predict", bodies[0], timeout_s=120)
        if status != 200:
            raise RuntimeError(f"the first forecast failed: {status} {body[:300]!r}")
        bars = json.loads(body)["metadata"]["prediction_periods"]
        batches_before = metric_sum(server.port, "kronos_batch_size_count")
        tasks_before = metric_sum(server.port, "kronos_batch_size_sum")
        result = drive(server.port, bodies, args.seconds, timeout_s=120)
        batches = metric_sum(server.port, "kronos_batch_size_count") - batches_before
        tasks = metric_sum(server.port, "kronos_batch_size_sum") - tasks_before
    ok = len(result.latencies_s)
    return {
        "window_ms": window_ms,
        "bars": bars,
        "ok": ok,
        "rps": round(ok / args.seconds, 3),
        "p50_ms": percentile_ms(result.latencies_s, 0.50),
        "p99_ms": percentile_ms(result.latencies_s, 0.99),
        "mean_batch": round(tasks / batches, 2) if batches else None,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "failures": dict(result.failures),
    }


def in_process(args: argparse.Namespace) -> int:
    """Seconds per forecast alone and batched, and exact agreement of the paths (docstring)."""
    torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)
    model, tokenizer = random_pair("small", device)
    predictor = KronosPredictor(model, tokenizer, device=device)
    jobs = []
    for client in range(args.clients):
        body = client_body(client, 1, args.samples)
        frame = pd.DataFrame(body["candles"]).set_index("timestamp")
        frame.index = pd.DatetimeIndex(frame.index)
        history = frame.iloc[-400:]  # the service's lookback for 60 bars
        future = pd.date_range(history.index[-1] + BAR, periods=60, freq=BAR)
        jobs.append(
            ForecastJob(
                [history], [pd.DatetimeIndex(history.index)], [future], 60, args.samples, client
            )
        )
    sizes = sorted({1, *[s for s in (2, 4, 8, 16) if s <= len(jobs)], len(jobs)})
    print(f"{predictor.kernels.describe()}; {args.torch_threads} torch threads", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        alone: list[np.ndarray] = []
        for size in sizes:
            started = time.perf_counter()
            if size == 1:
                results = [predictor.forecast_jobs([job])[0] for job in jobs]
            else:
                results = []
                for start in range(0, len(jobs), size):
                    results.extend(predictor.forecast_jobs(jobs[start : start + size]))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - started) / len(jobs)
            paths = [np.stack([f.paths for f in cast(list[Forecast], r)]) for r in results]
            if size == 1:
                alone = paths
            equal = sum(np.array_equal(a, b) for a, b in zip(alone, paths, strict=True))
            rows.append({"round": round_index + 1, "batch": size, "s_per_forecast": seconds,
                         "identical": f"{equal}/{len(jobs)}"})  # fmt: skip
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(
        f"{len(jobs)} forecasts of 60 bars x {args.samples} samples, lookback 400, in-process "
        f"on {device}"
    )
    print("| round | batch | s per forecast | vs alone | paths identical to alone |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    base = {r["round"]: r["s_per_forecast"] for r in rows if r["batch"] == 1}
    for row in rows:
        row["speedup"] = round(base[row["round"]] / row["s_per_forecast"], 2)
        print(
            f"| {row['round']} | {row['batch']} | {row['s_per_forecast']:.3f} | "
            f"{row['speedup']}× | {row['identical']} |"
        )
    print(json.dumps({"benchmark": "batching-in-process", "args": vars(args), "rows": rows}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--horizon-days", type=int, default=1, help="1 day = 60 bars")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--windows", type=int, nargs="+", default=[0, 20], help="ms; 0 = off")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--torch-threads", type=int, default=1, help="KRONOS_TORCH_THREADS")
    parser.add_argument("--max-inflight", type=int, default=8, help="KRONOS_MAX_INFLIGHT")
    parser.add_argument("--in-process", action="store_true", help="the ceiling, without HTTP")
    parser.add_argument("--device", default="cpu", help="--in-process only: cpu or cuda")
    args = parser.parse_args(argv)
    if args.in_process:
        return in_process(args)

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kronos-batching-") as scratch:
        model = save_random_checkpoints(Path(scratch), "small")
        for round_index in range(args.rounds):
            for window_ms in args.windows:
                log = Path(scratch) / f"gunicorn-{round_index}-{window_ms}.log"
                run = measure(model, window_ms, args, log)
                run["round"] = round_index + 1
                runs.append(run)
                print(json.dumps(run), file=sys.stderr)
    baseline: Counter[int] = Counter()
    for run in runs:
        if run["window_ms"] == args.windows[0]:
            baseline[run["round"]] = run["rps"]
    print(
        f"{args.clients} clients, {runs[0]['bars']} bars x {args.samples} samples, "
        f"{args.workers} workers x {args.torch_threads} torch threads, {args.seconds:g} s per run, "
        f"{platform.processor() or platform.machine()}"
    )
    print("| round | window ms | req/s | vs first | p50 ms | p99 ms | mean batch | statuses |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run in runs:
        base = baseline[run["round"]]
        run["ratio"] = round(run["rps"] / base, 2) if base else None
        print(
            f"| {run['round']} | {run['window_ms']} | {run['rps']:.2f} | {run['ratio']}× | "
            f"{run['p50_ms']} | {run['p99_ms']} | {run['mean_batch'] or '-'} | {run['statuses']} |"
        )
    print(json.dumps({"benchmark": "batching", "args": vars(args), "runs": runs}))
    return 1 if any(set(r["statuses"]) - {"200"} or r["failures"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
