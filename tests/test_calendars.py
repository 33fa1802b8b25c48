"""Trading calendars against real calendar facts and a real hourly FX series."""

import datetime

import numpy as np
import pandas as pd
import pytest

from benchmarks.real_series import SeriesUnavailableError, eurusd_hourly
from kronos_integration.calendars import (
    HistoryCalendar,
    UnknownCalendarError,
    exchange_calendar,
    future_grid,
    resolve_calendar,
)
from kronos_integration.grid import TooManyBarsError

NEW_YORK = "America/New_York"


def _session_bars(start: str, end: str, first: str, last: str, freq: str = "5min", tz=None):
    index = pd.date_range(start, end, freq=freq, tz=tz)
    index = index[index.indexer_between_time(first, last)]
    return index[index.day_of_week < 5]


def test_daily_nyse_skips_thanksgiving_and_christmas():
    history = pd.bdate_range("2025-06-02", "2025-11-26")  # ends the Wednesday before Thanksgiving
    grid = future_grid(history, 5, exchange_calendar("XNYS"))
    assert [d.isoformat() for d in grid.days] == [
        "2025-11-28",
        "2025-12-01",
        "2025-12-02",
        "2025-12-03",
        "2025-12-04",
    ]
    assert grid.day_end_positions == (0, 1, 2, 3, 4)
    christmas = future_grid(
        pd.bdate_range("2025-06-02", "2025-12-24"), 1, exchange_calendar("XNYS")
    )
    assert christmas.days == [datetime.date(2025, 12, 26)]


def test_intraday_nyse_respects_the_early_close_after_thanksgiving():
    history = _session_bars("2025-11-17", "2025-11-26 23:59", "09:30", "15:55")
    grid = future_grid(history, 2, exchange_calendar("XNYS"))
    day_ends = [grid.timestamps[i] for i in grid.day_end_positions]
    assert day_ends == [pd.Timestamp("2025-11-28 12:55"), pd.Timestamp("2025-12-01 15:55")]
    friday = grid.timestamps[grid.timestamps.normalize() == pd.Timestamp("2025-11-28")]
    assert len(friday) == 42  # 09:30 … 12:55, the 13:00 early close
    assert len(grid.timestamps) == 42 + 78
    assert not (grid.timestamps.normalize() == pd.Timestamp("2025-11-27")).any()


def test_intraday_rest_of_the_session_comes_before_the_horizon_days():
    history = _session_bars("2025-11-17", "2025-11-25 12:00", "09:30", "15:55")
    grid = future_grid(history, 1, exchange_calendar("XNYS"))
    assert grid.timestamps[0] == pd.Timestamp("2025-11-25 12:05")
    assert grid.days == [datetime.date(2025, 11, 26)]
    assert grid.timestamps[grid.day_end_positions[0]] == pd.Timestamp("2025-11-26 15:55")


def test_tz_aware_and_naive_utc_histories_give_the_same_instants():
    local = _session_bars("2025-11-17", "2025-11-26 23:59", "09:30", "15:55", tz=NEW_YORK)
    aware = future_grid(local.tz_convert("UTC"), 1, exchange_calendar("XNYS"))
    assert str(aware.timestamps.tz) == "UTC"
    assert aware.timestamps[0] == pd.Timestamp("2025-11-28 14:30", tz="UTC")
    # tz-naive UTC bars: UTC fits the NYSE sessions better than New York time, so UTC is kept.
    naive = future_grid(local.tz_convert("UTC").tz_localize(None), 1, exchange_calendar("XNYS"))
    assert naive.timestamps.tz is None
    np.testing.assert_array_equal(naive.timestamps, aware.timestamps.tz_localize(None))


def test_end_labelled_bars_stay_end_labelled():
    history = _session_bars("2025-11-17", "2025-11-26 23:59", "10:00", "16:00", freq="30min")
    grid = future_grid(history, 1, exchange_calendar("XNYS"))
    assert grid.timestamps[0] == pd.Timestamp("2025-11-28 10:00")
    assert grid.timestamps[-1] == pd.Timestamp("2025-11-28 13:00")


def test_tokyo_lunch_break_and_holiday():
    history = _session_bars("2025-11-17", "2025-11-21 23:59", "09:00", "15:00", freq="30min")
    history = history[~((history.hour == 11) & (history.minute == 30)) & (history.hour != 12)]
    grid = future_grid(history, 1, exchange_calendar("XTKS"))
    # Monday 24 November 2025 is a Japanese holiday (Labour Thanksgiving, observed).
    assert grid.days == [datetime.date(2025, 11, 25)]
    times = list(grid.timestamps.strftime("%H:%M"))
    assert "11:30" not in times and "12:00" not in times
    assert times[:2] == ["09:00", "09:30"] and "12:30" in times


def _eurusd() -> pd.DataFrame:
    try:
        return eurusd_hourly()
    except SeriesUnavailableError as error:
        pytest.skip(str(error))


def _closed_for_fx(stamps: pd.DatetimeIndex) -> np.ndarray:
    """Hourly bars (start-labelled, naive UTC) that start between Friday 17:00 and Sunday 17:00
    New York time, when spot FX does not trade."""
    local = stamps.tz_localize("UTC").tz_convert(NEW_YORK)
    hours = (local.day_of_week - 4) * 24 + local.hour  # hours since Friday 00:00 New York
    return np.asarray((hours >= 17) & (hours < 17 + 48))


@pytest.mark.parametrize("calendar", ["24/5", "history"])
def test_no_hourly_fx_bar_falls_in_the_weekend(calendar: str):
    """A real hourly EUR/USD series, cut at 120 origins: no future bar in closed hours."""
    history = _eurusd().index
    assert _closed_for_fx(history).mean() < 0.001  # the data keeps the FX week (2 stray bars)
    for cut in range(600, len(history), 37):
        past = history[:cut]
        resolved = resolve_calendar(None if calendar == "history" else calendar, timestamps=past)
        assert resolved.calendar.name == "24/5"  # named, or recognised from the bars
        grid = future_grid(past, 3, resolved.calendar)
        assert not _closed_for_fx(grid.timestamps).any(), past[-1]
        assert len(set(grid.days)) == 3


def test_fx_day_one_from_a_friday_is_monday_closing_at_five_new_york():
    history = _eurusd().index
    friday = history[history <= "2017-12-01 15:00"]  # winter: New York close is 22:00 UTC
    grid = future_grid(friday, 1, exchange_calendar("24/5"))
    assert grid.timestamps[0] == pd.Timestamp("2017-12-01 16:00")
    assert grid.timestamps[grid.day_end_positions[0]] == pd.Timestamp("2017-12-04 21:00")
    assert pd.Timestamp("2017-12-03 22:00") in grid.timestamps  # Sunday 17:00 New York opens
    assert pd.Timestamp("2017-12-03 21:00") not in grid.timestamps
    summer = history[history <= "2017-07-07 20:00"]  # summer: 21:00 UTC
    grid = future_grid(summer, 1, exchange_calendar("24/5"))
    assert grid.timestamps[0] == pd.Timestamp("2017-07-09 21:00")
    assert grid.timestamps[-1] == pd.Timestamp("2017-07-10 20:00")


def test_24_7_trades_weekends_and_24_5_daily_does_not():
    history = pd.bdate_range("2025-01-01", "2025-11-28")  # ends on a Friday
    assert future_grid(history, 2, exchange_calendar("24/7")).days == [
        datetime.date(2025, 11, 29),
        datetime.date(2025, 11, 30),
    ]
    assert future_grid(history, 1, exchange_calendar("24/5")).days == [datetime.date(2025, 12, 1)]


def test_history_calendar_finds_a_seven_day_daily_market():
    crypto = pd.date_range("2025-01-01", "2025-11-28", freq="D")
    resolved = resolve_calendar(timestamps=crypto)
    assert resolved.source == "history" and resolved.calendar.name == "history"
    assert future_grid(crypto, 2, resolved.calendar).days == [
        datetime.date(2025, 11, 29),
        datetime.date(2025, 11, 30),
    ]
    weekdays = pd.bdate_range("2025-01-01", "2025-11-28")
    assert HistoryCalendar.infer(weekdays).weekdays == frozenset(range(5))


def test_bars_outside_the_sessions_are_counted():
    xnys = exchange_calendar("XNYS")
    new_years_day = pd.date_range("2024-01-01 09:30", "2024-01-01 15:55", freq="5min")  # holiday
    assert xnys.outside_sessions(new_years_day) == 78
    trading = _session_bars("2024-01-02", "2024-01-06", "09:30", "15:55")  # Tuesday to Friday
    assert xnys.outside_sessions(trading) == 0
    assert xnys.outside_sessions(trading.tz_localize(NEW_YORK).tz_convert("UTC")) == 0
    evenings = _session_bars("2024-01-02", "2024-01-06", "17:00", "18:55", tz=NEW_YORK)
    assert xnys.outside_sessions(evenings) == len(evenings)  # after the close
    # Read as the forecast reads them: tz-naive, these times fit the sessions in UTC.
    assert xnys.outside_sessions(evenings.tz_localize(None)) == 0
    daily = pd.bdate_range("2023-12-20", "2024-01-10")  # Christmas and New Year's Day
    assert xnys.outside_sessions(daily) == 2
    assert exchange_calendar("24/5").outside_sessions(pd.date_range("2024-01-01", periods=14)) == 4
    assert HistoryCalendar.infer(daily).outside_sessions(daily) == 0


@pytest.mark.parametrize(
    ("isin", "expected"),
    [
        ("US67066G1040", "XNYS"),
        ("DE0007164600", "XETR"),
        ("GB0002634946", "XLON"),
        ("FR0000120271", "XPAR"),
        ("JP3633400001", "XTKS"),
    ],
)
def test_isin_country_default(isin: str, expected: str):
    resolved = resolve_calendar(isin=isin)
    assert (resolved.calendar.name, resolved.source) == (expected, "isin")


def test_a_name_beats_the_isin_and_an_unknown_prefix_falls_back_to_the_history():
    assert resolve_calendar("xlon", isin="US67066G1040").calendar.name == "XLON"
    fallback = resolve_calendar(
        isin="XS1234567890", timestamps=pd.bdate_range("2025-01-01", periods=40)
    )
    assert fallback.source == "history"


def test_unknown_calendar_is_a_value_error_naming_the_choices():
    with pytest.raises(UnknownCalendarError, match=r"'XXXX'.*XNYS.*24/5"):
        resolve_calendar("XXXX")
    with pytest.raises(ValueError, match="calendar"):
        resolve_calendar()


@pytest.mark.parametrize("name", ["XNYS", "XTKS", "24/5", "24/7"])
@pytest.mark.parametrize("step", ["1ms", "1us"])
def test_a_grid_of_tiny_bars_is_counted_and_refused_before_it_is_laid_out(name, step):
    history = pd.date_range("2025-03-04 14:00", periods=60, freq=step)  # a Tuesday
    with pytest.raises(TooManyBarsError) as refused:
        future_grid(history, 1, exchange_calendar(name), max_bars=512)
    assert refused.value.bars > 10**6 and refused.value.limit == 512


def test_the_bar_count_is_exact():
    history = pd.date_range("2025-03-04 14:00", periods=60, freq="1ms")
    with pytest.raises(TooManyBarsError) as refused:
        future_grid(history, 1, exchange_calendar("XNYS"), max_bars=512)
    # After 14:00:00.059 up to the 16:00 close, then the whole of Wednesday's 6.5 hours.
    assert refused.value.bars == (2 * 3600 * 1000 - 60) + int(6.5 * 3600 * 1000)


@pytest.mark.parametrize(
    ("history", "name"),
    [
        (_session_bars("2025-11-17", "2025-11-26 23:59", "10:00", "16:00", freq="30min"), "XNYS"),
        (_session_bars("2025-11-17", "2025-11-21 14:00", "09:00", "15:00", freq="30min"), "XTKS"),
        (_session_bars("2025-03-03", "2025-03-05 12:00", "09:35", "16:00", freq="5min"), "XNYS"),
        (pd.date_range("2025-03-03", periods=100, freq="h"), "24/5"),
        (pd.date_range("2025-03-03", periods=100, freq="h"), "24/7"),
        (pd.bdate_range("2025-06-02", periods=40), "XNYS"),
        (pd.date_range("2025-03-04 10:00", periods=60, freq="min"), "history"),
        (pd.bdate_range("2025-06-02", periods=40), "history"),
    ],
    ids=["early-close", "lunch-break", "end-labelled", "fx", "24-7", "daily", "slots", "weekdays"],
)
def test_the_limit_takes_the_grid_that_fits_and_refuses_one_bar_more(history, name):
    calendar = resolve_calendar(name, timestamps=history).calendar
    grid = future_grid(history, 3, calendar)
    bars = len(grid.timestamps)
    assert future_grid(history, 3, calendar, max_bars=bars).timestamps.equals(grid.timestamps)
    with pytest.raises(TooManyBarsError) as refused:
        future_grid(history, 3, calendar, max_bars=bars - 1)
    assert refused.value.bars == bars


def test_past_its_recorded_holidays_a_calendar_trades_every_weekday_at_its_usual_hours():
    """exchange_calendars records XBOM's holidays through the end of 2026 only (and XHKG's
    lunch break): later dates are every weekday at the last full session's hours, not an
    error, and a forecast that reaches them says so."""
    for name in ("XBOM", "XHKG"):
        calendar = exchange_calendar(name)
        recorded_until = calendar.holidays_recorded_until
        assert recorded_until is not None
        after = recorded_until + pd.Timedelta(days=1)
        schedule = calendar.schedule(
            recorded_until - pd.Timedelta(days=20), after + pd.Timedelta(days=30)
        )
        later = schedule.loc[after:]
        assert list(later.index) == list(pd.bdate_range(after, after + pd.Timedelta(days=30)))
        last_full = schedule.loc[:recorded_until].iloc[-10:]
        last_full = last_full.loc[(last_full["close"] - last_full["open"]).idxmax()]
        for column in ("open", "break_start", "break_end", "close"):
            if pd.isna(last_full[column]):
                assert later[column].isna().all()
                continue
            zone = str(calendar.zone(after.year))
            local = later[column].dt.tz_convert(zone).dt.time
            assert (local == last_full[column].tz_convert(zone).time()).all(), (name, column)
    assert exchange_calendar("XNYS").holidays_recorded_until is None
