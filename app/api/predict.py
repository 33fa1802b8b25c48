"""POST /predict and POST /predict/batch."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.api import documents_problems, forecast_service
from app.schemas import (
    BatchRequestSchema,
    BatchResponseSchema,
    PredictRequestSchema,
    PredictResponseSchema,
)

blp = Blueprint("predict", __name__, description="Price forecasts for one ISIN or a batch.")


@blp.route("/predict", methods=["POST"])
@blp.arguments(PredictRequestSchema, example={"isin": "US67066G1040", "horizon_days": 5})
@blp.response(200, PredictResponseSchema)
@documents_problems(blp, 400, 401, 404, 413, 415, 429, 503, 504)
def predict(request: dict[str, Any]) -> dict[str, Any]:
    """Forecast the next `horizon_days` trading days of an ISIN."""
    return forecast_service().predict(request)


@blp.route("/predict/batch", methods=["POST"])
@blp.arguments(BatchRequestSchema)
@blp.response(200, BatchResponseSchema)
@documents_problems(blp, 400, 401, 413, 415, 429, 503, 504)
def predict_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Forecast several requests; each result carries its own status and error."""
    return forecast_service().predict_batch(batch["items"])
