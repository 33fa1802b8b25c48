"""Optional API keys: ``Authorization: Bearer <key>``, compared in constant time.

Off unless keys are configured (``KRONOS_API_KEYS`` or ``KRONOS_API_KEYS_FILE``). When on, every
route needs a configured key except views marked ``policy.public`` (the health probes, the viewer's
page and its files); unrouted paths need one too. A missing header, another scheme and a wrong key
all get the same 401 problem+json, so a caller learns nothing about which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence

from flask import Flask, Response, current_app, request

from app.errors import problem
from app.policy import policy_of_request

logger = logging.getLogger(__name__)

EXTENSION_KEY = "kronos.auth"
_SCHEME = "bearer"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", errors="surrogateescape")).digest()


class ApiKeys:
    """The accepted keys, kept only as SHA-256 digests; never shown in its repr.

    Comparing fixed-length digests with :func:`hmac.compare_digest` takes the same time whatever
    the presented key's length or content.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(_digest(key.strip()) for key in keys if key.strip())

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._keys)} keys>)"

    def accepts(self, presented: str) -> bool:
        """True when ``presented`` equals one of the keys; every key is compared, matched or not."""
        candidate = _digest(presented)
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != _SCHEME or not token.strip():
        return None
    return token.strip()


def _unauthorized() -> Response:
    return problem(
        401,
        "Unauthorized",
        "A valid API key is required: send it as 'Authorization: Bearer <key>'.",
        headers={"WWW-Authenticate": 'Bearer realm="kronos"'},
    )


def check_api_key() -> Response | None:
    """Before-request hook: 401 unless keys are off, the view is public, or a key matches."""
    keys: ApiKeys = current_app.extensions[EXTENSION_KEY]
    if not keys or policy_of_request().public:
        return None
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None and keys.accepts(token):
        return None
    logger.info("refused a request without a valid API key")
    return _unauthorized()


def init_app(app: Flask, api_keys: Sequence[str]) -> None:
    """Keep `api_keys` for `check_api_key`; warn when there are none (every route is open)."""
    keys = ApiKeys(api_keys)
    app.extensions[EXTENSION_KEY] = keys
    if not keys:
        logger.warning("API keys are off: every route is open (set KRONOS_API_KEYS to require one)")
