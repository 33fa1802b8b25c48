"""Wires the production guards into an app, in the order their request hooks must run.

After the request id (set first by :mod:`app.request_id`): the metrics and access-log clocks
start, then API keys are checked, then the time budget refuses requests that already waited it
out, and only then does a prediction take an in-flight slot, so refused requests never hold one.
The strict JSON check comes last: it reads the body, which only admitted requests deserve.
"""

from __future__ import annotations

from flask import Flask

from app import auth, backpressure, json_guard, metrics, request_log, time_budget
from app.log_format import protect_secrets
from app.service import EXTENSION_KEY as SERVICE_KEY
from app.service import ForecastService
from app.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Metrics, request logs, API keys, time budget, backpressure and strict JSON for ``app``."""
    service: ForecastService = app.extensions[SERVICE_KEY]
    metrics.init_app(app)
    request_log.init_app(app, serving_mode=lambda: service.serving)
    protect_secrets([settings.hf_token or "", *settings.api_keys])
    auth.init_app(app, settings.api_keys)
    time_budget.init_app(app, settings.request_timeout_s)
    backpressure.init_app(app, settings.max_inflight)
    json_guard.init_app(app)
