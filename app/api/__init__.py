"""HTTP endpoints, one blueprint per concern. Views are thin: the schema loads the request, the
view calls the worker's state or the pipeline, the response schema shapes the answer. A new
endpoint is one module here and one line in `BLUEPRINTS`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Flask
from flask_smorest import Api, Blueprint

BLUEPRINTS: tuple[str, ...] = (
    "app.api.predict",
    "app.api.backtest",
    "app.api.health",
    "app.api.models",
)
"""Modules that each define a flask-smorest `blp`, registered in this order (in /openapi.json)."""
PAGES: tuple[str, ...] = ("app.api.viewer",)
"""Modules that each define a plain Flask `blp`: pages for people, not in the API's spec."""

View = TypeVar("View", bound=Callable[..., Any])


def documents_problems(blp: Blueprint, *statuses: int) -> Callable[[View], View]:
    """Document each error status of a view as the shared problem+json response of that status."""

    def decorate(view: View) -> View:
        for status in statuses:
            view = blp.alt_response(status, HTTPStatus(status).name)(view)
        return view

    return decorate


def register_blueprints(app: Flask, api: Api) -> None:
    for module in BLUEPRINTS:
        api.register_blueprint(importlib.import_module(module).blp)
    for module in PAGES:
        app.register_blueprint(importlib.import_module(module).blp)
