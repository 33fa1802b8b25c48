"""HTTP endpoints, one blueprint per concern; views are thin and call `ForecastService`."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from flask import current_app
from flask_smorest import Api, Blueprint

from app.service import EXTENSION_KEY, ForecastService


def forecast_service() -> ForecastService:
    """This worker's service object."""
    service: ForecastService = current_app.extensions[EXTENSION_KEY]
    return service


View = TypeVar("View", bound=Callable[..., Any])


def documents_problems(blp: Blueprint, *statuses: int) -> Callable[[View], View]:
    """Document each error status of a view as the shared problem+json response of that status."""

    def decorate(view: View) -> View:
        for status in statuses:
            view = blp.alt_response(status, HTTPStatus(status).name)(view)
        return view

    return decorate


def register_blueprints(api: Api) -> None:
    from app.api.health import blp as health
    from app.api.models import blp as models
    from app.api.predict import blp as predict
    from app.api.viewer import blp as viewer

    for blueprint in (predict, health, models):
        api.register_blueprint(blueprint)
    api._app.register_blueprint(viewer)  # a plain Flask blueprint: the HTML page is not in the spec
