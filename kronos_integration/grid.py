"""The future bar grid's type, and the bar interval of a history.

`calendars.future_grid` lays out the grid: which timestamps a forecast of `horizon_days` trading
sessions generates, each horizon day reported as its session's last bar.
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
