"""The Flask application factory. Nothing heavy happens here: the backend loads per worker, after
gunicorn forks it (`gunicorn.conf.py`), through `app.state.WorkerState.load()`.

The factory imports its parts when called, so that `gunicorn.conf.py` can read `app.settings` in
the master without pulling in flask-smorest, the app's modules or the forecasting pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.settings import Settings

API_TITLE = "Kronos prediction service"
API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for `settings` (default: `Settings.from_env()`); the backend is not loaded."""
    from flask import Flask

    from app import auth, backpressure, errors, hooks, metrics, time_budget
    from app.api import register_blueprints
    from app.log_format import protect_secrets
    from app.openapi import ProblemApi
    from app.settings import SETTINGS_KEY, Settings
    from app.state import EXTENSION_KEY as STATE_KEY
    from app.state import WorkerState

    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)  # the viewer serves its own files
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[SETTINGS_KEY] = settings
    service_metrics = metrics.init_app(app)
    app.extensions[STATE_KEY] = WorkerState(settings, observe_batch=service_metrics.observe_batch)
    protect_secrets([settings.model.hf_token or "", *settings.api_keys])
    auth.init_app(app, settings.api_keys)
    time_budget.init_app(app, settings.request_timeout_s)
    backpressure.init_app(
        app, settings.max_inflight, refusal_delay_s=settings.refusal_delay_ms / 1000
    )
    hooks.init_app(app)
    api = ProblemApi(app)
    errors.init_app(app)
    register_blueprints(app, api)
    return app
