"""One error shape for the whole service: RFC 9457 problem details (`application/problem+json`).

`problem()` builds every error response: HTTP errors (404, 405, 413, ...), schema violations
(`errors` maps each field to its messages), the forecasting library's errors (mapped to their
statuses in `DOMAIN_STATUSES`, the one place that knows them), the service's own `ProblemError`s,
and unexpected exceptions (500, logged with the request id, answered without internals).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, json
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.context import request_id
from kronos_integration.errors import (
    BackendBusyError,
    BackendNotReadyError,
    DeadlineExceededError,
    ForecastError,
    HistoryNotFoundError,
    InvalidRequestError,
    StoredHistoryError,
)

logger = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://kronos.invalid/problems/"


class ProblemError(Exception):
    """An error the service answers as problem+json with `status` (and `headers`); `kind` is the
    last part of its `type` URI (None: the status's phrase, `not-found`)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.kind = kind

    def body(self) -> dict[str, Any]:
        """Its problem document (`problem_body`)."""
        return problem_body(self.status, self.title, self.detail, self.errors, self.kind)


DOMAIN_STATUSES: dict[type[ForecastError], tuple[int, str, str | None]] = {
    InvalidRequestError: (422, HTTPStatus.UNPROCESSABLE_ENTITY.phrase, None),
    HistoryNotFoundError: (404, "History Not Found", None),
    StoredHistoryError: (500, "Stored history is unusable", "stored-history-unusable"),
    DeadlineExceededError: (504, "Time Budget Exceeded", None),
    BackendNotReadyError: (503, "Service Unavailable", None),
    BackendBusyError: (503, "Service Unavailable", None),
}
"""Each forecasting error class and the status, title and problem type (None: the status's
phrase) it is answered with; a 503 also says `Retry-After` (`RETRY_AFTER_S`). A 500 here is the
operator's fault, not a bug: its own type, a detail that says what is wrong, no field errors."""
RETRY_AFTER_S = 1
"""Seconds in every `Retry-After` the service sends (503 and 429)."""


def as_problem(error: ForecastError) -> ProblemError:
    """The problem a forecasting error is answered with; `InvalidRequestError` names its field."""
    status, title, kind = next(
        answer for cls, answer in DOMAIN_STATUSES.items() if isinstance(error, cls)
    )
    errors = {error.field: [error.message]} if isinstance(error, InvalidRequestError) else None
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return ProblemError(status, title, str(error), errors, headers, kind)


def problem_body(
    status: int,
    title: str,
    detail: str,
    errors: Mapping[str, Any] | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The problem document: type (ending in `kind`, else the status's phrase), title, status,
    detail, request_id and, if any, errors."""
    slug = HTTPStatus(status).phrase.lower().replace(" ", "-") if status in _STATUSES else "error"
    slug = kind or slug
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id(),
    }
    if errors:
        body["errors"] = dict(errors)
    return body


def problem(
    status: int,
    title: str,
    detail: str,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    kind: str | None = None,
) -> Response:
    """An `application/problem+json` response (see `problem_body`)."""
    response = Response(
        json.dumps(problem_body(status, title, detail, errors, kind)),
        status=status,
        mimetype=PROBLEM_MIMETYPE,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    """Answer every error of `app` with `problem()`."""
    app.register_error_handler(ProblemError, _answer_problem_error)
    app.register_error_handler(ForecastError, _answer_forecast_error)
    app.register_error_handler(HTTPException, _answer_http_exception)
    app.register_error_handler(Exception, _answer_unexpected)


def _answer_problem_error(error: ProblemError) -> Response:
    return problem(error.status, error.title, error.detail, error.errors, error.headers, error.kind)


def _answer_forecast_error(error: ForecastError) -> Response:
    return _answer_problem_error(as_problem(error))


def _answer_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    title = HTTPStatus(status).phrase if status in _STATUSES else "Error"
    detail = error.description or title
    errors = None
    messages = getattr(error, "data", {}).get("messages")  # webargs / flask-smorest validation
    if isinstance(messages, Mapping):
        errors = messages.get("json", messages)
        if status == 400 and errors and not isinstance(errors, Mapping):
            detail, errors = "The request body is not valid JSON.", None
        else:
            detail = "The request does not match the schema; see 'errors' for each field."
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        detail = f"The request body is larger than the {limit}-byte limit (KRONOS_MAX_BODY_BYTES)."
    headers = {}
    if status == 405:
        response = error.get_response()
        headers["Allow"] = response.headers.get("Allow", "")
    return problem(status, title, detail, errors, headers)


def _answer_unexpected(error: Exception) -> Response:
    logger.exception("unexpected error (request id %s)", request_id())
    return problem(
        500,
        "Internal Server Error",
        f"An unexpected error occurred; quote request id {request_id()} when reporting it.",
    )


_STATUSES = frozenset(s.value for s in HTTPStatus)
