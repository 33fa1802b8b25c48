"""POST /predict and POST /predict/batch."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from app.api import documents_problems
from app.errors import ProblemError, as_problem, problem_body
from app.metrics import get_metrics
from app.policy import runs_forecasts
from app.schemas import (
    BatchRequestSchema,
    BatchResponseSchema,
    InvalidItem,
    PredictRequestSchema,
    PredictResponseSchema,
)
from app.state import worker_state
from app.time_budget import request_deadline, run_within_budget
from kronos_integration.errors import ForecastError
from kronos_integration.pipeline import ForecastResult
from kronos_integration.request import ForecastRequest

logger = logging.getLogger(__name__)

blp = Blueprint("predict", __name__, description="Price forecasts for one ISIN or a batch.")


@blp.route("/predict", methods=["POST"])
@blp.arguments(PredictRequestSchema, example={"isin": "US67066G1040", "horizon_days": 5})
@blp.response(200, PredictResponseSchema)
@documents_problems(blp, 400, 401, 404, 413, 415, 429, 503, 504)
@runs_forecasts
def predict(request: ForecastRequest) -> dict[str, Any]:
    """Forecast the next `horizon_days` trading days of an ISIN."""
    return forecast(request)


@blp.route("/predict/batch", methods=["POST"])
@blp.arguments(BatchRequestSchema)
@blp.response(200, BatchResponseSchema)
@documents_problems(blp, 400, 401, 413, 415, 429, 503, 504)
@runs_forecasts
def predict_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Forecast several requests; each result carries its own status and error."""
    items: Sequence[ForecastRequest | InvalidItem] = batch["items"]
    return {"results": [_batch_result(index, item) for index, item in enumerate(items)]}


def forecast(request: ForecastRequest) -> dict[str, Any]:
    """Run the request through the pipeline within its time budget; the response document."""
    state = worker_state(current_app)
    deadline = request_deadline()

    def run() -> ForecastResult:
        result = state.forecast(request, deadline)
        samples, bars, _ = result.forecast.paths.shape  # (S, L, 6)
        get_metrics().observe_forecast(result.backend.name, result.backend_s, samples, bars)
        return result

    document = run_within_budget(run).to_dict()
    document["metadata"]["worker_pid"] = os.getpid()
    return document


def _batch_result(index: int, item: ForecastRequest | InvalidItem) -> dict[str, Any]:
    """One item's answer: a result with status 200, or its own problem document."""
    try:
        if isinstance(item, InvalidItem):
            raise ProblemError(
                422,
                HTTPStatus.UNPROCESSABLE_ENTITY.phrase,
                "This item does not match the schema; see 'errors' for each field.",
                item.messages,
            )
        result = forecast(item)
    except (ProblemError, ForecastError) as error:
        problem = error if isinstance(error, ProblemError) else as_problem(error)
        body = problem.body()
        return {"index": index, "status": problem.status, "result": None, "error": body}
    except Exception:
        body = problem_body(500, "Internal Server Error", "This item failed unexpectedly.")
        logger.exception(
            "batch item %d failed unexpectedly (request id %s)", index, body["request_id"]
        )
        body["detail"] += f" Quote request id {body['request_id']} when reporting it."
        return {"index": index, "status": 500, "result": None, "error": body}
    return {"index": index, "status": 200, "result": result, "error": None}
