"""Load benchmark: a real gunicorn (simulated mode) driven by a bounded pool of client threads.

    python -m benchmarks.load [--clients 16] [--seconds 30] [--workers 2] [--threads 8]

Each client thread sends the seed's request (``POST /predict``) back to back on fresh loopback
connections for the given time. Prints latency percentiles, throughput and counts by status, then
one JSON line. Exits 1 if any answer was neither 200 nor a documented 429, or a request failed.
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

from benchmarks.live_server import LiveServer, request

SEED_REQUEST = {"isin": "US67066G1040", "horizon_days": 5}
ACCEPTED_STATUSES = frozenset({200, 429})


@dataclass
class LoadResult:
    """What the clients saw: latencies (s) of 200s and of 429s, counts by status, failures."""

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
            elif status == 429:
                self.refused_latencies_s.append(seconds)

    def fail(self, error: Exception) -> None:
        with self.lock:
            self.failures[type(error).__name__] += 1


def drive(port: int, clients: int, seconds: float, body: dict[str, object]) -> LoadResult:
    """Run ``clients`` threads sending ``body`` to ``/predict`` for ``seconds``."""
    result = LoadResult()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                status, _, _ = request(port, "POST", "/predict", body, timeout_s=60)
            except OSError as error:
                result.fail(error)
                continue
            result.record(status, time.perf_counter() - started)

    threads = [threading.Thread(target=client, name=f"load-{i}") for i in range(clients)]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--max-inflight", type=int, default=4, help="KRONOS_MAX_INFLIGHT")
    args = parser.parse_args(argv)

    env = {
        "KRONOS_MODE": "simulated",
        "KRONOS_MAX_INFLIGHT": str(args.max_inflight),
        "KRONOS_THREADS": str(args.threads),
        "KRONOS_LOG_FORMAT": "json",
    }
    with tempfile.TemporaryDirectory(prefix="kronos-load-") as scratch:
        server = LiveServer(env, Path(scratch) / "gunicorn.log", workers=args.workers)
        with server:
            result = drive(server.port, args.clients, args.seconds, SEED_REQUEST)
    summary = summarise(result, args.seconds, args.clients, args.workers)
    print(
        f"{summary['requests']} requests in {args.seconds:g} s from {args.clients} clients "
        f"on {args.workers} workers x {args.threads} threads: "
        f"{summary['throughput_rps']} req/s; 200s p50 {summary['p50_ms']} ms, "
        f"p95 {summary['p95_ms']} ms, p99 {summary['p99_ms']} ms; "
        f"429s p50 {summary['refused_p50_ms']} ms; "
        f"statuses {summary['statuses']}; failures {summary['failures']}"
    )
    print(json.dumps(summary))
    unexpected = set(result.statuses) - ACCEPTED_STATUSES
    return 1 if unexpected or result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
