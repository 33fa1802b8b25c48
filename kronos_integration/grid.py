"""The future bar grid: which timestamps a forecast of `horizon_days` trading days generates.

Daily bars continue on the following trading days at the last bar's time of day. Intraday bars
finish the last bar's session, then repeat the session's bar times (times of day seen on at least
two days) on each following trading day. Trading days are Monday–Friday, plus a weekend day when
the history trades on it regularly. Each horizon day is reported as that day's last bar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class FutureGrid:
    """Future bar timestamps for a horizon of trading days.

    Attributes:
        timestamps: every future bar, in order (what the forecaster generates).
        day_end_positions: per horizon day, the position in `timestamps` of its last bar.
        bar_interval: the history's bar spacing (one day for daily bars).
    """

    timestamps: pd.DatetimeIndex
    day_end_positions: tuple[int, ...]
    bar_interval: pd.Timedelta

    @property
    def days(self) -> list[dt.date]:
        return [self.timestamps[i].date() for i in self.day_end_positions]


def infer_bar_interval(timestamps: pd.DatetimeIndex) -> pd.Timedelta:
    """The typical spacing of bars: the median step between consecutive bars of the same day,
    or one day for daily bars. Raises ValueError for bars longer than a day."""
    index = pd.DatetimeIndex(timestamps)
    steps = pd.Series(index[1:] - index[:-1])
    same_day = pd.Series(index[1:].normalize() == index[:-1].normalize())
    if same_day.any():
        return pd.Timedelta(steps[same_day].median())
    if steps.median() > pd.Timedelta(days=4):
        raise ValueError(
            "candles: bars longer than one day are not supported (horizon_days counts trading days)"
        )
    return pd.Timedelta(days=1)


def future_grid(timestamps: pd.DatetimeIndex, horizon_days: int) -> FutureGrid:
    """Timestamps of the bars that follow `timestamps` through `horizon_days` trading days.

    Raises ValueError for a horizon below 1, bars longer than a day, or a grid that would run past
    the year 9999.
    """
    if horizon_days < 1:
        raise ValueError("horizon_days must be at least 1")
    try:
        grid = _grid(pd.DatetimeIndex(timestamps), horizon_days)
    except OverflowError:
        grid = None
    if grid is None or grid.timestamps[-1].year > dt.MAXYEAR:
        raise ValueError(
            f"candles: the forecast would run past the year {dt.MAXYEAR}; check the timestamps"
        )
    return grid


def _grid(index: pd.DatetimeIndex, horizon_days: int) -> FutureGrid:
    last = index[-1]
    interval = infer_bar_interval(index)
    days = _following_days(last.normalize(), horizon_days, _trading_weekdays(index))
    if interval >= pd.Timedelta(days=1):
        offset = last - last.normalize()
        stamps = [day + offset for day in days]
        return FutureGrid(
            pd.DatetimeIndex(stamps, name="timestamp"), tuple(range(horizon_days)), interval
        )
    session = _session_times(index)
    stamps = [last.normalize() + t for t in session if t > last - last.normalize()]
    day_ends = []
    for day in days:
        stamps.extend(day + t for t in session)
        day_ends.append(len(stamps) - 1)
    return FutureGrid(pd.DatetimeIndex(stamps, name="timestamp"), tuple(day_ends), interval)


def _trading_weekdays(index: pd.DatetimeIndex) -> set[int]:
    """Monday–Friday (0–4), plus each weekend day seen on at least half as many dates as the
    median weekday: a market that trades every day, not one special Saturday session."""
    dates = pd.DatetimeIndex(index.normalize().unique())
    per_weekday = pd.Series(dates.day_of_week).value_counts()
    weekdays_seen = per_weekday[per_weekday.index < 5]
    typical = float(weekdays_seen.median()) if len(weekdays_seen) else 0.0
    weekend = {
        int(day) for day in per_weekday.index if day >= 5 and per_weekday[day] >= typical / 2
    }
    return {0, 1, 2, 3, 4} | weekend


def _session_times(index: pd.DatetimeIndex) -> list[pd.Timedelta]:
    """The bar times of a session: times of day seen on at least two days (so a stray bar does
    not add a slot to every future session), or every time seen when the history spans one day."""
    times = pd.Series(index.normalize(), index=index - index.normalize())
    days_per_time = times.groupby(level=0).nunique()
    needed = min(2, int(days_per_time.max()))
    return sorted(days_per_time.index[days_per_time >= needed])


def _following_days(start: pd.Timestamp, count: int, weekdays: set[int]) -> list[pd.Timestamp]:
    days: list[pd.Timestamp] = []
    day = start
    while len(days) < count:
        day = day + pd.DateOffset(days=1)  # the next midnight, also across a DST change
        if day.day_of_week in weekdays:
            days.append(day)
    return days
