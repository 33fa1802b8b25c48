"""GET /health (liveness) and GET /health/ready (model loaded and warmed up)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from app.api import documents_problems, forecast_service
from app.errors import problem
from app.schemas import HealthSchema, ServiceStatusSchema

blp = Blueprint("health", __name__, description="Probes for load balancers and orchestrators.")


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema)
def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@blp.route("/health/ready", methods=["GET"])
@blp.response(200, ServiceStatusSchema)
@documents_problems(blp, 503)
def ready() -> dict[str, Any] | Response:
    """200 once this worker has loaded and warmed up its forecaster."""
    service = forecast_service()
    if not service.ready:
        return problem(503, "Service Unavailable", "This worker is still loading its model.")
    return service.status()
