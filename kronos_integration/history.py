"""Where a forecast's history comes from: the request's own candles, else the configured sources.

A source is anything with a `name`, `load(instrument)` (a `History` of candles passed through
`validate_candles`, or None when it has none) and `looked_for(instrument)`. The configured
sources are built in registration order from `ForecastSettings`: the data folder
(`KRONOS_DATA_DIR/<instrument>.csv|.parquet`, with an optional trading calendar in a `calendar`
column or a `<instrument>.calendar` side-car file), then synthetic history (deterministic per
instrument) when it is allowed: by `KRONOS_ALLOW_SYNTHETIC_HISTORY`, or when the simulator serves
and no data folder is configured (so an offline `make serve` answers, while a file missing from a
configured folder is always a `HistoryNotFoundError` naming it). A new source is one class with a
`configured(settings, serving)` constructor and one line in `SOURCE_FACTORIES`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from kronos_integration.calendars import COUNTRY_CALENDARS, HISTORY, exchange_calendar
from kronos_integration.candles import read_candles_file, validate_candles
from kronos_integration.config import ForecastSettings
from kronos_integration.errors import (
    HistoryNotFoundError,
    InvalidRequestError,
    StoredHistoryError,
    field_message,
)
from kronos_integration.isin import validate_isin

logger = logging.getLogger(__name__)

SYNTHETIC_BARS = 512
SYNTHETIC_LAST_CLOSE = 100.0
INLINE_SOURCE = "request"


@dataclass(frozen=True)
class History:
    """Validated candles: `candles` has float64 `CANDLE_COLUMNS` and a tz-naive or tz-aware
    `DatetimeIndex` named `timestamp`, strictly increasing; `source` names where they came from,
    `calendar` the trading calendar stored with them (None: not said)."""

    candles: pd.DataFrame
    source: str
    calendar: str | None = None

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.candles.index)


class HistorySource(Protocol):
    """Stored history of instruments."""

    name: str

    def load(self, instrument: str) -> History | None:
        """The stored history (candles through `validate_candles`), or None when there is none.

        Raises StoredHistoryError for stored history that cannot be read or used."""
        ...

    def looked_for(self, instrument: str) -> str:
        """Where this source looked for `instrument` (for the not-found message; no absolute
        paths)."""
        ...


class DataFolder:
    """`<folder>/<instrument>.csv` or `.parquet` (columns: timestamp, open, high, low, close, …,
    and optionally `calendar`), or a calendar name in `<folder>/<instrument>.calendar`."""

    name = "data_dir"
    SUFFIXES = (".csv", ".parquet")
    CALENDAR_SUFFIX = ".calendar"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def configured(cls, settings: ForecastSettings, serving: str) -> DataFolder | None:
        return cls(settings.data_dir) if settings.data_dir is not None else None

    def load(self, instrument: str) -> History | None:
        """Raises StoredHistoryError, logged at ERROR with the reason, for a file that cannot be
        read (not UTF-8, unreadable), candles `validate_candles` refuses, several calendars in the
        `calendar` column, or a stored calendar name that is not a known calendar."""
        for suffix in self.SUFFIXES:
            path = self.folder / f"{instrument}{suffix}"
            if path.is_file():
                try:
                    return self._read(path)
                except (ValueError, OSError) as error:  # UnicodeDecodeError is a ValueError
                    reason = f"{type(error).__name__}: {error}"
                    logger.error("KRONOS_DATA_DIR/%s is unusable: %s", path.name, reason)
                    raise StoredHistoryError(instrument, path.name, reason) from error
        return None

    def _read(self, path: Path) -> History:
        """Raises ValueError or OSError for a file that cannot be used."""
        frame = read_candles_file(path)
        calendar = None
        if "calendar" in frame.columns:
            names = frame.pop("calendar").dropna().astype(str).str.strip().unique()
            if len(names) > 1:
                raise ValueError(f"the calendar column names several calendars: {list(names)}")
            calendar = names[0] if len(names) else None
        side_car = path.with_suffix(self.CALENDAR_SUFFIX)
        named_in = "its calendar column"
        if calendar is None and side_car.is_file():
            calendar = side_car.read_text(encoding="utf-8").strip() or None
            named_in = f"KRONOS_DATA_DIR/{side_car.name}"
        if calendar is not None and calendar.lower() != HISTORY:
            try:
                exchange_calendar(calendar)
            except ValueError as error:  # UnknownCalendarError for a bad name
                raise ValueError(f"{named_in}: {field_message('calendar', str(error))}") from error
        return History(validate_candles(frame), self.name, calendar)

    def looked_for(self, instrument: str) -> str:
        return " and ".join(f"KRONOS_DATA_DIR/{instrument}{suffix}" for suffix in self.SUFFIXES)


class SyntheticHistory:
    """`synthetic_history` ending on the last session before today (see that function)."""

    name = "synthetic"

    def __init__(self, today: Callable[[], date] = date.today) -> None:
        self.today = today

    @classmethod
    def configured(cls, settings: ForecastSettings, serving: str) -> SyntheticHistory | None:
        """Allowed by setting, or when the simulator serves without a data folder."""
        allowed = settings.allow_synthetic_history or (
            serving == "simulated" and settings.data_dir is None
        )
        return cls() if allowed else None

    def load(self, instrument: str) -> History:
        yesterday = self.today() - timedelta(days=1)
        return History(validate_candles(synthetic_history(instrument, end=yesterday)), self.name)

    def looked_for(self, instrument: str) -> str:
        return "synthetic history"


SourceFactory = Callable[[ForecastSettings, str], HistorySource | None]
SOURCE_FACTORIES: dict[str, SourceFactory] = {
    DataFolder.name: DataFolder.configured,
    SyntheticHistory.name: SyntheticHistory.configured,
}
"""Configured sources, asked in this order after the request's own candles."""


def configured_sources(settings: ForecastSettings, serving: str) -> list[HistorySource]:
    """The sources `settings` enable when `serving` (a backend name) answers."""
    built = (factory(settings, serving) for factory in SOURCE_FACTORIES.values())
    return [source for source in built if source is not None]


def resolve_history(
    instrument: str, candles: pd.DataFrame | None, sources: Sequence[HistorySource]
) -> History:
    """The request's `candles` when given, else the first source that has `instrument`, validated.

    Raises InvalidRequestError (field `candles`) for the request's candles that fail
    `validate_candles`, StoredHistoryError for a source's stored history that cannot be used, and
    HistoryNotFoundError when no source has the instrument.
    """
    if candles is not None:
        try:
            return History(validate_candles(candles), INLINE_SOURCE)
        except ValueError as error:
            raise InvalidRequestError("candles", str(error)) from None
    for source in sources:
        found = source.load(instrument)
        if found is not None:
            return found
    where = (
        "looked for " + " and ".join(source.looked_for(instrument) for source in sources)
        if sources
        else "no KRONOS_DATA_DIR is configured"
    )
    raise HistoryNotFoundError(
        f"no price history for {instrument} ({where}): send it as 'candles' in the request, "
        "or add it to KRONOS_DATA_DIR"
    )


def synthetic_history(isin: str, *, end: date, bars: int = SYNTHETIC_BARS) -> pd.DataFrame:
    """Daily candles that are the same for the same ISIN: a geometric random walk with 1.5 %
    daily volatility, seeded by the ISIN, on the sessions of the ISIN country's exchange
    (`COUNTRY_CALENDARS`: the calendar its forecast follows unless one is named; other ISINs and
    symbols: weekdays), the last on or before `end` with a close of 100.0."""
    seed = int.from_bytes(hashlib.sha256(isin.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    log_returns = rng.normal(0.0003, 0.015, bars)
    close = SYNTHETIC_LAST_CLOSE * np.exp(np.cumsum(log_returns) - log_returns.sum())
    close[-1] = SYNTHETIC_LAST_CLOSE  # exactly, not up to float rounding
    previous_close = np.concatenate([[close[0] / np.exp(log_returns[0])], close[:-1]])
    open_ = previous_close * np.exp(rng.normal(0.0, 0.004, bars))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.006, bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.006, bars)))
    volume = np.round(rng.lognormal(13.0, 0.35, bars))
    amount = volume * (open_ + high + low + close) / 4
    index = _synthetic_sessions(isin, pd.Timestamp(end), bars).rename("timestamp")
    columns = {"open": open_, "high": high, "low": low, "close": close}
    return pd.DataFrame({**columns, "volume": volume, "amount": amount}, index=index)


def _synthetic_sessions(instrument: str, end: pd.Timestamp, bars: int) -> pd.DatetimeIndex:
    """The `bars` sessions through `end` of an ISIN's country's exchange, else (other ISINs,
    symbols such as INTC, whose letters name no country) weekdays."""
    try:
        exchange = COUNTRY_CALENDARS.get(validate_isin(instrument)[:2])
    except ValueError:  # a symbol
        exchange = None
    if exchange is None:
        return pd.bdate_range(end=end, periods=bars)
    return exchange_calendar(exchange).sessions_through(end, bars)
