"""HTTP endpoints, one blueprint per concern; views are thin and call `ForecastService`."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Api

from app.service import EXTENSION_KEY, ForecastService


def forecast_service() -> ForecastService:
    """This worker's service object."""
    service: ForecastService = current_app.extensions[EXTENSION_KEY]
    return service


def register_blueprints(api: Api) -> None:
    from app.api.health import blp as health
    from app.api.models import blp as models
    from app.api.predict import blp as predict

    for blueprint in (predict, health, models):
        api.register_blueprint(blueprint)
