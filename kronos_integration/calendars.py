"""Trading calendars: which sessions follow a history, and the future bar grid they give.

A calendar comes, in this order, from a name (an exchange MIC such as `XNYS`, any name
exchange_calendars knows, or a 24-hour market: `24/5`, `24/7`), a default per ISIN country prefix
(`COUNTRY_CALENDARS`), or the history itself: `24/5` when intraday bars around the clock keep
to the FX week, else `HistoryCalendar` (the weekdays, or the hour-of-week slots, it trades).
Exchange sessions, holidays, early closes and lunch
breaks come from exchange_calendars.

`24/5` is the spot FX week: each session runs from 17:00 New York time on the previous day to
17:00 New York time (22:00 UTC in winter, 21:00 in summer), Monday to Friday sessions, so nothing
trades from Friday 17:00 to Sunday 17:00 New York time. `24/7` trades every day, midnight to
midnight UTC.

Time zones: tz-aware histories keep their zone. A tz-naive intraday history is read in the
calendar's zone (the exchange's; UTC for `24/5` and `24/7`) unless UTC puts more of its recent
bars inside sessions, then in UTC; the grid comes back tz-naive in the same zone. Daily bars are
labelled by their date and need no zone.
"""

from __future__ import annotations

import datetime
import functools
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from exchange_calendars.exchange_calendar import ExchangeCalendar

from kronos_integration.grid import FutureGrid, TooManyBarsError, infer_bar_interval

logger = logging.getLogger(__name__)

FX_24_5 = "24/5"
ALWAYS_OPEN = "24/7"
HISTORY = "history"

COUNTRY_CALENDARS: Mapping[str, str] = {
    "US": "XNYS",
    "CA": "XTSE",
    "MX": "XMEX",
    "BR": "BVMF",
    "GB": "XLON",
    "IE": "XDUB",
    "DE": "XETR",
    "FR": "XPAR",
    "NL": "XAMS",
    "BE": "XBRU",
    "LU": "XLUX",
    "IT": "XMIL",
    "ES": "XMAD",
    "PT": "XLIS",
    "CH": "XSWX",
    "AT": "XWBO",
    "SE": "XSTO",
    "DK": "XCSE",
    "NO": "XOSL",
    "FI": "XHEL",
    "PL": "XWAR",
    "JP": "XTKS",
    "HK": "XHKG",
    "CN": "XSHG",
    "KR": "XKRX",
    "TW": "XTAI",
    "SG": "XSES",
    "IN": "XBOM",
    "AU": "XASX",
    "NZ": "XNZE",
    "ZA": "XJSE",
}
"""Default exchange per ISIN country prefix: the country's main equity exchange."""

MIN_WEEKS_FOR_SLOTS = 3
"""Weeks of intraday history needed to infer hour-of-week slots; with fewer, each traded weekday
repeats the session's times of day."""

ZONE_PROBE_BARS = 500
"""Recent history bars used to choose the zone of a tz-naive intraday history and its bar phase."""

CalendarSource = Literal["name", "isin", "history", "request", "data_dir"]


class UnknownCalendarError(ValueError):
    """A calendar name that is neither an exchange_calendars name nor `24/5` / `24/7`."""


@dataclass(frozen=True)
class FutureSessions:
    """Bars after a history, by session, in the history's own representation (zone or none).

    Attributes:
        rest: the remaining bars of the session the history ends in (empty when it is complete).
        sessions: the bars of each following whole session, one index per session, in order.
    """

    rest: pd.DatetimeIndex
    sessions: tuple[pd.DatetimeIndex, ...]


class TradingCalendar(Protocol):
    """What `future_grid` needs from a calendar."""

    @property
    def name(self) -> str:
        """`XNYS`, `24/5`, `24/7`, ... or `history` (metadata.calendar)."""
        ...

    def future_sessions(
        self, timestamps: pd.DatetimeIndex, count: int, max_bars: int | None = None
    ) -> FutureSessions:
        """The rest of the session `timestamps` ends in and the `count` sessions after it.
        Raises TooManyBarsError when they hold more than `max_bars` bars, before laying out
        more than a bounded number of them."""
        ...

    def outside_sessions(self, timestamps: pd.DatetimeIndex) -> int:
        """How many of a history's bars `timestamps` fall outside the calendar's sessions."""
        ...


@dataclass(frozen=True)
class ResolvedCalendar:
    """A calendar and where it came from (`name`: given by the caller; `isin`: the default for
    the ISIN's country; `history`: inferred from the bars; the pipeline says `request` or
    `data_dir` for a name from the request or the data folder)."""

    calendar: TradingCalendar
    source: CalendarSource


class _ForexCalendar(ExchangeCalendar):
    """Spot FX: 17:00 New York to 17:00 New York, sessions Monday to Friday, no holidays."""

    name = FX_24_5
    tz = ZoneInfo("America/New_York")
    open_times = ((None, datetime.time(17)),)
    open_offset = -1
    close_times = ((None, datetime.time(17)),)


def calendar_names() -> list[str]:
    """Every name `exchange_calendar` accepts (MICs, their aliases, `24/5`, `24/7`)."""
    return sorted(set(xcals.get_calendar_names(include_aliases=True)) | {FX_24_5, ALWAYS_OPEN})


def exchange_calendar(name: str) -> ExchangeTradingCalendar:
    """The calendar called `name` (case-insensitive). Raises UnknownCalendarError."""
    wanted = name.strip()
    known = {n.upper(): n for n in calendar_names()}
    if wanted.upper() not in known:
        raise UnknownCalendarError(
            f"calendar: unknown {wanted!r}; use an exchange MIC such as XNYS, XLON, XETR, "
            f"XTKS, or a 24-hour market: {FX_24_5} (FX), {ALWAYS_OPEN}"
        )
    return ExchangeTradingCalendar(known[wanted.upper()])


def resolve_calendar(
    name: str | None = None,
    *,
    isin: str | None = None,
    timestamps: pd.DatetimeIndex | None = None,
) -> ResolvedCalendar:
    """The calendar for a forecast: `name` if given, else the default of the ISIN's country
    prefix, else one inferred from `timestamps`; the name `history` asks for the inferred one
    whatever the ISIN.

    Raises UnknownCalendarError for a bad name, ValueError when nothing is given to go on.
    """
    if name and name.strip().lower() == HISTORY:
        name = isin = None
    if name:
        return ResolvedCalendar(exchange_calendar(name), "name")
    country = (isin or "")[:2].upper()
    if country in COUNTRY_CALENDARS:
        return ResolvedCalendar(exchange_calendar(COUNTRY_CALENDARS[country]), "isin")
    if timestamps is not None and len(timestamps) >= 2:
        index = pd.DatetimeIndex(timestamps)
        if _trades_the_fx_week(index):
            return ResolvedCalendar(exchange_calendar(FX_24_5), "history")
        return ResolvedCalendar(HistoryCalendar.infer(index), "history")
    raise ValueError("calendar: give a calendar name, an ISIN or at least two bars of history")


def future_grid(
    timestamps: pd.DatetimeIndex,
    horizon_days: int,
    calendar: TradingCalendar,
    *,
    max_bars: int | None = None,
) -> FutureGrid:
    """Future bar timestamps after `timestamps` through `horizon_days` sessions of `calendar`.

    Daily bars: one bar on each of the next `horizon_days` sessions, at the last bar's time of
    day. Intraday bars: the rest of the last bar's session, then every bar of the next
    `horizon_days` sessions, only inside session hours (early closes and breaks respected).
    Each horizon day is reported as its session's last bar (`day_end_positions`). Raises
    TooManyBarsError when the grid would hold more than `max_bars` bars (counted from the bar
    interval and the sessions' hours before any is laid out, so bars a millisecond apart cost
    nothing), ValueError for bars longer than a day, or a grid past the year 9999.
    """
    if horizon_days < 1:
        raise ValueError("horizon_days must be at least 1")
    timestamps = pd.DatetimeIndex(timestamps)
    too_late = ValueError(
        f"candles: the forecast would run past the year {datetime.MAXYEAR}; check the timestamps"
    )
    # Calendars are looked up a month or two past the horizon: stay well inside the year 9999.
    if timestamps[-1].year >= datetime.MAXYEAR - 1:
        raise too_late
    try:
        future = calendar.future_sessions(timestamps, horizon_days, max_bars)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise too_late from None
    stamps = list(future.rest)
    day_ends = []
    for session in future.sessions:
        stamps.extend(session)
        day_ends.append(len(stamps) - 1)
    index = pd.DatetimeIndex(stamps, name="timestamp")
    if index.tz is None and timestamps.tz is not None:
        index = index.tz_localize(timestamps.tz)
    if index[-1].year > datetime.MAXYEAR:
        raise too_late
    return FutureGrid(index, tuple(day_ends), infer_bar_interval(timestamps))


class ExchangeTradingCalendar:
    """A calendar of exchange_calendars (or the FX week) by name; satisfies `TradingCalendar`."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def zone(self, year: int) -> str:
        """The zone a tz-naive intraday history is first read in (UTC for 24-hour markets)."""
        if self._name in (FX_24_5, ALWAYS_OPEN):
            return "UTC"
        return str(_calendar(self._name, year, year).tz)

    @property
    def holidays_recorded_until(self) -> pd.Timestamp | None:
        """The last date whose holidays exchange_calendars records for this exchange (None: it
        extends them as far as asked); later sessions are every weekday (`schedule`)."""
        return _recorded_bounds(self._name)[1]

    def schedule(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Sessions labelled `start` … `end` (dates): open, break_start, break_end, close (UTC).
        Past `holidays_recorded_until`: every weekday, at the hours of the last recorded full
        session (no holidays, no early closes are known there)."""
        first, last = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        recorded_until = self.holidays_recorded_until
        if recorded_until is None or last <= recorded_until:
            return _calendar(self._name, first.year, last.year).schedule.loc[first:last]
        calendar = _calendar(self._name, recorded_until.year, recorded_until.year)
        recorded = calendar.schedule.loc[first:recorded_until]
        weekdays = pd.bdate_range(max(first, recorded_until + pd.Timedelta(days=1)), last)
        return pd.concat([recorded, _weekday_schedule(weekdays, calendar)])

    def sessions_after(self, day: pd.Timestamp, count: int) -> pd.DatetimeIndex:
        """The labels (dates) of the `count` sessions after the date `day`."""
        start = pd.Timestamp(day).normalize() + pd.Timedelta(days=1)
        end = start + pd.Timedelta(days=2 * count + 31)
        labels = self.schedule(start, end).index[:count]
        if len(labels) < count:
            raise ValueError(f"calendar {self._name}: fewer than {count} sessions after {day}")
        return pd.DatetimeIndex(labels)

    def sessions_through(self, day: pd.Timestamp, count: int) -> pd.DatetimeIndex:
        """The labels (dates) of the `count` sessions up to and including the date `day`."""
        end = pd.Timestamp(day).normalize()
        labels = self.schedule(end - pd.Timedelta(days=2 * count + 31), end).index[-count:]
        if len(labels) < count:
            raise ValueError(f"calendar {self._name}: fewer than {count} sessions through {day}")
        return pd.DatetimeIndex(labels)

    def future_sessions(
        self, timestamps: pd.DatetimeIndex, count: int, max_bars: int | None = None
    ) -> FutureSessions:
        last = timestamps[-1]
        interval = infer_bar_interval(timestamps)
        if interval >= pd.Timedelta(days=1):
            _check_bar_count(count, max_bars)
            return _daily_sessions(last, self.sessions_after(last.tz_localize(None), count))
        recent = timestamps[-ZONE_PROBE_BARS:]
        start = recent[0].tz_localize(None).normalize() - pd.Timedelta(days=3)
        end = last.tz_localize(None).normalize() + pd.Timedelta(days=2 * count + 31)
        schedule = self.schedule(start, end)
        utc, zone = self._as_utc(recent, schedule)
        fit = _SessionFit.measure(utc, schedule, interval)
        spans = [fit.span(row) for row in schedule.itertuples()]
        rest, sessions = _split_after(spans, utc[-1], count, self._name)
        _check_bar_count(rest.count + sum(s.count for s in sessions), max_bars)
        return FutureSessions(
            _like(rest.bars(), timestamps, zone),
            tuple(_like(s.bars(), timestamps, zone) for s in sessions),
        )

    def outside_sessions(self, timestamps: pd.DatetimeIndex) -> int:
        """Daily bars on a date that is no session, intraday bars outside every session's hours
        (open to close, tz-naive bars read in the zone `future_sessions` reads them in); one
        vectorised pass over a schedule of the bars' span."""
        wall = timestamps.tz_localize(None) if timestamps.tz is not None else timestamps
        day = pd.Timedelta(days=1)
        schedule = self.schedule(wall[0].normalize() - 3 * day, wall[-1].normalize() + 3 * day)
        if infer_bar_interval(timestamps) >= day:
            return len(wall) - int(np.isin(wall.normalize(), schedule.index).sum())
        utc, _ = self._as_utc(timestamps, schedule)
        known = utc[utc.notna()]  # NaT: a wall-clock time daylight saving skips or repeats
        return len(known) - int(_SessionFit.inside(known, schedule).sum())

    def _as_utc(
        self, recent: pd.DatetimeIndex, schedule: pd.DataFrame
    ) -> tuple[pd.DatetimeIndex, str | None]:
        """`recent` in UTC, and the zone a tz-naive index was read in (None if tz-aware)."""
        if recent.tz is not None:
            return recent.tz_convert("UTC"), None
        readings = {
            zone: recent.tz_localize(zone, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
            for zone in dict.fromkeys([self.zone(recent[-1].year), "UTC"])
        }
        zone = max(readings, key=lambda z: _SessionFit.inside_share(readings[z], schedule))
        if pd.isna(readings[zone][-1]):
            raise ValueError(f"candles: the last timestamp does not exist in {zone}")
        return readings[zone], zone


@dataclass(frozen=True)
class _SessionFit:
    """How a history's bars sit in sessions: spacing, offset from the open, which end labels."""

    interval: pd.Timedelta
    phase: pd.Timedelta
    end_labelled: bool

    @staticmethod
    def _positions(utc: pd.DatetimeIndex, schedule: pd.DataFrame) -> tuple[np.ndarray, ...]:
        opens = schedule["open"].to_numpy(dtype="datetime64[ns]")
        closes = schedule["close"].to_numpy(dtype="datetime64[ns]")
        stamps = utc.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        session = np.clip(np.searchsorted(opens, stamps, side="right") - 1, 0, len(opens) - 1)
        return stamps, opens[session], closes[session]

    @classmethod
    def inside(cls, utc: pd.DatetimeIndex, schedule: pd.DataFrame) -> np.ndarray:
        """Per bar, whether it lies within [open, close] of a session (bool, one per bar)."""
        stamps, opens, closes = cls._positions(utc, schedule)
        return (stamps >= opens) & (stamps <= closes)

    @classmethod
    def inside_share(cls, utc: pd.DatetimeIndex, schedule: pd.DataFrame) -> float:
        """Share of bars within [open, close] of a session."""
        return float(np.mean(cls.inside(utc, schedule)))

    @classmethod
    def measure(
        cls, utc: pd.DatetimeIndex, schedule: pd.DataFrame, interval: pd.Timedelta
    ) -> _SessionFit:
        stamps, opens, closes = cls._positions(utc, schedule)
        starts = (stamps >= opens) & (stamps < closes)
        ends = (stamps > opens) & (stamps <= closes)
        end_labelled = bool(ends.sum() > starts.sum())
        inside = ends if end_labelled else starts
        step = interval.to_timedelta64()
        if not inside.any():
            return cls(interval, pd.Timedelta(0), end_labelled)
        offsets = (stamps[inside] - opens[inside]) % step
        values, counts = np.unique(offsets, return_counts=True)
        return cls(interval, pd.Timedelta(values[np.argmax(counts)]), end_labelled)

    def span(self, session: tuple) -> _SessionSpan:
        """The bars of one schedule row, inside its hours and outside its break, as step numbers
        from `open + phase` (none laid out yet)."""
        _, open_, break_start, break_end, close = session
        first = open_ + self.phase
        k0, k1 = self._steps_within(first, open_, close)
        ranges = [(k0, k1)]
        if not pd.isna(break_start):
            b0, b1 = self._steps_within(first, break_start, break_end)
            ranges = [(k0, min(k1, b0 - 1)), (max(k0, b1 + 1), k1)]
        kept = tuple((lo, hi) for lo, hi in ranges if lo <= hi)
        return _SessionSpan(first, self.interval, kept)

    def _steps_within(
        self, first: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp
    ) -> tuple[int, int]:
        """The first and last k >= 0 with `first + k * interval` in (start, end] for end-labelled
        bars, in [start, end) otherwise (integer nanoseconds: exact, nothing allocated)."""
        step = self.interval.value
        low, high = start.value - first.value, end.value - first.value
        if self.end_labelled:
            return max(low // step + 1, 0), high // step
        return max(-(-low // step), 0), -(-high // step) - 1


@dataclass(frozen=True)
class _SessionSpan:
    """One session's bars, `first + k * step` (UTC) for k in each inclusive range, in order."""

    first: pd.Timestamp
    step: pd.Timedelta
    ranges: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    @property
    def start(self) -> pd.Timestamp:
        return self.first + self.ranges[0][0] * self.step

    @property
    def end(self) -> pd.Timestamp:
        return self.first + self.ranges[-1][1] * self.step

    def after(self, instant: pd.Timestamp) -> _SessionSpan:
        """The bars after `instant`."""
        k = (instant.value - self.first.value) // self.step.value + 1
        kept = tuple((max(lo, k), hi) for lo, hi in self.ranges if hi >= k)
        return _SessionSpan(self.first, self.step, kept)

    def bars(self) -> pd.DatetimeIndex:
        """The timestamps, laid out (`count` of them)."""
        steps = [np.arange(lo, hi + 1, dtype="int64") for lo, hi in self.ranges]
        offsets = np.concatenate(steps) if steps else np.arange(0, dtype="int64")
        return pd.DatetimeIndex(self.first + pd.to_timedelta(offsets * self.step.value, unit="ns"))


class HistoryCalendar:
    """A calendar inferred from a history's own bars; satisfies `TradingCalendar`.

    Daily bars: sessions on Monday–Friday, and on a weekend day seen on at least half as many
    dates as the median weekday; no holidays. Intraday bars: the hour-of-week slots the history
    trades (wall-clock times in its own zone, each seen in at least half as many weeks as the
    median slot; with fewer than `MIN_WEEKS_FOR_SLOTS` weeks, the session's times of day on each
    traded weekday); a session runs from the week's first slot's time of day to the same time next
    day, labelled by the date it ends on when that time is after noon (FX: Sunday 22:00 UTC opens
    Monday's session), else by the date it starts on.
    """

    name = HISTORY

    def __init__(
        self,
        weekdays: frozenset[int],
        slots: tuple[pd.Timedelta, ...] = (),
        day_start: pd.Timedelta | None = None,
    ) -> None:
        self.weekdays = weekdays
        self.slots = slots  # offsets from Monday 00:00, sorted; empty for daily bars
        self.day_start = pd.Timedelta(0) if day_start is None else day_start

    @classmethod
    def infer(cls, timestamps: pd.DatetimeIndex) -> HistoryCalendar:
        wall = timestamps.tz_localize(None) if timestamps.tz is not None else timestamps
        if infer_bar_interval(timestamps) >= pd.Timedelta(days=1):
            return cls(_traded_weekdays(wall))
        week_start = wall.normalize() - pd.to_timedelta(wall.day_of_week, unit="D")
        if week_start.nunique() >= MIN_WEEKS_FOR_SLOTS:
            offsets = pd.Series(week_start, index=wall - week_start)
            weeks_per_slot = offsets.groupby(level=0).nunique()
            needed = max(1.0, 0.5 * float(weeks_per_slot.median()))
            slots = pd.TimedeltaIndex(weeks_per_slot.index[weeks_per_slot >= needed])
        else:  # too few weeks to know each weekday: the session's times on every traded weekday
            slots = pd.TimedeltaIndex(
                [pd.Timedelta(days=day) + time for day in _traded_weekdays(wall)
                 for time in _session_times(wall)]
            )  # fmt: skip
        slots = slots.as_unit("ns").sort_values()
        week = pd.Timedelta(days=7)
        gaps = np.diff(np.append(slots.asi8, slots.asi8[0] + week.value))
        first = pd.Timedelta(slots[(int(np.argmax(gaps)) + 1) % len(slots)])
        day_start = first - pd.Timedelta(days=first.days)
        return cls(frozenset(range(7)), tuple(slots), day_start)

    def future_sessions(
        self, timestamps: pd.DatetimeIndex, count: int, max_bars: int | None = None
    ) -> FutureSessions:
        """See `TradingCalendar`; a session holds at most one bar per slot, so the bars are laid
        out (a bounded number: slots × `count`) before they are counted."""
        last = timestamps[-1]
        if not self.slots:
            _check_bar_count(count, max_bars)
            labels: list[pd.Timestamp] = []
            day = last.tz_localize(None).normalize()
            while len(labels) < count:
                day += pd.Timedelta(days=1)
                if day.day_of_week in self.weekdays:
                    labels.append(day)
            return _daily_sessions(last, pd.DatetimeIndex(labels))
        wall_last = last.tz_localize(None)
        window = wall_last.normalize() + self.day_start
        if window > wall_last:
            window -= pd.Timedelta(days=1)
        sessions: list[pd.DatetimeIndex] = []
        rest = self._bars(window)
        rest = rest[rest > wall_last]
        while len(sessions) < count:
            window += pd.Timedelta(days=1)
            bars = self._bars(window)
            if len(bars):
                sessions.append(bars)
        _check_bar_count(len(rest) + sum(len(s) for s in sessions), max_bars)
        if timestamps.tz is not None:
            zone = timestamps.tz
            rest = rest.tz_localize(zone, nonexistent="shift_forward", ambiguous=True)
            sessions = [
                s.tz_localize(zone, nonexistent="shift_forward", ambiguous=True) for s in sessions
            ]
        return FutureSessions(rest, tuple(sessions))

    def outside_sessions(self, timestamps: pd.DatetimeIndex) -> int:
        """None: the sessions are the ones these bars trade (a bar the inference left out is
        one that too few weeks or days share, not a closed market's)."""
        return 0

    def _bars(self, window_start: pd.Timestamp) -> pd.DatetimeIndex:
        """Wall-clock bars of the traded slots in [window_start, window_start + 1 day)."""
        monday = window_start.normalize() - pd.Timedelta(days=window_start.day_of_week)
        candidates = pd.DatetimeIndex(
            [monday + s for s in self.slots]
            + [monday + pd.Timedelta(days=7) + s for s in self.slots]
        )
        inside = (candidates >= window_start) & (candidates < window_start + pd.Timedelta(days=1))
        return candidates[inside]


def _trades_the_fx_week(timestamps: pd.DatetimeIndex) -> bool:
    """Intraday bars around the clock (at least 20 hours of the day) of which at least 99.5 %
    lie in `24/5` sessions: the FX week, whose UTC hours move with New York's daylight saving
    time (slots inferred from the bars alone would not)."""
    recent = timestamps[-ZONE_PROBE_BARS:]
    if infer_bar_interval(recent) >= pd.Timedelta(days=1) or recent.hour.nunique() < 20:
        return False
    utc = recent.tz_convert("UTC") if recent.tz is not None else recent.tz_localize("UTC")
    day = pd.Timedelta(days=1)
    start = utc[0].tz_localize(None).normalize() - 3 * day
    schedule = exchange_calendar(FX_24_5).schedule(start, utc[-1].tz_localize(None) + 3 * day)
    return _SessionFit.inside_share(utc, schedule) >= 0.995


def _traded_weekdays(wall: pd.DatetimeIndex) -> frozenset[int]:
    dates = pd.DatetimeIndex(wall.normalize().unique())
    per_weekday = pd.Series(dates.day_of_week).value_counts()
    weekdays_seen = per_weekday[per_weekday.index < 5]
    typical = float(weekdays_seen.median()) if len(weekdays_seen) else 0.0
    weekend = {int(d) for d in per_weekday.index if d >= 5 and per_weekday[d] >= typical / 2}
    return frozenset({0, 1, 2, 3, 4} | weekend)


def _session_times(wall: pd.DatetimeIndex) -> list[pd.Timedelta]:
    """The bar times of a session: times of day seen on at least two days (so a stray bar does
    not add a slot to every future session), or every time seen when the history spans one day."""
    times = pd.Series(wall.normalize(), index=wall - wall.normalize())
    days_per_time = times.groupby(level=0).nunique()
    needed = min(2, int(days_per_time.max()))
    return sorted(days_per_time.index[days_per_time >= needed])


def _daily_sessions(last: pd.Timestamp, labels: pd.DatetimeIndex) -> FutureSessions:
    """One bar per session label, at the last bar's time of day (wall clock, its own zone)."""
    wall = last.tz_localize(None)
    offset = wall - wall.normalize()
    stamps = [pd.DatetimeIndex([label + offset]) for label in labels]
    if last.tz is not None:
        stamps = [s.tz_localize(last.tz, nonexistent="shift_forward") for s in stamps]
    return FutureSessions(pd.DatetimeIndex([], tz=last.tz), tuple(stamps))


def _check_bar_count(bars: int, max_bars: int | None) -> None:
    if max_bars is not None and bars > max_bars:
        raise TooManyBarsError(bars, max_bars)


def _split_after(
    spans: list[_SessionSpan], last: pd.Timestamp, count: int, name: str
) -> tuple[_SessionSpan, list[_SessionSpan]]:
    """The bars after `last` in its own session, then the next `count` sessions with bars."""
    rest = _SessionSpan(last, pd.Timedelta(1), ())
    sessions: list[_SessionSpan] = []
    for session in spans:
        if not session.count or session.end <= last:
            continue
        if session.start <= last:
            rest = session.after(last)
            continue
        sessions.append(session)
        if len(sessions) == count:
            return rest, sessions
    raise ValueError(f"calendar {name}: fewer than {count} sessions after {last}")


def _like(utc: pd.DatetimeIndex, history: pd.DatetimeIndex, zone: str | None) -> pd.DatetimeIndex:
    """UTC bars in the history's representation: its zone, or tz-naive in `zone`."""
    if history.tz is not None:
        return utc.tz_convert(history.tz)
    return utc.tz_convert(zone).tz_localize(None)


def _calendar(name: str, first_year: int, last_year: int) -> ExchangeCalendar:
    """An exchange_calendars calendar covering at least the given years: whole decades where the
    calendar's data reaches that far (a backtest over many years builds a handful, not one per
    year pair), else just those years."""
    decade_end = min(last_year // 10 * 10 + 9, datetime.MAXYEAR - 1)
    try:
        return _years(name, first_year // 10 * 10, decade_end)
    except ValueError:  # the decade starts before (or ends after) the calendar's data
        return _years(name, first_year, last_year)


@functools.lru_cache(maxsize=64)
def _recorded_bounds(name: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and last dates exchange_calendars records `name`'s holidays for (None: no
    bound; XBOM, XHKG, XKRX, XSAU, XSES and XSHG stop at a year's end)."""
    if name == FX_24_5:
        return None, None
    with warnings.catch_warnings():  # as in `_years`
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        kind = type(xcals.get_calendar(name))  # the default range, which the bounds clip
    return kind.bound_min(), kind.bound_max()


def _weekday_schedule(days: pd.DatetimeIndex, calendar: ExchangeCalendar) -> pd.DataFrame:
    """A schedule for `days` (dates) at the local hours of `calendar`'s last full session
    (the longest of its last ten), breaks included, in UTC like `calendar.schedule`."""
    recent = calendar.schedule.iloc[-10:]
    full = recent.loc[(recent["close"] - recent["open"]).idxmax()]
    zone, label = calendar.tz, full.name
    columns = {}
    for column in ("open", "break_start", "break_end", "close"):
        instant = full[column]
        if pd.isna(instant):
            columns[column] = pd.Series(pd.NaT, index=days, dtype=recent[column].dtype)
            continue
        offset = instant.tz_convert(zone).tz_localize(None) - label  # local time after midnight
        local = (days + offset).tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
        columns[column] = pd.Series(local.tz_convert("UTC"), index=days)
    return pd.DataFrame(columns, index=days)[list(recent.columns)]


@functools.lru_cache(maxsize=32)
def _years(name: str, first_year: int, last_year: int) -> ExchangeCalendar:
    """The calendar of `first_year` … `last_year` with a month's margin (~0.1 s per decade),
    within the dates the calendar records holidays for."""
    start, end = pd.Timestamp(f"{first_year - 1}-12-01"), pd.Timestamp(f"{last_year + 1}-01-31")
    low, high = _recorded_bounds(name)
    start, end = max(start, low) if low is not None else start, min(end, high or end)
    with warnings.catch_warnings():
        # exchange_calendars 4.13 reads Series.values of UTC columns, which pandas 3.1 deprecates.
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        if name == FX_24_5:
            return _ForexCalendar(start=start, end=end)
        return xcals.get_calendar(name, start=start, end=end)
