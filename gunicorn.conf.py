"""Gunicorn settings and hooks for the Kronos service: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value comes from the environment through `app.settings.Settings`, validated once here in
the master, so a bad variable stops start-up with its name. The master never imports torch or
the app: each worker builds the app after the fork, then `post_worker_init` loads its own model
(CUDA cannot survive a fork, and torch's thread pool is not fork-safe).
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from app.log_format import logging_config
from app.settings import Settings, SettingsError

# A bad variable is one line naming it and exit status 2, as the `kronos` command does (gunicorn
# would print a traceback of its config loader first). SystemExit passes gunicorn's loader.
SETTINGS_ERROR_STATUS = 2
try:
    settings = Settings.from_env()
except SettingsError as _error:
    sys.stderr.write(f"error: {_error}\n")
    sys.exit(SETTINGS_ERROR_STATUS)

# Server socket
#
#   bind - KRONOS_HOST:KRONOS_PORT, 127.0.0.1:5001 unless set: this machine only, since API keys are
#       off by default; the image sets KRONOS_HOST=0.0.0.0, so a container's port reaches it.
#   backlog - connections the kernel queues while every worker is busy; beyond it clients are
#       refused at once, which a load balancer retries on another replica.

bind = f"{settings.host}:{settings.port}"
backlog = 256

# Worker processes
#
#   workers - each worker holds its own model copy; more workers serve more requests at once at
#       the price of one model's memory each.
#   worker_class - gthread, so probes and /models answer while a forecast runs in another thread
#       (torch releases the GIL inside its kernels).
#   threads - request threads per worker; predictions beyond KRONOS_MAX_INFLIGHT get 429.
#   timeout - a worker silent this long is killed and replaced; it is above
#       KRONOS_REQUEST_TIMEOUT_S, so the app's own 504 always comes first.
#   graceful_timeout - on SIGTERM, in-flight requests get this long to finish.
#   keepalive - seconds an idle keep-alive connection stays open for the next request of a client
#       or proxy; short, since threads are the scarce resource. On SIGTERM gunicorn closes idle
#       kept-alive connections within 2 s and answers a request arriving on one meanwhile with
#       `Connection: close` (gthread's shutdown, tests/test_graceful.py).
#   KEEPALIVE_MAX_REQUESTS - a connection is closed (`Connection: close`) after this many
#       requests (`pre_request` below): a kept-alive client reconnects now and then, so after a
#       worker restarts, its clients spread over every worker again instead of staying on the
#       survivor for as long as they keep sending.
#   preload_app - off: the app, and with it torch, must be created inside each worker.
#   control_socket_disable - gunicorn 27's runtime control socket has one default path per user,
#       which several instances on one host (tests, side-by-side replicas) would fight over.

workers = settings.workers
worker_class = "gthread"
threads = settings.threads
timeout = settings.timeout_s
graceful_timeout = settings.graceful_timeout_s
keepalive = 5
KEEPALIVE_MAX_REQUESTS = 20
preload_app = False
control_socket_disable = True

# Logging
#
#   loglevel - KRONOS_LOG_LEVEL for gunicorn's own lines and the app's.
#   accesslog - off, and gunicorn.access held at WARNING: the app writes one line per request
#       itself, with its request id.
#   logconfig_dict - gunicorn and the app log through one root handler on stdout, as JSON lines
#       or text (KRONOS_LOG_FORMAT; see app/log_format.py).

loglevel = settings.log_level.lower()
accesslog = None
logconfig_dict: dict[str, Any] = logging_config(settings.log_format, settings.log_level)

# Process naming
#
#   proc_name - tells this service's master and workers apart in ps and top.

proc_name = "kronos"

# Server hooks
#
#   post_fork - in the new worker: bound oneDNN's primitive cache (limit_memory_growth, below),
#       then size torch's thread pool for this worker's share of the cores.
#   pre_request - close the connection after KEEPALIVE_MAX_REQUESTS requests (above).
#   post_request - after a forecast answered 200 (a view marked `runs_forecasts`, which says so in
#       the environ): release_freed_memory (below); not after a refusal, which freed nothing worth
#       trimming.
#   post_worker_init - in the worker, once the app is imported: load and warm up the backend; a
#       model that cannot be served stops the whole server (WORKER_BOOT_ERROR).
#   on_starting / child_exit / on_exit - Prometheus multiprocess mode: every worker writes its
#       samples to files in PROMETHEUS_MULTIPROC_DIR (a fresh temporary folder unless set; emptied
#       at start so an earlier run never adds in) and /metrics merges them; a dead worker's live
#       gauges are dropped when it exits. Set in the master before any worker imports
#       prometheus_client, which reads the variable once, at import.

WORKER_BOOT_ERROR = 3  # the arbiter halts with this status (1 when two workers fail at once)
logger = logging.getLogger("kronos.gunicorn")


# Memory: a worker's resident set stays flat over forecasts of every shape (limit_memory_growth,
# release_freed_memory; measured by benchmarks/memory.py). The benchmark's --without-fix sets
# LIMIT_MEMORY_GROWTH to False for the comparison, --without-trim only TRIM_AFTER_FORECASTS.
LIMIT_MEMORY_GROWTH = True
TRIM_AFTER_FORECASTS = True
ONEDNN_PRIMITIVE_CACHE_CAPACITY = 128
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only


def limit_memory_growth() -> None:
    """Bound oneDNN's primitive cache, in the worker before torch starts.

    The packed linear layers (kronos_integration/model/module.py) run oneDNN primitives, cached
    per input shape; every lookback x sample count x horizon is a new shape, and oneDNN's
    default cache holds 1,024 primitives: about 250 MiB more per Kronos-small worker once full.
    128 keep every shape one forecast uses (the decoding steps reuse theirs) at no measurable
    cost. An ONEDNN_PRIMITIVE_CACHE_CAPACITY in the environment wins.
    """
    if LIMIT_MEMORY_GROWTH:
        os.environ.setdefault(
            "ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_PRIMITIVE_CACHE_CAPACITY)
        )


def release_freed_memory() -> None:
    """Hand the memory a finished forecast freed back to the kernel (glibc's malloc_trim).

    A forecast's KV caches and activations are megabytes each, of a size every request shape
    changes. glibc serves blocks that large from its heaps once its dynamic mmap threshold has
    risen (up to 32 MiB), and keeps them there when freed, in pieces the next shapes do not fit:
    RSS grew from 0.64 GB to 3.0 GB over 200 mixed Kronos-small forecasts, 1.0 GB of it still
    in use after a malloc_trim. Trimming after each forecast keeps it flat for about 15 % more
    CPU per forecast (the pages are faulted in again); a fixed 128 KiB mmap threshold was as
    flat but cost 45 %. glibc only; a no-op elsewhere.
    """
    if LIMIT_MEMORY_GROWTH and TRIM_AFTER_FORECASTS and _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def post_fork(server: Any, worker: Any) -> None:
    limit_memory_growth()
    import torch

    torch.set_num_threads(settings.torch_threads)
    torch.set_num_interop_threads(1)


def pre_request(worker: Any, req: Any) -> None:
    if req.req_number >= KEEPALIVE_MAX_REQUESTS:
        req.must_close = True  # gunicorn then answers with `Connection: close`


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    from app.policy import RAN_FORECASTS  # in the worker, where the app is imported already

    if environ.get(RAN_FORECASTS) and resp.status_code == 200:
        release_freed_memory()


def post_worker_init(worker: Any) -> None:
    from app.metrics import get_metrics
    from app.state import worker_state

    state = worker_state(worker.wsgi)
    loading = threading.Event()
    heartbeat = threading.Thread(
        target=_keep_alive_while, args=(worker, loading), name="kronos-load-heartbeat", daemon=True
    )
    heartbeat.start()
    try:
        state.load()
    except Exception as error:
        logger.critical(
            "worker %d cannot serve KRONOS_MODE=%s, stopping gunicorn: %s",
            worker.pid,
            settings.mode,
            error,
        )
        sys.exit(WORKER_BOOT_ERROR)
    finally:
        loading.set()
    if state.loaded is not None:
        get_metrics(worker.wsgi).set_serving_mode(
            state.loaded.backend.info.name, state.loaded.load_seconds
        )


_METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METRICS_TMP_PREFIX = "kronos-metrics-"


def on_starting(server: Any) -> None:
    directory = os.environ.get(_METRICS_DIR_ENV) or tempfile.mkdtemp(prefix=_METRICS_TMP_PREFIX)
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):
        stale.unlink()
    os.environ[_METRICS_DIR_ENV] = directory


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    directory = Path(os.environ.get(_METRICS_DIR_ENV, ""))
    if directory.name.startswith(_METRICS_TMP_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def _keep_alive_while(worker: Any, done: threading.Event) -> None:
    """Tell the master this worker is alive while its model downloads and loads (it may take
    longer than `timeout`, and the worker's request loop, which normally does this, is not
    running yet)."""
    interval = max(1.0, settings.timeout_s / 4)
    while not done.wait(interval):
        worker.notify()
