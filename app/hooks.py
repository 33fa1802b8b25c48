"""The request hooks, in the one order they run.

Before the view, in this order: open the request context (request id, clock), start the time
budget (refusing a forecast that already waited it out in a queue), check the API key (unless the
view is public), refuse a forecast at once while every in-flight slot is taken, then read and
check the JSON body (only admitted requests get that far). A forecasting view takes its in-flight
slot itself, after its body was validated (`app.policy.runs_forecasts`). After the view, in this
order: echo the request id, count the response in the metrics, write the access-log line.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response

from app import auth, backpressure, context, json_guard, metrics, request_log, time_budget

BEFORE_REQUEST: tuple[Callable[[], Response | None], ...] = (
    context.open_request,
    time_budget.start_budget,
    auth.check_api_key,
    backpressure.refuse_when_full,
    json_guard.check_body,
)
AFTER_REQUEST: tuple[Callable[[Response], Response], ...] = (
    context.echo_request_id,
    metrics.count_response,
    request_log.log_request,
)


def _after_request(response: Response) -> Response:
    for hook in AFTER_REQUEST:
        response = hook(response)
    return response


def init_app(app: Flask) -> None:
    """Install `BEFORE_REQUEST` and `AFTER_REQUEST` on `app`, in that order."""
    for hook in BEFORE_REQUEST:
        app.before_request(hook)
    app.after_request(_after_request)
