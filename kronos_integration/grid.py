"""The future bar grid's type, and the bar interval of a history.

`calendars.future_grid` lays out the grid: which timestamps a forecast of `horizon_days` trading
sessions generates, each horizon day reported as its session's last bar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

MIN_BAR_INTERVAL = pd.Timedelta(seconds=1)
"""Shortest bar interval a history may have: finer bars would need millions of future bars a day
(and Kronos's time features stop at the minute)."""


class TooManyBarsError(ValueError):
    """A horizon needs more future bars than allowed; `bars` is how many, counted before any
    timestamp was laid out."""

    def __init__(self, bars: int, limit: int) -> None:
        super().__init__(f"the horizon needs {bars} bars; at most {limit} are allowed")
        self.bars = bars
        self.limit = limit


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


def intraday_step(timestamps: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The median step between consecutive bars of the same day; None when no two bars share one."""
    index = pd.DatetimeIndex(timestamps)
    steps = pd.Series(index[1:] - index[:-1])
    same_day = pd.Series(index[1:].normalize() == index[:-1].normalize())
    return pd.Timedelta(steps[same_day].median()) if same_day.any() else None


def infer_bar_interval(timestamps: pd.DatetimeIndex) -> pd.Timedelta:
    """The typical spacing of bars: `intraday_step`, or one day for daily bars. Raises ValueError
    for bars longer than a day."""
    step = intraday_step(timestamps)
    if step is not None:
        return step
    index = pd.DatetimeIndex(timestamps)
    if pd.Series(index[1:] - index[:-1]).median() > pd.Timedelta(days=4):
        raise ValueError(
            "candles: bars longer than one day are not supported (horizon_days counts trading days)"
        )
    return pd.Timedelta(days=1)
