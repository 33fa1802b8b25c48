"""The Flask application factory. Nothing heavy happens here: the model loads per worker, after
gunicorn forks it (`gunicorn.conf.py`), through `app.extensions["kronos.service"].load()`.

The factory imports its parts when called, so that `gunicorn.conf.py` can read `app.settings` in
the master without pulling in pandas, flask-smorest or the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.settings import Settings

SETTINGS_KEY = "kronos.settings"
API_TITLE = "Kronos prediction service"
API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for `settings` (default: `Settings.from_env()`); the model is not loaded."""
    from flask import Flask

    from app import errors, hardening, request_id
    from app.api import register_blueprints
    from app.openapi import ProblemApi
    from app.service import EXTENSION_KEY as SERVICE_KEY
    from app.service import ForecastService
    from app.settings import Settings

    settings = settings or Settings.from_env()
    app = Flask(__name__)
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
    app.extensions[SERVICE_KEY] = ForecastService(settings)
    request_id.init_app(app)
    hardening.init_app(app, settings)
    api = ProblemApi(app)
    errors.init_app(app)
    register_blueprints(api)
    return app
