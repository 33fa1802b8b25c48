"""The errors a forecast can end with. The library raises only these (and `ValueError` from its
lower-level functions); callers tell the kinds apart by class, and nothing here says how a
caller answers them (the service's answers are in `app/errors.py`)."""

from __future__ import annotations


class ForecastError(Exception):
    """Base class: a forecast that cannot be answered, with a message a client may read."""


class InvalidRequestError(ForecastError, ValueError):
    """The request (or the history it names) cannot be forecast; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class HistoryNotFoundError(ForecastError, LookupError):
    """No allowed history source has the instrument; the message says how to supply it."""


class DeadlineExceededError(ForecastError, TimeoutError):
    """The forecast's deadline passed before it finished."""


class BackendNotReadyError(ForecastError):
    """No backend is loaded yet."""


class BackendBusyError(ForecastError):
    """No forecast slot came free within the queue time; nothing ran, a retry may succeed."""
