"""One log line per request on ``kronos.access``, and nothing a client should not see in it.

The line carries the request id, method, route template, path, status, latency in ms, the mode
serving, and the ISIN and horizon asked for (the item count for a batch). Never candles, never
headers, never tokens. The line's shape (JSON or text) is :mod:`app.log_format`'s business.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from app.json_guard import StrictJSONError, strict_body

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


def init_app(app: Flask, serving_mode: Callable[[], str | None]) -> None:
    """Write one ``kronos.access`` line per request; ``serving_mode()`` names the mode serving."""

    def start_clock() -> None:
        g.log_started = time.perf_counter()

    def log_request(response: Response) -> Response:
        started = g.get("log_started")
        latency_ms = (time.perf_counter() - started) * 1000 if started is not None else None
        rule = request.url_rule
        fields: dict[str, object] = {
            "request_id": g.get("request_id"),
            "method": request.method,
            "route": rule.rule if rule is not None else None,
            "path": _printable(request.path[: _MAX_FIELD_CHARS * 2]),
            "status": response.status_code,
            "latency_ms": round(latency_ms, 2) if latency_ms is not None else None,
            "mode": serving_mode(),
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

    app.before_request(start_clock)
    app.after_request(log_request)
