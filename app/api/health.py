"""GET /health (liveness) and GET /health/ready (backend loaded and warmed up); no API key."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask_smorest import Blueprint

from app.api import documents_problems
from app.errors import problem
from app.policy import public
from app.schemas import HealthSchema, ServiceStatusSchema
from app.state import worker_state

blp = Blueprint("health", __name__, description="Probes for load balancers and orchestrators.")


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema)
@public
def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@blp.route("/health/ready", methods=["GET"])
@blp.response(200, ServiceStatusSchema)
@documents_problems(blp, 503)
@public
def ready() -> dict[str, Any] | Response:
    """200 once this worker has loaded and warmed up its backend: ready and the mode, nothing
    of why a fallback happened (that is in `/models`, behind the API key when keys are on)."""
    state = worker_state(current_app)
    if not state.ready:
        return problem(503, "Service Unavailable", "This worker is still loading its model.")
    return state.status()
