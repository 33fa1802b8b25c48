"""Memory of one gunicorn worker in kronos mode: over mixed requests, and under overload.

    python -m benchmarks.memory [--shape small] [--warmup 100] [--requests 1000] [--clients 2]
        [--overload-clients 16] [--overload-seconds 30] [--without-fix | --without-trim]

Saves a random-weight checkpoint of a published Kronos layout (``benchmarks/checkpoints.py``),
starts a real gunicorn in kronos mode (one worker unless ``--workers``, ``KRONOS_TORCH_THREADS``
1 as with two workers on two cores) and reads the first worker's resident set (VmRSS, from
/proc) at each stage:

1. ``loaded``: model loaded and warmed up, no request yet;
2. ``warm``: after ``--warmup`` mixed requests, the baseline;
3. every 100 of ``--requests`` mixed requests (lookback 32 to 512 - horizon bars of the
   synthetic history, horizons 1-30 days, sample counts 1-16, from ``--clients`` clients);
4. ``overload peak``: the highest reading while ``--overload-clients`` clients post mixed
   requests back to back (most get 429);
5. ``after overload``: once no prediction is in flight and the worker has been idle for 2 s.

Targets (issue 10): RSS after the mixed requests within 10 % of ``warm``; after overload within
10 % of before it. ``--without-fix`` runs gunicorn.conf.py with ``LIMIT_MEMORY_GROWTH = False``
(oneDNN's default primitive cache, no malloc_trim after forecasts), for the comparison;
``--without-trim`` keeps the bounded cache and only drops the malloc_trim. Also reports the
worker's CPU seconds (utime + stime, /proc) for the mixed requests: what the trim costs, free of
other processes' load. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.checkpoints import SHAPES, save_random_checkpoints
from benchmarks.live_server import REPO_ROOT, LiveServer, request, wait_idle

ISIN = "US67066G1040"
MAX_CONTEXT = 512
TARGET_GROWTH = 0.10

# gunicorn.conf.py with its memory settings switched off (--without-fix): the file's code runs in
# this config's namespace, and its hooks read the flag from there when called.
CONFIG_OVERRIDE = """\
exec(compile(open({path!r}).read(), {path!r}, "exec"))
{setting} = False
"""


def mixed_request(rng: np.random.Generator) -> dict[str, object]:
    """A forecast request of random shape within the model's window (no sliding)."""
    horizon = int(rng.integers(1, 31))
    return {
        "isin": ISIN,
        "horizon_days": horizon,
        "sample_count": int(rng.integers(1, 17)),
        "lookback": int(rng.integers(32, MAX_CONTEXT - horizon + 1)),
        "seed": int(rng.integers(0, 2**31)),
    }


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo) and the number of usable cores."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {len(os.sched_getaffinity(0))} cores"
    return platform.machine()


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used so far (user + system), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Phase:
    """Statuses and the number of requests sent in one phase."""

    statuses: Counter[int | str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, port: int, body: dict[str, object]) -> None:
        try:
            status: int | str = request(port, "POST", "/predict", body, timeout_s=120)[0]
        except OSError as error:
            status = type(error).__name__
        with self.lock:
            self.statuses[status] += 1


def run_requests(port: int, count: int, clients: int, seed: int, phase: Phase) -> None:
    """``count`` mixed requests shared among ``clients`` client threads."""
    rng = np.random.default_rng(seed)
    bodies = [mixed_request(rng) for _ in range(count)]
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not bodies:
                    return
                body = bodies.pop()
            phase.send(port, body)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def overload(port: int, pid: int, clients: int, seconds: float, phase: Phase) -> float:
    """``clients`` threads posting mixed requests for ``seconds``; the peak RSS (MiB) seen."""
    stop = threading.Event()

    def client(index: int) -> None:
        rng = np.random.default_rng(10_000 + index)
        while not stop.is_set():
            phase.send(port, mixed_request(rng))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    peak = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    return max(peak, rss_mib(pid))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shape", choices=SHAPES, default="small")
    parser.add_argument(
        "--warmup", type=int, default=100, help="mixed requests before the baseline"
    )
    parser.add_argument("--requests", type=int, default=1000, help="mixed requests measured")
    parser.add_argument("--clients", type=int, default=2, help="clients sending them")
    parser.add_argument("--overload-clients", type=int, default=16)
    parser.add_argument("--overload-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8, help="KRONOS_THREADS")
    parser.add_argument("--torch-threads", type=int, default=1, help="KRONOS_TORCH_THREADS")
    fixes = parser.add_mutually_exclusive_group()
    fixes.add_argument(
        "--without-fix", action="store_true", help="gunicorn.conf.py's LIMIT_MEMORY_GROWTH off"
    )
    fixes.add_argument(
        "--without-trim", action="store_true", help="gunicorn.conf.py's TRIM_AFTER_FORECASTS off"
    )
    args = parser.parse_args(argv)
    switched_off = (
        "LIMIT_MEMORY_GROWTH"
        if args.without_fix
        else "TRIM_AFTER_FORECASTS"
        if args.without_trim
        else None
    )

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="kronos-memory-") as scratch:
        model_dir, tokenizer_dir = save_random_checkpoints(Path(scratch), args.shape)
        extra: tuple[str, ...] = ()
        if switched_off is not None:
            config = Path(scratch) / "gunicorn-override.conf.py"
            config.write_text(
                CONFIG_OVERRIDE.format(
                    path=str(REPO_ROOT / "gunicorn.conf.py"), setting=switched_off
                )
            )
            extra = ("-c", str(config))
        env = {
            "KRONOS_MODE": "kronos",
            "KRONOS_MODEL_ID": str(model_dir),
            "KRONOS_TOKENIZER_ID": str(tokenizer_dir),
            "KRONOS_ALLOW_SYNTHETIC_HISTORY": "1",
            "KRONOS_MAX_CONTEXT": str(MAX_CONTEXT),
            "KRONOS_THREADS": str(args.threads),
            "KRONOS_TORCH_THREADS": str(args.torch_threads),
            "HF_HUB_OFFLINE": "1",
        }
        server = LiveServer(
            env, Path(scratch) / "gunicorn.log", workers=args.workers, extra_args=extra
        )
        with server.start(ready_timeout_s=600):
            pid = int(json.loads(request(server.port, "GET", "/health/ready")[2])["worker_pid"])
            rows.append(("loaded", rss_mib(pid)))
            mixed = Phase()
            run_requests(server.port, args.warmup, args.clients, seed=1, phase=mixed)
            rows.append((f"warm ({args.warmup} requests)", rss_mib(pid)))
            started, cpu_started = time.monotonic(), cpu_seconds(pid)
            for done in range(0, args.requests, 100):
                batch = min(100, args.requests - done)
                run_requests(server.port, batch, args.clients, seed=100 + done, phase=mixed)
                rows.append((f"+{done + batch} requests", rss_mib(pid)))
            mixed_s = time.monotonic() - started
            mixed_cpu_s = cpu_seconds(pid) - cpu_started
            wait_idle(server.port, settle_s=2.0)
            before_overload = rss_mib(pid)
            rows.append(("before overload (idle)", before_overload))
            loaded_phase = Phase()
            peak = overload(
                server.port, pid, args.overload_clients, args.overload_seconds, loaded_phase
            )
            rows.append(("overload peak", peak))
            wait_idle(server.port, settle_s=2.0)
            rows.append(("after overload", rss_mib(pid)))

    warm = rows[1][1]
    after_requests = rows[-4][1]
    growth = after_requests / warm - 1
    back = rows[-1][1] / before_overload - 1
    print(
        f"Kronos-{args.shape} shape, {args.workers} worker(s) x {args.threads} threads, torch "
        f"threads {args.torch_threads}{f', {switched_off} off' if switched_off else ''}"
        f" ({cpu_name()})"
    )
    print(f"{'stage':<28} {'RSS MiB':>9}")
    for stage, value in rows:
        print(f"{stage:<28} {value:>9.0f}")
    print(
        f"growth over {args.requests} mixed requests: {growth:+.1%} (target < "
        f"{TARGET_GROWTH:.0%}); after overload vs before: {back:+.1%}; "
        f"mixed requests took {mixed_s:.0f} s, {mixed_cpu_s:.0f} CPU s of the worker "
        f"({mixed_cpu_s / args.requests:.2f} per request); statuses {dict(mixed.statuses)}, "
        f"overload {dict(loaded_phase.statuses)}"
    )
    summary = {
        "benchmark": "memory",
        "shape": args.shape,
        "without_fix": args.without_fix,
        "without_trim": args.without_trim,
        "workers": args.workers,
        "threads": args.threads,
        "torch_threads": args.torch_threads,
        "rss_mib": {stage: round(value, 1) for stage, value in rows},
        "growth": round(growth, 4),
        "after_overload_vs_before": round(back, 4),
        "mixed_seconds": round(mixed_s, 1),
        "mixed_worker_cpu_seconds": round(mixed_cpu_s, 1),
        "statuses": {str(k): v for k, v in mixed.statuses.items()},
        "overload_statuses": {str(k): v for k, v in loaded_phase.statuses.items()},
    }
    print(json.dumps(summary))
    within = growth < TARGET_GROWTH and back < TARGET_GROWTH
    failed = set(mixed.statuses) - {200}
    return 0 if within and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
