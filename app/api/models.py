"""GET /models: what this worker serves and how it got there."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from app.api import documents_problems
from app.schemas import ModelsSchema
from app.state import worker_state

blp = Blueprint("models", __name__, description="The loaded model, its origin and state.")


@blp.route("/models", methods=["GET"])
@blp.response(200, ModelsSchema)
@documents_problems(blp, 401)
def models() -> dict[str, Any]:
    """Mode, model and tokenizer ids, revisions and shas, device, dtype, sizes, load time."""
    return worker_state(current_app).model_info()
