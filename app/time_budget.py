"""A per-request time budget: refuse work that cannot start in time, cut off work that overruns.

Each request gets a deadline ``request_timeout_s`` after it arrived. Arrival is the moment the
worker picked the request up, or earlier when a front proxy stamped ``X-Request-Start``
(``t=<unix time>`` in seconds, milliseconds or microseconds, as nginx and Heroku write it): a
request that already waited out its budget in a queue is answered 503 with ``Retry-After`` before
any work starts (views marked `policy.runs_forecasts` only).

:func:`run_within_budget` runs a forecast in a helper thread and waits for it at most until the
deadline; past it the client gets 504 problem+json at once (in a batch, the item that ran out and
those after it). A thread cannot be killed, so an overrunning forecast runs to its end in the
background and keeps its in-flight slot until then: abandoned work still counts against
:mod:`app.backpressure`'s bound. A gunicorn ``timeout`` above the budget is the last line of
defence against a worker that stops answering entirely.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request

from app import context
from app.backpressure import current_slot
from app.errors import RETRY_AFTER_S, ProblemError, problem
from app.metrics import get_metrics
from app.policy import policy_of_request
from kronos_integration.errors import BackendBusyError

logger = logging.getLogger(__name__)

EXTENSION_KEY = "kronos.time_budget"
REQUEST_START_HEADER = "X-Request-Start"

T = TypeVar("T")


class BudgetExceeded(ProblemError):
    """The request's time budget ran out before its forecast finished: 504 problem+json."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(
            504,
            "Time Budget Exceeded",
            f"The forecast did not finish within the {budget_s:g} s time budget "
            "(KRONOS_REQUEST_TIMEOUT_S); ask for fewer samples, a shorter horizon or less history.",
        )
        self.budget_s = budget_s


def parse_request_start(value: str, now: float) -> float | None:
    """Unix time in seconds from an ``X-Request-Start`` value, or ``None`` if implausible.

    Accepts ``t=1700000000.123``, ``1700000000123`` (ms) or ``1700000000123456`` (µs); a stamp
    in the future or more than a day old is ignored.
    """
    text = value.strip().removeprefix("t=")
    try:
        stamp = float(text)
    except ValueError:
        return None
    for scale in (1.0, 1e3, 1e6):
        seconds = stamp / scale
        if now - 86_400 <= seconds <= now + 1:
            return seconds
    return None


def request_deadline() -> float | None:
    """The current request's deadline as a `time.monotonic()` instant (None outside one)."""
    request_context = context.current()
    return request_context.deadline if request_context else None


def start_budget() -> Response | None:
    """Before-request hook: set the request's deadline; refuse a forecasting request that already
    waited out its budget in a front proxy's queue (503 with Retry-After)."""
    request_context = context.current()
    if request_context is None:
        return None
    budget_s: float = current_app.extensions[EXTENSION_KEY]
    waited = 0.0
    stamp_header = request.headers.get(REQUEST_START_HEADER)
    if stamp_header:
        arrived = parse_request_start(stamp_header, time.time())
        if arrived is not None:
            waited = max(0.0, time.time() - arrived)
    request_context.budget_s = budget_s
    request_context.deadline = request_context.started - waited + budget_s
    if waited >= budget_s and policy_of_request().runs_forecasts:
        get_metrics().rejected.labels(reason="queued_too_long").inc()
        logger.warning("refused a request that waited %.1f s in a queue", waited)
        return problem(
            503,
            "Request waited too long",
            f"The request waited {waited:.1f} s before a worker could take it, beyond the "
            f"{budget_s:g} s time budget; retry later.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return None


def run_within_budget(work: Callable[[], T]) -> T:
    """Run ``work()`` in a helper thread and return its result, or raise :class:`BudgetExceeded`.

    The thread sees the caller's Flask contexts and holds the request's in-flight slot until
    ``work`` ends, even after the client got its 504 (forecasts given the request's deadline stop
    early). A ``TimeoutError`` from ``work`` is a 504 too. Outside a budgeted request ``work`` runs
    directly.
    """
    request_context = context.current()
    if request_context is None or request_context.budget_s is None:
        return work()
    budget_s = request_context.budget_s
    if request_context.remaining_s() <= 0:
        raise BudgetExceeded(budget_s)
    slot = current_slot()
    if slot is not None:
        slot.hold()
    outcome: dict[str, Any] = {}
    done = threading.Event()
    abandoned = threading.Event()
    variables = contextvars.copy_context()
    request_id = request_context.request_id

    def target() -> None:
        try:
            outcome["value"] = variables.run(work)
        except BaseException as error:  # handed to the request thread below
            outcome["error"] = error
        finally:
            if slot is not None:
                slot.release()
            done.set()
            if abandoned.is_set():
                _log_abandoned_end(request_id, request_context.started, outcome.get("error"))

    threading.Thread(target=target, name="kronos-forecast", daemon=True).start()
    if not done.wait(timeout=max(0.0, request_context.remaining_s())):
        abandoned.set()
        get_metrics().rejected.labels(reason="deadline").inc()
        logger.warning("a forecast overran the %g s time budget; answering 504", budget_s)
        raise BudgetExceeded(budget_s)
    if isinstance(outcome.get("error"), TimeoutError):  # the forecaster saw the deadline first
        get_metrics().rejected.labels(reason="deadline").inc()
        raise BudgetExceeded(budget_s) from outcome["error"]
    if isinstance(outcome.get("error"), BackendBusyError):  # waited out the forecast queue
        get_metrics().rejected.labels(reason="queued_too_long").inc()
        logger.warning("refused a prediction: %s", outcome["error"])
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["value"]
    return result


def _log_abandoned_end(request_id: str, started: float, error: BaseException | None) -> None:
    """Say when work that outlived its request's 504 let go of its slot, and how it ended (a
    forecast that saw its deadline says how far it got)."""
    ended = "finished" if error is None else f"stopped ({type(error).__name__}: {error})"
    logger.warning(
        "the forecast of request %s, answered 504, %s %.1f s after the request arrived; "
        "its in-flight slot is free",
        request_id,
        ended,
        time.monotonic() - started,
        extra={"request_id": request_id},
    )


def init_app(app: Flask, request_timeout_s: float) -> None:
    """Give every request of `app` a deadline `request_timeout_s` seconds after its arrival
    (the hook itself is installed by `app.hooks`)."""
    if request_timeout_s <= 0:
        raise ValueError(f"request time budget must be positive, got {request_timeout_s}")
    app.extensions[EXTENSION_KEY] = request_timeout_s
