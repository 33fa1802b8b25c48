"""The forecasting service: picks the forecaster (Kronos or the simulator), keeps its state, and
answers predictions. One instance per worker, stored as `app.extensions["kronos.service"]`.

`load()` runs once per worker, after gunicorn forks it (never in the master): in `kronos` mode a
model that cannot be loaded raises; in `auto` mode it logs one warning and serves the simulator,
remembering why; `simulated` needs no model. A small warm-up forecast runs before `ready` is set.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from app.errors import ProblemError, problem_body
from app.guarded_forecaster import GuardedForecaster
from app.report import bar_path, daily_predictions
from app.schemas import InvalidItem
from app.settings import Settings, SettingsError
from kronos_integration.data import (
    MIN_HISTORY_BARS,
    FutureGrid,
    History,
    HistoryNotFoundError,
    future_grid,
    infer_bar_interval,
    resolve_history,
    synthetic_history,
    validate_candles,
)
from kronos_integration.forecast import DEFAULT_QUANTILES, Forecast, Forecaster
from kronos_integration.simulator import StatisticalSimulator

if TYPE_CHECKING:
    import torch

    from kronos_integration.registry import ArtifactSpec, LoadedArtifacts

logger = logging.getLogger(__name__)

Serving = Literal["kronos", "simulated"]
_UNPROCESSABLE = HTTPStatus.UNPROCESSABLE_ENTITY.phrase
SIMULATOR_VERSION = "statistical-simulator/ewma-fhs-1"
EXTENSION_KEY = "kronos.service"


class ForecastService:
    """State of this worker's forecaster and the one place predictions are made."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.serving: Serving | None = None
        self.fallback_reason: str | None = None
        self.ready = False
        self.device = "cpu"
        self.dtype: str | None = None
        self.load_seconds: float | None = None
        self.loaded_at: dt.datetime | None = None
        self.artifacts: LoadedArtifacts | None = None
        self._artifact_infos: dict[str, dict[str, Any]] = {}
        self._forecaster: Forecaster | None = None
        self._load_lock = threading.Lock()

    # Loading.

    def load(self) -> None:
        """Load the forecaster for the configured mode, warm it up, then mark the service ready.

        Raises `ModelLoadError` (kronos mode) or `SettingsError` (a CUDA device that is not there).
        """
        with self._load_lock:
            if self.ready:
                return
            started = time.perf_counter()
            if self.settings.mode == "simulated":
                self._use_simulator(None)
                self._warm_up()
            else:
                self._load_kronos_or_fall_back()
            if self._forecaster is not None and self.serving is not None:
                self._forecaster = GuardedForecaster(self._forecaster, self.serving)
            self.load_seconds = time.perf_counter() - started
            self.loaded_at = dt.datetime.now(dt.UTC)
            self.ready = True
            logger.info(
                "worker %d ready: serving %s on %s after %.2f s",
                os.getpid(),
                self.serving,
                self.device,
                self.load_seconds,
            )

    def _load_kronos_or_fall_back(self) -> None:
        device = resolve_device(self.settings.device)
        try:
            self._use_kronos(device)
            self._warm_up()
        except Exception as error:
            if self.settings.mode == "kronos":
                raise
            reason = self._redact(f"{type(error).__name__}: {error}")
            logger.warning(
                "auto mode: the Kronos model could not be loaded (%s); serving the simulator",
                reason,
            )
            self.artifacts = None
            self._artifact_infos = {}
            self._use_simulator(reason)
            self._warm_up()

    def _use_kronos(self, device: torch.device) -> None:
        from kronos_integration.predictor import KronosPredictor
        from kronos_integration.registry import ArtifactSpec, load_artifacts

        s = self.settings
        artifacts = load_artifacts(
            ArtifactSpec(s.model_id, s.model_revision),
            ArtifactSpec(s.tokenizer_id, s.tokenizer_revision),
            device=device,
            token=s.hf_token,
            hub_timeout_s=s.hub_timeout_s,
        )
        self._forecaster = KronosPredictor(
            artifacts.model,
            artifacts.tokenizer,
            device=str(device),
            max_context=s.max_context,
            clip=s.clip,
        )
        self.artifacts = artifacts
        self._artifact_infos = {
            "model": _describe(artifacts.model_spec, artifacts.model_sha, artifacts.model),
            "tokenizer": _describe(
                artifacts.tokenizer_spec, artifacts.tokenizer_sha, artifacts.tokenizer
            ),
        }
        self.device = str(device)
        self.dtype = str(next(artifacts.model.parameters()).dtype).removeprefix("torch.")
        self.serving = "kronos"

    def _use_simulator(self, reason: str | None) -> None:
        self._forecaster = StatisticalSimulator()
        self.serving = "simulated"
        self.fallback_reason = reason
        self.device = "cpu"
        self.dtype = "float64"

    def _warm_up(self) -> None:
        """One small forecast, so the first real request does not pay for lazy initialisation."""
        history = validate_candles(
            synthetic_history("XS0000000009", end=dt.date(2024, 1, 5), bars=64)
        )
        grid = future_grid(pd.DatetimeIndex(history.index), 2)
        self._run(history, grid.timestamps, sample_count=1, seed=0)

    def _redact(self, text: str) -> str:
        token = self.settings.hf_token
        return text.replace(token, "***") if token else text

    # Status.

    def status(self) -> dict[str, Any]:
        """What /health/ready and /models report about this worker."""
        return {
            "status": "ready" if self.ready else "loading",
            "ready": self.ready,
            "mode": self.settings.mode,
            "serving": self.serving,
            "fallback_reason": self.fallback_reason,
            "worker_pid": os.getpid(),
        }

    def model_info(self) -> dict[str, Any]:
        """/models: ids, revisions, shas, parameter counts, device, dtype, load time."""
        return {
            **self.status(),
            "model": self._artifact_infos.get("model"),
            "tokenizer": self._artifact_infos.get("tokenizer"),
            "device": self.device if self.ready else None,
            "dtype": self.dtype,
            "max_context": self.settings.max_context,
            "clip": self.settings.clip,
            "load_seconds": self.load_seconds,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "torch_threads": _torch_threads(),
        }

    # Predictions.

    def predict(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one validated /predict request. Raises ProblemError for the client's mistakes."""
        if not self.ready or self._forecaster is None:
            raise ProblemError(
                503, "Service Unavailable", "The model is still loading; retry shortly."
            )
        started = time.perf_counter()
        history = self._history(request)
        horizon = int(request["horizon_days"])
        grid = _future_grid(history, horizon)
        pred_len = len(grid.timestamps)
        limit, variable = self._prediction_bar_limit()
        if pred_len > limit:
            raise _unprocessable(
                "horizon_days",
                f"{horizon} trading days of these bars is {pred_len} bars; at most {limit} are "
                f"allowed ({variable}={limit})",
            )
        lookback = self._lookback(request.get("lookback"), pred_len, len(history.candles))
        context = history.candles.iloc[-lookback:]
        seed = request.get("seed")
        seed = secrets.randbelow(2**31) if seed is None else int(seed)
        sample_count = int(request.get("sample_count") or self.settings.default_sample_count)
        forecast = self._run(
            context,
            grid.timestamps,
            sample_count=sample_count,
            seed=seed,
            temperature=float(request["temperature"]),
            top_k=int(request["top_k"]),
            top_p=float(request["top_p"]),
            quantiles=request["quantiles"],
        )
        if not np.isfinite(forecast.paths).all():
            raise _unprocessable(
                "candles", "the forecast for this history is not finite (values too large or small)"
            )
        current_price = float(history.candles["close"].iloc[-1])
        response: dict[str, Any] = {
            "isin": request["isin"],
            "model": self.serving,
            "model_version": self.settings.model_id
            if self.serving == "kronos"
            else SIMULATOR_VERSION,
            "prediction_horizon_days": horizon,
            "current_price": current_price,
            "predictions": daily_predictions(forecast, grid, current_price),
        }
        if request.get("include_path"):
            response["path"] = bar_path(forecast)
        response["metadata"] = {
            "device": self.device,
            "max_context": self.settings.max_context,
            "lookback_periods": lookback,
            "prediction_periods": pred_len,
            "history_periods": len(history.candles),
            "history_source": history.source,
            "bar_interval": _bar_interval(history),
            "sample_count": sample_count,
            "seed": seed,
            "temperature": float(request["temperature"]),
            # The simulator has no token distribution: top-p and top-k do not apply to it.
            "top_p": float(request["top_p"]) if self.serving == "kronos" else None,
            "top_k": int(request["top_k"]) if self.serving == "kronos" else None,
            "quantiles": list(forecast.quantile_levels),
            "model_revision": self.artifacts.model_sha if self.artifacts else None,
            "tokenizer": self._artifact_infos.get("tokenizer"),
            "fallback_reason": self.fallback_reason,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
            "worker_pid": os.getpid(),
        }
        return response

    def predict_batch(self, items: Sequence[Mapping[str, Any] | InvalidItem]) -> dict[str, Any]:
        """Answer each item on its own: a result with status 200, or its own problem document."""
        results = []
        for index, item in enumerate(items):
            try:
                if isinstance(item, InvalidItem):
                    raise ProblemError(
                        422,
                        _UNPROCESSABLE,
                        "This item does not match the schema; see 'errors' for each field.",
                        item.messages,
                    )
                result = self.predict(item)
            except ProblemError as error:
                body = problem_body(error.status, error.title, error.detail, error.errors)
                results.append(
                    {"index": index, "status": error.status, "result": None, "error": body}
                )
                continue
            except Exception:
                body = problem_body(500, "Internal Server Error", "This item failed unexpectedly.")
                request_id = body["request_id"]
                logger.exception(
                    "batch item %d failed unexpectedly (request id %s)", index, request_id
                )
                body["detail"] += f" Quote request id {request_id} when reporting it."
                results.append({"index": index, "status": 500, "result": None, "error": body})
                continue
            results.append({"index": index, "status": 200, "result": result, "error": None})
        return {"results": results}

    def _history(self, request: Mapping[str, Any]) -> History:
        s = self.settings
        try:
            return resolve_history(
                request["isin"],
                request.get("candles"),
                data_dir=s.data_dir,
                allow_synthetic=s.allow_synthetic_history or self.serving == "simulated",
            )
        except HistoryNotFoundError as error:
            raise ProblemError(404, "History Not Found", str(error)) from None
        except ValueError as error:
            raise _unprocessable("candles", str(error)) from None

    def _prediction_bar_limit(self) -> tuple[int, str]:
        """Most future bars one forecast may have, and the variable that sets it: Kronos cannot
        generate more bars than its context window holds."""
        s = self.settings
        if self.serving == "kronos" and s.max_context < s.max_prediction_bars:
            return s.max_context, "KRONOS_MAX_CONTEXT"
        return s.max_prediction_bars, "KRONOS_MAX_PREDICTION_BARS"

    def _lookback(self, requested: int | None, pred_len: int, available: int) -> int:
        """Requested bars, else the configured lookback kept within max_context - pred_len when
        the horizon leaves room for MIN_HISTORY_BARS; never more than the history has."""
        if requested is not None:
            return min(int(requested), available)
        lookback = self.settings.lookback
        room = self.settings.max_context - pred_len
        if room >= MIN_HISTORY_BARS:
            lookback = min(lookback, room)
        return min(lookback, available)

    def _run(
        self,
        context: pd.DataFrame,
        future: pd.DatetimeIndex,
        *,
        sample_count: int,
        seed: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ) -> Forecast:
        if self._forecaster is None:
            raise RuntimeError("no forecaster loaded")
        return self._forecaster.forecast(
            context,
            pd.DatetimeIndex(context.index),
            future,
            len(future),
            sample_count=sample_count,
            T=temperature,
            top_k=top_k,
            top_p=top_p,
            quantiles=quantiles,
            seed=seed,
        )


def resolve_device(spec: str) -> torch.device:
    """`KRONOS_DEVICE` as a torch device; a CUDA device that does not exist is a SettingsError."""
    from kronos_integration.registry import resolve_device as registry_device

    try:
        return registry_device(spec)
    except ValueError as error:
        raise SettingsError("KRONOS_DEVICE", spec, f"a device this machine has ({error})") from None


def _describe(spec: ArtifactSpec, sha: str | None, module: torch.nn.Module) -> dict[str, Any]:
    """What /models and metadata say about a loaded artifact (counted once, at load)."""
    return {
        "id": spec.repo_id,
        "revision": spec.revision,
        "sha": sha,
        "parameters": sum(p.numel() for p in module.parameters()),
    }


def _torch_threads() -> int | None:
    """torch's intra-op threads here (set per worker after the fork), if torch is in use."""
    torch_module = sys.modules.get("torch")
    return int(torch_module.get_num_threads()) if torch_module is not None else None


def _future_grid(history: History, horizon: int) -> FutureGrid:
    """`future_grid` of the history, its refusals (and dates past the year 9999) as 422s."""
    too_late = _unprocessable(
        "candles", f"the forecast would run past the year {dt.MAXYEAR}; check the timestamps"
    )
    try:
        grid = future_grid(history.timestamps, horizon)
    except OverflowError:
        raise too_late from None
    except ValueError as error:
        raise _unprocessable("candles", str(error)) from None
    if grid.timestamps[-1].year > dt.MAXYEAR:
        raise too_late
    return grid


def _unprocessable(field: str, message: str) -> ProblemError:
    return ProblemError(422, _UNPROCESSABLE, message, {field: [message]})


def _bar_interval(history: History) -> str:
    return str(pd.Timedelta(infer_bar_interval(history.timestamps)).isoformat())
