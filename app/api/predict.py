"""POST /predict and POST /predict/batch."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.api import forecast_service
from app.schemas import (
    BatchRequestSchema,
    BatchResponseSchema,
    PredictRequestSchema,
    PredictResponseSchema,
)

blp = Blueprint("predict", __name__, description="Price forecasts for one ISIN or a batch.")


@blp.route("/predict", methods=["POST"])
@blp.arguments(PredictRequestSchema)
@blp.response(200, PredictResponseSchema)
@blp.alt_response(404, description="No price history for the ISIN (see detail).")
@blp.alt_response(413, description="Body over KRONOS_MAX_BODY_BYTES.")
@blp.alt_response(503, description="The worker is still loading its model.")
def predict(request: dict[str, Any]) -> dict[str, Any]:
    """Forecast the next `horizon_days` trading days of an ISIN."""
    return forecast_service().predict(request)


@blp.route("/predict/batch", methods=["POST"])
@blp.arguments(BatchRequestSchema)
@blp.response(200, BatchResponseSchema)
@blp.alt_response(413, description="Body over KRONOS_MAX_BODY_BYTES.")
@blp.alt_response(503, description="The worker is still loading its model.")
def predict_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Forecast several requests; each result carries its own status and error."""
    return forecast_service().predict_batch(batch["items"])
