"""The errors a forecast can end with. The library raises only these (and `ValueError` from its
lower-level functions); callers tell the kinds apart by class, and nothing here says how a
caller answers them (the service's answers are in `app/errors.py`)."""

from __future__ import annotations


class ForecastError(Exception):
    """Base class: a forecast that cannot be answered, with a message a client may read."""


def field_message(field: str, message: str) -> str:
    """`message` as filed under `field`: without a leading `<field>: `, which the library's
    `ValueError`s carry so that they read alone (on the command line, in a problem's detail)."""
    return message.removeprefix(f"{field}: ")


class InvalidRequestError(ForecastError, ValueError):
    """The request (or the history it names) cannot be forecast; `field` names the culprit,
    `message` says what is wrong with it (`field_message`), `str()` is the whole sentence."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = field_message(field, message)


class HistoryNotFoundError(ForecastError, LookupError):
    """No allowed history source has the instrument; the message says how to supply it."""


class StoredHistoryError(ForecastError):
    """The operator's stored history of an instrument cannot be used (unreadable file, bad
    candles, an unknown stored calendar): not the caller's fault. The message names the instrument
    and the file as `KRONOS_DATA_DIR/<file>`, never its real path, nor why (`reason`, for the
    operator's log)."""

    def __init__(self, instrument: str, file_name: str, reason: str) -> None:
        super().__init__(
            f"The stored history of {instrument} (KRONOS_DATA_DIR/{file_name}) cannot be used; "
            "the service's log says why. Send the history as 'candles' in the request."
        )
        self.instrument = instrument
        self.file_name = file_name
        self.reason = reason


class DeadlineExceededError(ForecastError, TimeoutError):
    """The forecast's deadline passed before it finished."""


class BackendNotReadyError(ForecastError):
    """No backend is loaded yet."""


class BackendBusyError(ForecastError):
    """No forecast slot came free within the queue time; nothing ran, a retry may succeed."""
