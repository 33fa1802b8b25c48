"""One object per request for what the hooks and views share, kept on `flask.g`, with one clock.

`open_request` (the first before-request hook) assigns the request id (the client's
`X-Request-ID` when it is short and of safe characters, else a new one) and starts the clock;
everything later reads and writes this `RequestContext` instead of its own `g` keys.
`time.monotonic()` is the only clock.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Response, g, has_request_context, request

if TYPE_CHECKING:
    from app.backpressure import InflightSlot

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id lands in a response header, every problem document and every log line of its
# request: only 1-64 of these characters (a UUID, a W3C trace id, nginx's $request_id) are kept.
REQUEST_ID_MAX_LENGTH = 64
_ACCEPTED_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_MAX_LENGTH}}}")


@dataclass
class RequestContext:
    """What one request carries between hooks and views.

    Attributes:
        request_id: echoed in `X-Request-ID`, every problem document and the access log.
        started: `time.monotonic()` when the worker picked the request up.
        deadline: `time.monotonic()` instant the request's time budget ends (None: no budget).
        budget_s: the time budget in seconds (None: no budget).
        slot: the in-flight slot a forecast holds (see `app.backpressure`).
        body: the strictly parsed JSON body and the refusal, once parsed (see `app.json_guard`).
    """

    request_id: str
    started: float
    deadline: float | None = None
    budget_s: float | None = None
    slot: InflightSlot | None = None
    body: tuple[Any, Exception | None] | None = None

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def remaining_s(self) -> float:
        """Seconds left of the budget (inf without one)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()


def current() -> RequestContext | None:
    """This request's context, or None outside a request (or before `open_request`)."""
    if not has_request_context():
        return None
    context: RequestContext | None = g.get("kronos")
    return context


def open_request() -> None:
    """Before-request hook: the request id and the clock."""
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = supplied if _ACCEPTED_REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
    g.kronos = RequestContext(request_id=request_id, started=time.monotonic())


def request_id() -> str | None:
    context = current()
    return context.request_id if context else None


def echo_request_id(response: Response) -> Response:
    """After-request hook: `X-Request-ID` on every response."""
    context = current()
    if context is not None:
        response.headers[REQUEST_ID_HEADER] = context.request_id
    return response
