"""How log lines look: JSON objects (or plain text) on stdout, with secrets masked.

Nothing here imports Flask, so gunicorn's master can configure its logging from this module.

* :class:`JsonFormatter` renders a record as one JSON object per line: ``ts`` (UTC, ISO 8601),
  ``level``, ``logger``, ``pid``, ``message``, the record's ``extra`` fields, and ``exc`` for a
  traceback.
* :func:`logging_config` is the :func:`logging.config.dictConfig` document that ``gunicorn.conf.py``
  passes as ``logconfig_dict``: gunicorn's own lines and the app's share one format on stdout.
* :func:`protect_secrets` masks the HF token, API keys and URL credentials in every line written
  through the root and gunicorn handlers, a second guard behind code that never logs them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from typing import Any

from kronos_integration.redact import mask_secrets

LOG_FORMATS: tuple[str, ...] = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the record's ``extra`` fields as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class RedactSecrets(logging.Filter):
    """Replaces every configured secret in a record's message, extra fields and traceback, and
    removes the credentials of every URL in them (`user:password@`).

    Extra fields matter: a client may send a key as its ``X-Request-ID`` or as an ISIN.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def _mask(self, text: str) -> str:
        return mask_secrets(text, self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in _RECORD_ATTRIBUTES:
                setattr(record, key, self._mask(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        return True


def logging_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A ``dictConfig`` document: root and gunicorn loggers to stdout in ``log_format``.

    ``gunicorn.access`` stays at WARNING: the app writes its own line per request.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {log_format!r}")
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "kronos",
        "stream": "ext://sys.stdout",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kronos": formatter},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


def protect_secrets(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in every root and gunicorn log handler, replacing earlier masks."""
    redact = RedactSecrets(secrets)
    for name in (None, "gunicorn.error", "gunicorn.access"):
        for handler in logging.getLogger(name).handlers:
            for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
                handler.removeFilter(old)
            handler.addFilter(redact)
