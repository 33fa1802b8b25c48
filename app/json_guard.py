"""Strict JSON bodies: a body not declared JSON, declared in a charset other than UTF-8, or sent
with a `Content-Encoding` (gzip, …: nothing here or in nginx decompresses it) is refused (415);
duplicate keys, NaN/Infinity literals, integer literals too long to convert and absurd nesting are
refused (400).

Python's ``json`` module silently keeps the last of duplicate keys, accepts ``NaN`` and
``Infinity``, raises ``RecursionError`` on a body nested a hundred thousand levels deep and a
plain ``ValueError`` on an integer literal of more than ``sys.get_int_max_str_digits()`` (4,300)
digits; each of those would be a 500. This before-request hook parses every JSON request body
once with those holes closed and answers 400 problem+json naming the problem (for a NaN or
Infinity, the field, line and column of the first), before the schemas see the body. Whatever
the parser raises becomes :class:`StrictJSONError`, so no body can turn into a 5xx here or in
the access log, which reads the same parse.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from typing import Any

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import context
from app.errors import problem

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON = "application/json"
_IDENTITY = "identity"
_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')
"""A JSON string (skipped whole, so a "NaN" inside one is no match) or a non-number literal."""


class StrictJSONError(ValueError):
    """The body is JSON that the service refuses to interpret."""


class _ConstantError(StrictJSONError):
    """A NaN or Infinity literal; `parse_strict` says where it is."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"the key {key[:64]!r} appears more than once in one object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise _ConstantError(f"{name} is not a JSON number")


def _where_constant(text: str) -> str:
    """Where the first NaN/Infinity literal of `text` (JSON that parses up to it) is, as
    ` (at candles[7].close, line 1 column 812)`: the field path when the body parses with the
    literal replaced, and its line and column as json reports them; empty if none is found."""
    found = next((m for m in _STRING_OR_CONSTANT.finditer(text) if m.group(1)), None)
    if found is None:
        return ""
    start, end = found.span()
    line = text.count("\n", 0, start) + 1
    column = start - text.rfind("\n", 0, start)
    where = f"line {line} column {column}"
    marker = uuid.uuid4().hex
    try:
        path = _path_to(json.loads(text[:start] + json.dumps(marker) + text[end:]), marker)
    except (ValueError, RecursionError):
        path = None
    return f" (at {path}, {where})" if path else f" (at {where})"


def _path_to(document: Any, marker: str) -> str | None:
    """The path (`candles[7].close`) of the string `marker` in `document`, or None."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if value == marker:
            return path or None
        if isinstance(value, dict):
            stack.extend((item, f"{path}.{key}" if path else key) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(value))
    return None


def _bounded_int(literal: str) -> int:
    limit = sys.get_int_max_str_digits()
    digits = len(literal.lstrip("-"))
    if limit and digits > limit:
        raise StrictJSONError(f"an integer literal of {digits} digits is longer than {limit}")
    return int(literal)


def parse_strict(body: bytes) -> Any:
    """Decode ``body`` (UTF-8 JSON) or raise :class:`StrictJSONError` saying why not."""
    try:
        return json.loads(
            body,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constants,
            parse_int=_bounded_int,
        )
    except _ConstantError as error:
        raise StrictJSONError(f"{error}{_where_constant(_text(body))}") from None
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError("the body is nested too deeply") from None
    except UnicodeDecodeError:
        raise StrictJSONError("the body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise StrictJSONError(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except ValueError:  # anything else json can raise on some input: never a 500
        raise StrictJSONError("the body cannot be decoded as JSON") from None


def _text(body: bytes) -> str:
    return body.decode(json.detect_encoding(body), errors="replace")


def request_body() -> bytes:
    """This request's body (cached), or :class:`RequestEntityTooLarge` when it is over the limit.

    With a Content-Length werkzeug refuses an oversized body itself; a chunked body has none,
    and werkzeug then stops reading at the limit and returns what it read, so a body that
    reaches the limit is taken as one that went past it.
    """
    body = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(body) >= limit:
        raise RequestEntityTooLarge()
    return body


def strict_body() -> Any:
    """This request's body through :func:`parse_strict`, parsed once per request.

    Raises :class:`StrictJSONError` (every time it is asked) for a body it refuses, and
    :class:`RequestEntityTooLarge` for a chunked body over the limit.
    """
    request_context = context.current()
    parsed = request_context.body if request_context else None
    if parsed is None:
        try:
            parsed = (parse_strict(request_body()), None)
        except StrictJSONError as refused:
            parsed = (None, refused)
        if request_context is not None:
            request_context.body = parsed
    value, refusal = parsed
    if refusal is not None:
        raise refusal
    return value


def _unsupported_media() -> Response | None:
    """415 for a body with a content coding, not declared JSON, or in a charset other than
    UTF-8 (RFC 8259 JSON is UTF-8; the body is never decoded as anything else)."""
    coding = request.headers.get("Content-Encoding", "").strip()
    if coding and coding.lower() != _IDENTITY:
        return problem(
            415,
            "Unsupported Media Type",
            f"The content encoding {coding[:64]!r} is not supported: send the body uncompressed "
            f"(no Content-Encoding, or '{_IDENTITY}').",
            headers={"Accept-Encoding": _IDENTITY},  # RFC 9110 §15.5.16
        )
    if not request.is_json:
        got = repr(request.mimetype) if request.mimetype else "no Content-Type"
        return problem(
            415,
            "Unsupported Media Type",
            f"The request body must be JSON sent with 'Content-Type: {_JSON}' (got {got}).",
        )
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() != "utf-8":
        return problem(
            415,
            "Unsupported Media Type",
            f"The charset {charset[:64]!r} is not supported: JSON bodies are UTF-8 "
            f"('Content-Type: {_JSON}' or '{_JSON}; charset=utf-8').",
        )
    return None


def check_body() -> Response | None:
    """Before-request hook: 415 for a body not sent as plain UTF-8 JSON (`_unsupported_media`),
    400 for JSON it refuses."""
    if request.method not in _BODY_METHODS or request.url_rule is None:
        return None  # no body to read, or a 404/405 to answer
    if not request_body().strip():
        return None  # the schemas answer a missing body
    refused = _unsupported_media()
    if refused is not None:
        return refused
    try:
        strict_body()
    except StrictJSONError as error:
        return problem(400, "Bad Request", f"The request body is not acceptable JSON: {error}.")
    return None
