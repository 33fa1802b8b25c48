"""One log line per request on ``kronos.access``, and nothing a client should not see in it.

The line carries the request id, method, route template, path, status, latency in ms, the mode
serving, and the ISIN and horizon asked for (the item count for a batch). Never candles, never
headers, never tokens. The line's shape (JSON or text) is :mod:`app.log_format`'s business.
"""

from __future__ import annotations

import logging

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from app import context
from app.json_guard import StrictJSONError, strict_body
from app.state import EXTENSION_KEY as STATE_KEY

ACCESS_LOGGER = "kronos.access"
# Request bodies up to this size are parsed (once, shared with app.json_guard) even when the
# request was refused before its body was read, for the ISIN and horizon of the access line.
_LOGGED_BODY_MAX_BYTES = 64 * 1024
_MAX_FIELD_CHARS = 64

access_logger = logging.getLogger(ACCESS_LOGGER)


def _short(value: object) -> object:
    """A JSON scalar as it may appear in a log line: strings cut to a few dozen characters."""
    if isinstance(value, str):
        return value[:_MAX_FIELD_CHARS]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _printable(text: str) -> str:
    """``text`` with control characters escaped (a newline becomes ``\\n``), so a client's path
    cannot start a forged line in a text log."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _asked_for() -> dict[str, object]:
    """The ISIN and horizon of a small JSON body (the item count for a batch); else nothing."""
    length = request.content_length
    if not request.is_json or length is None or length > _LOGGED_BODY_MAX_BYTES:
        return {}
    try:
        body = strict_body()
    except (StrictJSONError, HTTPException):
        return {}
    if not isinstance(body, dict):
        return {}
    fields: dict[str, object] = {}
    if "isin" in body:
        fields["isin"] = _short(body["isin"])
    if "horizon_days" in body:
        fields["horizon_days"] = _short(body["horizon_days"])
    items = body.get("items")
    if isinstance(items, list):
        fields["items"] = len(items)
    return fields


def _serving() -> str | None:
    """The name of the backend this worker serves (None while loading, or in an app without one)."""
    state = current_app.extensions.get(STATE_KEY)
    return state.serving if state is not None else None


def log_request(response: Response) -> Response:
    """After-request hook: write this request's ``kronos.access`` line."""
    request_context = context.current()
    latency_ms = request_context.elapsed_s() * 1000 if request_context else None
    rule = request.url_rule
    fields: dict[str, object] = {
        "request_id": request_context.request_id if request_context else None,
        "method": request.method,
        "route": rule.rule if rule is not None else None,
        "path": _printable(request.path[: _MAX_FIELD_CHARS * 2]),
        "status": response.status_code,
        "latency_ms": round(latency_ms, 2) if latency_ms is not None else None,
        "mode": _serving(),
        **_asked_for(),
    }
    access_logger.info(
        "%s %s %d %.1f ms",
        request.method,
        fields["path"],
        response.status_code,
        latency_ms or 0.0,
        extra=fields,
    )
    return response
