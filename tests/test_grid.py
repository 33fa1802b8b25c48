"""The future bar grid from a calendar inferred from the history itself (no exchange named):
the weekdays (or hour-of-week slots) it trades. Exchange calendars: tests/test_calendars.py."""

from datetime import date

import pandas as pd
import pytest

from kronos_integration.calendars import future_grid as calendar_grid
from kronos_integration.calendars import resolve_calendar
from kronos_integration.candles import candles_from_records, read_candles_file, validate_candles
from kronos_integration.grid import FutureGrid, infer_bar_interval
from tests.candles import make_candles
from tests.checkpoints import GOLDEN


def future_grid(index: pd.DatetimeIndex, horizon_days: int) -> FutureGrid:
    """The grid on the calendar inferred from `index`."""
    calendar = resolve_calendar(timestamps=pd.DatetimeIndex(index)).calendar
    return calendar_grid(pd.DatetimeIndex(index), horizon_days, calendar)


def test_daily_grid_uses_business_days():
    index = make_candles(40, start="2025-01-02").index  # ends Wednesday 2025-02-26
    assert infer_bar_interval(index) == pd.Timedelta(days=1)
    grid = future_grid(index, 5)
    expected = pd.to_datetime(
        ["2025-02-27", "2025-02-28", "2025-03-03", "2025-03-04", "2025-03-05"]
    )
    assert list(grid.timestamps) == list(expected)
    assert grid.day_end_positions == (0, 1, 2, 3, 4)


def test_daily_grid_keeps_the_time_of_day_and_weekends_when_traded():
    index = pd.date_range("2025-01-01 16:00", periods=40, freq="D")
    grid = future_grid(index, 3)
    assert [t.isoformat() for t in grid.timestamps] == [
        "2025-02-10T16:00:00",
        "2025-02-11T16:00:00",
        "2025-02-12T16:00:00",
    ]


def test_one_special_weekend_session_does_not_make_every_weekend_a_trading_day():
    index = pd.bdate_range("2024-01-01", periods=300)
    index = index.append(pd.DatetimeIndex(["2024-02-03"])).sort_values()  # a Saturday session
    grid = future_grid(index, 6)
    assert [t.day_of_week for t in grid.timestamps] == [0, 1, 2, 3, 4, 0]


def test_intraday_grid_repeats_the_session_and_matches_the_golden_future():
    history = validate_candles(read_candles_file(GOLDEN / "candles.csv"))
    golden_future = pd.DatetimeIndex(pd.read_csv(GOLDEN / "future_timestamps.csv")["timestamps"])
    assert infer_bar_interval(history.index) == pd.Timedelta(minutes=5)
    grid = future_grid(history.index, 2)
    assert list(grid.timestamps[: len(golden_future)]) == list(golden_future)
    ends = [grid.timestamps[i] for i in grid.day_end_positions]
    assert ends == [pd.Timestamp("2024-07-01 15:00"), pd.Timestamp("2024-07-02 15:00")]
    assert len(grid.timestamps) == 12 + 2 * 48  # rest of Friday's session + two whole sessions


def test_intraday_grid_from_a_session_end_starts_next_business_day():
    times = [f"2025-03-0{d} {h:02d}:00" for d in (5, 6, 7) for h in range(10, 17)]
    index = pd.DatetimeIndex(times)  # Wed–Fri, hourly 10:00–16:00
    grid = future_grid(index, 1)
    assert grid.timestamps[0] == pd.Timestamp("2025-03-10 10:00")
    assert grid.timestamps[grid.day_end_positions[0]] == pd.Timestamp("2025-03-10 16:00")
    assert len(grid.timestamps) == 7


def test_a_stray_bar_does_not_add_a_slot_to_every_future_session():
    times = [f"2025-03-0{d} {h:02d}:00" for d in (5, 6, 7) for h in range(10, 17)]
    index = pd.DatetimeIndex(sorted([*times, "2025-03-06 18:30"]))  # one after-hours print
    grid = future_grid(index, 2)
    assert len(grid.timestamps) == 2 * 7
    assert all(t.hour <= 16 for t in grid.timestamps)
    one_day = pd.date_range("2025-03-07 09:30", periods=40, freq="5min")
    assert len(future_grid(one_day, 1).timestamps) == 40  # one day seen: every time counts


def test_intraday_grid_across_a_dst_change_keeps_the_local_session():
    """30-minute bars 09:30–15:30 New York time, sent with their UTC offsets, across the switch
    to summer time on 2024-03-10: the future sessions are 13 bars at the same wall-clock times."""
    days = pd.bdate_range("2024-03-01", "2024-03-20")
    session = pd.timedelta_range("9h30min", "15h30min", freq="30min")
    stamps = [(day + time).tz_localize("America/New_York") for day in days for time in session]
    records = [
        {"timestamp": s.isoformat(), "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0}
        for s in stamps
    ]
    history = validate_candles(candles_from_records(records))
    grid = future_grid(history.index, 2)
    expected = [
        (day + time).tz_localize("America/New_York")
        for day in pd.to_datetime(["2024-03-21", "2024-03-22"])
        for time in session
    ]
    assert list(grid.timestamps) == expected
    assert grid.days == [date(2024, 3, 21), date(2024, 3, 22)]


def test_daily_grid_across_a_dst_change_keeps_the_time_of_day():
    closes = pd.date_range(end="2024-10-25 17:30", periods=40, freq="B", tz="Europe/Paris")
    grid = future_grid(closes, 3)  # Sunday 2024-10-27 is 25 hours long: back to winter time
    assert [t.isoformat() for t in grid.timestamps] == [
        "2024-10-28T17:30:00+01:00",
        "2024-10-29T17:30:00+01:00",
        "2024-10-30T17:30:00+01:00",
    ]


def test_bars_longer_than_a_day_are_refused():
    index = pd.date_range("2024-01-05", periods=40, freq="W-FRI")
    with pytest.raises(ValueError, match="longer than one day"):
        future_grid(index, 2)
