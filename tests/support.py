"""Constants and helpers the tests share: the seed request, settings built from flat overrides,
an app with its backend loaded, and the problem+json check."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.schemas import ProblemSchema
from app.settings import Settings
from app.state import WorkerState, worker_state
from kronos_integration.config import ForecastSettings, ModelSettings
from kronos_integration.redact import MAX_DETAIL_CHARS
from tests.hub_fixtures import point_hub_at

SEED_REQUEST: dict[str, Any] = {"isin": "US67066G1040", "horizon_days": 5}
"""The request the seed service answered; it must keep working unchanged."""

QUIET_TORCH = {"KRONOS_TORCH_THREADS": "1", "HF_HUB_OFFLINE": "1"}
"""Environment for a real gunicorn in tests: one torch thread per worker, no hub requests."""


def kronos_env(model: Path, tokenizer: Path) -> dict[str, str]:
    """A real gunicorn's environment for kronos mode with local checkpoints, synthetic history
    allowed (see `QUIET_TORCH`)."""
    return {
        **QUIET_TORCH,
        "KRONOS_MODE": "kronos",
        "KRONOS_MODEL_ID": str(model),
        "KRONOS_TOKENIZER_ID": str(tokenizer),
        "KRONOS_ALLOW_SYNTHETIC_HISTORY": "1",
    }


_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelSettings)}
_FORECAST_FIELDS = {f.name for f in dataclasses.fields(ForecastSettings)}


def make_settings(base: Settings | None = None, **overrides: Any) -> Settings:
    """`base` (default `Settings()`) with `overrides` given by field name, wherever the field
    lives: `make_settings(mode="kronos", model_id=..., max_inflight=1)`."""
    base = base or Settings()
    model = {k: v for k, v in overrides.items() if k in _MODEL_FIELDS}
    forecast = {k: v for k, v in overrides.items() if k in _FORECAST_FIELDS}
    service = {k: v for k, v in overrides.items() if k not in _MODEL_FIELDS | _FORECAST_FIELDS}
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, **model),
        forecast=dataclasses.replace(base.forecast, **forecast),
        **service,
    )


def loaded_app(settings: Settings) -> Flask:
    """`create_app(settings)` with its backend loaded, as gunicorn's worker hook does."""
    app = create_app(settings)
    app.config["TESTING"] = True
    worker_state(app).load()
    return app


def state_of(app: Flask) -> WorkerState:
    return worker_state(app)


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """`response` is problem+json with `status`, the request id echoed, `field` in its errors
    (whose messages do not start with their field's name)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert ProblemSchema().validate(body) == {}
    assert body["status"] == status and body["title"] and body["detail"]
    if "X-Request-ID" in response.headers:
        assert body["request_id"] == response.headers["X-Request-ID"]
    if field is not None:
        assert field in body["errors"], body
    for name, messages in (body.get("errors") or {}).items():
        if isinstance(messages, list):  # a field's messages do not repeat its name
            assert not any(str(m).startswith(f"{name}: ") for m in messages), body
    return body


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `condition` until it holds (a state another thread reaches), failing after a while."""
    give_up = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < give_up, "the condition never held"
        time.sleep(0.002)


def assert_redacted(reason: str | None, *private: str) -> str:
    """`reason` is a load error as clients see it (`kronos_integration.redact.redact_detail`): one
    bounded line with no file system path and none of the `private` texts (paths a test made)."""
    assert reason, "no reason given"
    assert "\n" not in reason and len(reason) <= MAX_DETAIL_CHARS, reason
    assert not re.search(r"(?<![\w/.:-])~?/\w", reason), f"a path in {reason!r}"
    for text in private:
        assert text not in reason
    return reason


def isolate_environment(monkeypatch: pytest.MonkeyPatch, hf_home: Path) -> None:
    """No KRONOS_* variable from outside, and an empty hub cache at `hf_home`, offline."""
    for name in list(os.environ):
        if name.startswith("KRONOS_"):
            monkeypatch.delenv(name)
    point_hub_at(monkeypatch, hf_home, offline=True)
