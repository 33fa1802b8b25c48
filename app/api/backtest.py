"""POST /backtest: score the serving backend on rolling origins of one instrument's history."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from app.api import documents_problems
from app.policy import runs_forecasts
from app.schemas import BacktestRequestSchema, BacktestResponseSchema
from app.state import worker_state
from app.time_budget import request_deadline, run_within_budget
from kronos_integration.request import BacktestRequest

blp = Blueprint(
    "backtest", __name__, description="How well the serving model forecast an instrument's past."
)


@blp.route("/backtest", methods=["POST"])
@blp.arguments(
    BacktestRequestSchema,
    example={"isin": "US67066G1040", "horizon_days": [1, 5], "origins": 20},
)
@blp.response(200, BacktestResponseSchema)
@documents_problems(blp, 400, 401, 404, 413, 415, 422, 429, 503, 504)
@runs_forecasts
def backtest(request: BacktestRequest) -> dict[str, Any]:
    """Forecast `origins` past points of the history with the serving backend and score each
    horizon against what happened, beside the random walk, drift and Gaussian random walk (the
    summary of `kronos backtest`)."""
    state = worker_state(current_app)
    deadline = request_deadline()
    return run_within_budget(lambda: state.backtest(request, deadline)).summary
