"""Load benchmark: a real gunicorn driven by a bounded pool of client threads.

    python -m benchmarks.load [--clients 16] [--seconds 30] [--workers 2] [--threads 8]
    python -m benchmarks.load --mode kronos --clients 1,2,4,8,16 [--shape small] [--seconds 30]

Each client thread sends the seed's request (``POST /predict``) back to back on fresh loopback
connections for the given time; a refused one (429, or 503 from the forecast queue) is sent again
at once, or after its ``Retry-After`` with ``--honour-retry-after``. Prints latency percentiles,
throughput and counts by status, then one JSON line per run. Exits 1 if any answer was neither
200 nor a documented refusal (429, 503 with ``Retry-After``), or a request failed.

``--mode kronos`` serves a random-weight checkpoint of a published Kronos layout
(``benchmarks/checkpoints.py``, Kronos-small by default) instead of the simulator. A list of
client counts runs each level in turn against the same server (idle in between) and ends with
the goodput targets of issue 10: completed forecasts per second at the highest level at least
80 % of the best rate at any lower level, and p99 of the answered requests there at most 3x the
p50 of one client alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.checkpoints import SHAPES, save_random_checkpoints
from benchmarks.live_server import LiveServer, request, wait_idle

SEED_REQUEST = {"isin": "US67066G1040", "horizon_days": 5}
REFUSALS = frozenset({429, 503})  # with Retry-After: the in-flight bound, the forecast queue
ACCEPTED_STATUSES = frozenset({200}) | REFUSALS
GOODPUT_SHARE = 0.8  # forecasts/s at the top level vs the best lower level
P99_FACTOR = 3.0  # p99 at the top level vs one client's p50


@dataclass
class LoadResult:
    """What the clients saw: latencies (s) of 200s and of refusals, counts by status, failures."""

    latencies_s: list[float] = field(default_factory=list)
    refused_latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                self.latencies_s.append(seconds)
            elif status in REFUSALS:
                self.refused_latencies_s.append(seconds)

    def fail(self, error: Exception) -> None:
        with self.lock:
            self.failures[type(error).__name__] += 1


def drive(
    port: int,
    bodies: list[dict[str, Any]],
    seconds: float,
    honour_retry_after: bool = False,
    timeout_s: float = 60,
) -> LoadResult:
    """Run one client thread per body, each sending its body to ``/predict`` back to back for
    ``seconds``; with ``honour_retry_after`` a client waits a refusal's ``Retry-After`` before its
    next request."""
    result = LoadResult()
    stop_at = time.monotonic() + seconds

    def client(body: dict[str, Any]) -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                status, headers, _ = request(port, "POST", "/predict", body, timeout_s=timeout_s)
            except OSError as error:
                result.fail(error)
                continue
            result.record(status, time.perf_counter() - started)
            if status in REFUSALS and "Retry-After" not in headers:
                result.fail(ValueError(f"{status} without Retry-After"))
            elif status in REFUSALS and honour_retry_after:
                time.sleep(min(float(headers["Retry-After"]), max(0.0, stop_at - time.monotonic())))

    threads = [
        threading.Thread(target=client, args=(body,), name=f"load-{i}")
        for i, body in enumerate(bodies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def percentile_ms(values_s: list[float], share: float) -> float | None:
    """The ``share`` quantile (0..1) of ``values_s`` in ms (inclusive method); None when empty."""
    if not values_s:
        return None
    if len(values_s) == 1:
        return round(values_s[0] * 1000, 1)
    cuts = statistics.quantiles(values_s, n=100, method="inclusive")
    return round(cuts[round(share * 100) - 1] * 1000, 1)


def summarise(result: LoadResult, seconds: float, clients: int, workers: int) -> dict[str, object]:
    """Latency percentiles in ms, throughput in answered requests per second, counts by status."""
    latencies = result.latencies_s
    answered = sum(result.statuses.values())
    return {
        "benchmark": "load",
        "clients": clients,
        "workers": workers,
        "seconds": seconds,
        "requests": answered,
        "throughput_rps": round(answered / seconds, 1),
        "ok_rps": round(len(latencies) / seconds, 1),
        "p50_ms": percentile_ms(latencies, 0.50),
        "p95_ms": percentile_ms(latencies, 0.95),
        "p99_ms": percentile_ms(latencies, 0.99),
        "refused_p50_ms": percentile_ms(result.refused_latencies_s, 0.50),
        "statuses": {str(code): count for code, count in sorted(result.statuses.items())},
        "failures": dict(result.failures),
    }


def goodput_verdict(summaries: list[dict[str, object]]) -> dict[str, object]:
    """Issue 10's targets over a sweep of client counts (the last level against the others)."""
    top, lower = summaries[-1], summaries[:-1]
    best_lower = max(float(str(s["ok_rps"])) for s in lower)
    lone = next((s for s in summaries if s["clients"] == 1), None)
    lone_p50 = lone["p50_ms"] if lone is not None else None
    top_p99 = top["p99_ms"]
    rate_share = float(str(top["ok_rps"])) / best_lower if best_lower else None
    p99_ratio = (
        float(str(top_p99)) / float(str(lone_p50))
        if top_p99 is not None and lone_p50 is not None
        else None
    )
    return {
        "benchmark": "load-goodput",
        "top_clients": top["clients"],
        "best_lower_ok_rps": best_lower,
        "rate_share": None if rate_share is None else round(rate_share, 3),
        "rate_target_met": rate_share is not None and rate_share >= GOODPUT_SHARE,
        "lone_p50_ms": lone_p50,
        "top_p99_ms": top_p99,
        "p99_ratio": None if p99_ratio is None else round(p99_ratio, 2),
        "p99_target_met": p99_ratio is not None and p99_ratio <= P99_FACTOR,
    }


def client_levels(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4] (ascending, each at least 1)."""
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError(f"client counts must be positive integers, got {text!r}")
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=["simulated", "kronos"], default="simulated")
    parser.add_argument("--shape", choices=SHAPES, default="small", help="kronos mode's layout")
    parser.add_argument(
        "--clients", type=client_levels, default=[16], help="client count, or a list: 1,2,4,8,16"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="per client count")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--max-inflight", type=int, help="KRONOS_MAX_INFLIGHT (server default)")
    parser.add_argument(
        "--torch-threads", type=int, help="KRONOS_TORCH_THREADS (default: cores/workers)"
    )
    parser.add_argument(
        "--concurrent-forecasts", type=int, help="KRONOS_CONCURRENT_FORECASTS (server default)"
    )
    parser.add_argument("--queue-timeout-s", type=float, help="KRONOS_QUEUE_TIMEOUT_S")
    parser.add_argument(
        "--honour-retry-after",
        action="store_true",
        help="clients wait a refusal's Retry-After (default: they retry at once, a worst case)",
    )
    args = parser.parse_args(argv)

    env = {
        "KRONOS_MODE": args.mode,
        "KRONOS_THREADS": str(args.threads),
        "KRONOS_LOG_FORMAT": "json",
    }
    optional = {
        "KRONOS_MAX_INFLIGHT": args.max_inflight,
        "KRONOS_TORCH_THREADS": args.torch_threads,
        "KRONOS_CONCURRENT_FORECASTS": args.concurrent_forecasts,
        "KRONOS_QUEUE_TIMEOUT_S": args.queue_timeout_s,
    }
    env.update({name: str(value) for name, value in optional.items() if value is not None})
    summaries = []
    with tempfile.TemporaryDirectory(prefix="kronos-load-") as scratch:
        if args.mode == "kronos":
            model_dir, tokenizer_dir = save_random_checkpoints(Path(scratch), args.shape)
            env.update(
                {
                    "KRONOS_MODEL_ID": str(model_dir),
                    "KRONOS_TOKENIZER_ID": str(tokenizer_dir),
                    "KRONOS_ALLOW_SYNTHETIC_HISTORY": "1",
                    "HF_HUB_OFFLINE": "1",
                }
            )
        server = LiveServer(env, Path(scratch) / "gunicorn.log", workers=args.workers)
        with server.start(ready_timeout_s=600):
            for clients in args.clients:
                wait_idle(server.port)
                result = drive(
                    server.port, [SEED_REQUEST] * clients, args.seconds, args.honour_retry_after
                )
                summary = summarise(result, args.seconds, clients, args.workers)
                summaries.append((summary, result))
                print(
                    f"{summary['requests']} requests in {args.seconds:g} s from {clients} "
                    f"clients on {args.workers} workers x {args.threads} threads "
                    f"({args.mode}{' ' + args.shape if args.mode == 'kronos' else ''}): "
                    f"{summary['throughput_rps']} req/s, {summary['ok_rps']} forecasts/s; "
                    f"200s p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, "
                    f"p99 {summary['p99_ms']} ms; refusals p50 {summary['refused_p50_ms']} ms; "
                    f"statuses {summary['statuses']}; failures {summary['failures']}",
                    flush=True,
                )
                print(
                    json.dumps(
                        {
                            **summary,
                            "mode": args.mode,
                            "honour_retry_after": args.honour_retry_after,
                        }
                    ),
                    flush=True,
                )
    if len(summaries) > 1:
        header = ("clients", "forecasts/s", "p50 ms", "p99 ms", "429s", "503s", "other")
        print("{:>7} {:>11} {:>9} {:>9} {:>7} {:>6} {:>6}".format(*header))
        for summary, result in summaries:
            other = sum(n for code, n in result.statuses.items() if code not in ACCEPTED_STATUSES)
            print(
                f"{summary['clients']:>7} {summary['ok_rps']:>11} {summary['p50_ms']!s:>9} "
                f"{summary['p99_ms']!s:>9} {result.statuses.get(429, 0):>7} "
                f"{result.statuses.get(503, 0):>6} {other + sum(result.failures.values()):>6}"
            )
        print(json.dumps(goodput_verdict([summary for summary, _ in summaries])))
    unexpected = any(
        set(result.statuses) - ACCEPTED_STATUSES or result.failures for _, result in summaries
    )
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
