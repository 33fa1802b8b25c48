"""Request ids: taken from `X-Request-ID` when it is sane, generated otherwise, always echoed."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _assign() -> None:
    supplied = request.headers.get(HEADER, "")
    g.request_id = supplied if _ACCEPTED.fullmatch(supplied) else uuid.uuid4().hex


def _echo(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[HEADER] = request_id
    return response


def init_app(app: Flask) -> None:
    """Set `flask.g.request_id` before each request and echo it in the response header."""
    app.before_request_funcs.setdefault(None, []).insert(0, _assign)
    app.after_request(_echo)
