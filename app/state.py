"""This worker's forecasting state: the loaded backend, where history comes from, what to report.

One `WorkerState` per worker, at `app.extensions["kronos.state"]`. `load()` runs once per worker
after gunicorn forks it (never in the master): in `kronos` mode a model that cannot be loaded
raises; in `auto` mode the simulator serves and the reason is kept; a small warm-up forecast runs
before the worker is ready. Tests hand it a backend with `use()`. Forecasts go through the
worker's forecast gate (`KRONOS_CONCURRENT_FORECASTS` compute at once, the others wait their turn)
and, in front of it, a `Batcher` (concurrent requests share a decode, which takes one slot) when
the backend batches and `KRONOS_BATCH_WINDOW_MS` is above 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
from dataclasses import asdict
from typing import Any

from flask import Flask

from app.settings import Settings
from kronos_integration.backends import LoadedBackend, load_backend
from kronos_integration.backends.base import Backend, BackendInfo, BatchingBackend
from kronos_integration.backends.gate import gated
from kronos_integration.batching import Batcher, BatchObserver
from kronos_integration.errors import BackendNotReadyError
from kronos_integration.evaluation.runner import BacktestRun, backtest_request
from kronos_integration.history import HistorySource, configured_sources, resolve_history
from kronos_integration.pipeline import ForecastResult, run_forecast, warm_up
from kronos_integration.request import BacktestRequest, ForecastRequest

logger = logging.getLogger(__name__)

EXTENSION_KEY = "kronos.state"
STILL_LOADING = "The model is still loading; retry shortly."


class WorkerState:
    """The backend this worker serves, once loaded, and the history sources it answers from."""

    def __init__(self, settings: Settings, observe_batch: BatchObserver | None = None) -> None:
        self.settings = settings
        self.observe_batch = observe_batch
        self.loaded: LoadedBackend | None = None
        self._forecaster: Backend | None = None
        self.loaded_at: dt.datetime | None = None
        self.history_sources: list[HistorySource] = []
        self._load_lock = threading.Lock()

    # Loading.

    def load(self) -> None:
        """Load and warm up the backend of the configured mode (once); see the module docstring.

        Raises `ModelLoadError` (kronos mode) or `SettingsError` (e.g. a CUDA device that is not
        there, in every mode).
        """
        with self._load_lock:
            if self.loaded is None:
                self._use(load_backend(self.settings.mode, self.settings.model, warm_up))

    def use(self, backend: Backend, fallback_reason: str | None = None) -> None:
        """Serve `backend` from now on (after one warm-up forecast), replacing any other."""
        with self._load_lock:
            warm_up(backend)
            self._use(LoadedBackend(backend, fallback_reason, load_seconds=0.0))

    def _use(self, loaded: LoadedBackend) -> None:
        self._forecaster = self._batched(
            gated(loaded.backend, self.settings.concurrent_forecasts, self.settings.queue_timeout_s)
        )
        self.history_sources = configured_sources(self.settings.forecast, loaded.backend.info.name)
        self.loaded_at = dt.datetime.now(dt.UTC)
        # Last: a request that sees the worker ready finds its gate, batcher and sources in place.
        self.loaded = loaded
        logger.info(
            "worker %d ready: serving %s on %s after %.2f s",
            os.getpid(),
            self.serving,
            loaded.backend.info.device,
            loaded.load_seconds,
        )

    def _batched(self, backend: Backend) -> Backend:
        """`backend` behind a `Batcher`, unless it cannot batch or the window is 0."""
        window_ms = self.settings.model.batch_window_ms
        if window_ms == 0 or not isinstance(backend, BatchingBackend):
            return backend
        return Batcher(backend, window_ms / 1000, self.settings.max_inflight, self.observe_batch)

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    @property
    def backend(self) -> Backend:
        """The backend serving; `BackendNotReadyError` while it loads."""
        if self.loaded is None:
            raise BackendNotReadyError(STILL_LOADING)
        return self.loaded.backend

    @property
    def forecaster(self) -> Backend:
        """The serving backend behind its gate (and batcher): what forecasts go through;
        `BackendNotReadyError` while it loads."""
        if self.loaded is None or self._forecaster is None:
            raise BackendNotReadyError(STILL_LOADING)
        return self._forecaster

    @property
    def serving(self) -> str | None:
        """The name of the backend serving (None while loading)."""
        return self.loaded.backend.info.name if self.loaded else None

    @property
    def fallback_reason(self) -> str | None:
        return self.loaded.fallback_reason if self.loaded else None

    # Forecasts.

    def forecast(self, request: ForecastRequest, deadline: float | None = None) -> ForecastResult:
        """Resolve the request's history and run the pipeline on the serving backend (through
        the batcher, when there is one)."""
        forecaster = self.forecaster  # BackendNotReadyError while loading
        history = resolve_history(request.instrument, request.candles, self.history_sources)
        return run_forecast(
            forecaster,
            history,
            request,
            self.settings.forecast,
            deadline=deadline,
            fallback_reason=self.fallback_reason,
        )

    def backtest(self, request: BacktestRequest, deadline: float | None = None) -> BacktestRun:
        """Resolve the request's history and backtest the serving backend on it; the summary says
        what served (`backend.fallback_reason`) and where the history came from
        (`history_source`: `request`, `data_dir` or `synthetic`, i.e. made up). A history the
        backtest cannot use is filed under the field the client can change (`backtest_request`);
        a stored file no forecast could use is the operator's `StoredHistoryError`."""
        forecaster = self.forecaster  # BackendNotReadyError while loading
        history = resolve_history(request.instrument, request.candles, self.history_sources)
        run = backtest_request(
            forecaster, history, request, self.settings.forecast, deadline=deadline
        )
        run.summary["backend"]["fallback_reason"] = self.fallback_reason
        run.summary["history_source"] = history.source
        return run

    # What /health/ready and /models report.

    def status(self) -> dict[str, Any]:
        """Ready or not and the mode, for anyone (no internals: the fallback reason is in
        `model_info`)."""
        return {
            "status": "ready" if self.ready else "loading",
            "ready": self.ready,
            "mode": self.settings.mode,
            "serving": self.serving,
            "worker_pid": os.getpid(),
        }

    def model_info(self) -> dict[str, Any]:
        """Ids, revisions, shas, parameter counts, device, dtype, load time, why `auto` mode fell
        back (redacted)."""
        info: BackendInfo | None = self.loaded.backend.info if self.loaded else None
        artifacts = info.artifacts if info else {}
        return {
            **self.status(),
            "fallback_reason": self.fallback_reason,
            "model": asdict(artifacts["model"]) if "model" in artifacts else None,
            "tokenizer": asdict(artifacts["tokenizer"]) if "tokenizer" in artifacts else None,
            "device": info.device if info else None,
            "dtype": info.dtype if info else None,
            "max_context": self.settings.model.max_context,
            "clip": self.settings.model.clip,
            "load_seconds": self.loaded.load_seconds if self.loaded else None,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "torch_threads": _torch_threads(),
        }


def worker_state(app: Flask) -> WorkerState:
    """`app`'s worker state."""
    state: WorkerState = app.extensions[EXTENSION_KEY]
    return state


def _torch_threads() -> int | None:
    """torch's intra-op threads here (set per worker after the fork), if torch is in use."""
    torch_module = sys.modules.get("torch")
    return int(torch_module.get_num_threads()) if torch_module is not None else None
