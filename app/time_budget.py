"""A per-request time budget: refuse work that cannot start in time, cut off work that overruns.

Each request gets a deadline ``request_timeout_s`` after it arrived. Arrival is the moment the
worker picked the request up, or earlier when a front proxy stamped ``X-Request-Start``
(``t=<unix time>`` in seconds, milliseconds or microseconds, as nginx and Heroku write it): a
request that already waited out its budget in a queue is answered 503 with ``Retry-After`` before
any work starts.

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

from flask import Flask, Response, g, has_request_context, request

from app.backpressure import current_slot
from app.errors import ProblemError, problem
from app.metrics import get_metrics

logger = logging.getLogger(__name__)

EXTENSION_KEY = "kronos.time_budget"
REQUEST_START_HEADER = "X-Request-Start"
_OPEN_PATHS = ("/health", "/metrics")

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
    """The current request's deadline as a ``time.monotonic()`` instant (``None`` outside one)."""
    return g.get("deadline") if has_request_context() else None


def remaining_s() -> float:
    """Seconds left of the current request's budget (``inf`` outside a budgeted request)."""
    deadline: float | None = g.get("deadline")
    if deadline is None:
        return float("inf")
    return deadline - time.monotonic()


def _start_clock(budget_s: float) -> Response | None:
    now_mono, now_wall = time.monotonic(), time.time()
    waited = 0.0
    stamp_header = request.headers.get(REQUEST_START_HEADER)
    if stamp_header:
        arrived = parse_request_start(stamp_header, now_wall)
        if arrived is not None:
            waited = max(0.0, now_wall - arrived)
    g.deadline = now_mono - waited + budget_s
    if waited >= budget_s and not request.path.startswith(_OPEN_PATHS):
        get_metrics().rejected.labels(reason="queued_too_long").inc()
        logger.warning("refused a request that waited %.1f s in a queue", waited)
        return problem(
            503,
            "Request waited too long",
            f"The request waited {waited:.1f} s before a worker could take it, beyond the "
            f"{budget_s:g} s time budget; retry later.",
            headers={"Retry-After": "1"},
        )
    return None


def run_within_budget(work: Callable[[], T]) -> T:
    """Run ``work()`` in a helper thread and return its result, or raise :class:`BudgetExceeded`.

        The thread sees the caller's Flask contexts and holds the request's in-flight slot until
        ``work`` ends, even after the client got its 504 (forecasters given the request's deadline
    stop early). A ``TimeoutError`` from ``work`` is a 504 too. Outside a request ``work`` runs
    directly.
    """
    if not has_request_context():
        return work()
    budget_s: float = g.get("budget_s", float("inf"))
    if remaining_s() <= 0:
        raise BudgetExceeded(budget_s)
    slot = current_slot()
    if slot is not None:
        slot.hold()
    outcome: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(work)
        except BaseException as error:  # handed to the request thread below
            outcome["error"] = error
        finally:
            if slot is not None:
                slot.release()
            done.set()

    threading.Thread(target=target, name="kronos-forecast", daemon=True).start()
    if not done.wait(timeout=max(0.0, remaining_s())):
        get_metrics().rejected.labels(reason="deadline").inc()
        logger.warning("a forecast overran the %g s time budget; answering 504", budget_s)
        raise BudgetExceeded(budget_s)
    if isinstance(outcome.get("error"), TimeoutError):  # the forecaster saw the deadline first
        get_metrics().rejected.labels(reason="deadline").inc()
        raise BudgetExceeded(budget_s) from outcome["error"]
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["value"]
    return result


def init_app(app: Flask, request_timeout_s: float) -> None:
    """Give every request a deadline of ``request_timeout_s`` seconds after its arrival."""
    if request_timeout_s <= 0:
        raise ValueError(f"request time budget must be positive, got {request_timeout_s}")
    app.extensions[EXTENSION_KEY] = request_timeout_s

    def start_clock() -> Response | None:
        g.budget_s = request_timeout_s
        return _start_clock(request_timeout_s)

    app.before_request(start_clock)
