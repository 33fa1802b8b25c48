from datetime import date

import numpy as np
import pandas as pd
import pytest

from kronos_integration.data import (
    MIN_HISTORY_BARS,
    HistoryNotFoundError,
    candles_from_records,
    future_grid,
    infer_bar_interval,
    read_history_file,
    resolve_history,
    synthetic_history,
    validate_candles,
)
from tests.candles import candle_records, make_candles
from tests.checkpoints import GOLDEN

ISIN = "US67066G1040"


def test_valid_candles_pass_and_keep_their_values():
    frame = make_candles(60)
    out = validate_candles(frame)
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "amount"]
    np.testing.assert_array_equal(out.to_numpy(), frame.to_numpy())


def test_missing_volume_and_amount_are_filled_like_the_reference():
    frame = make_candles(40)[["open", "high", "low", "close"]]
    out = validate_candles(frame)
    assert (out["volume"] == 0).all()
    assert (out["amount"] == 0).all()


def _broken(change):
    frame = make_candles(40)
    return change(frame)


def _set(frame, row, column, value):
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_broken(lambda f: _set(f, 3, "close", np.nan)), r"candles\[3\]\.close: NaN or infinite"),
        (_broken(lambda f: _set(f, 5, "volume", np.inf)), r"candles\[5\]\.volume: NaN or infinite"),
        (_broken(lambda f: _set(f, 7, "low", -1.0)), r"candles\[7\]\.low: prices must be positive"),
        (
            _broken(lambda f: _set(f, 8, "open", 0.0)),
            r"candles\[8\]\.open: prices must be positive",
        ),
        (_broken(lambda f: _set(f, 2, "high", 1e300)), r"candles\[2\]\.high: above 1e\+15"),
        (_broken(lambda f: _set(f, 6, "amount", -2.0)), r"candles\[6\]\.amount: negative value"),
        (_broken(lambda f: _set(f, 9, "high", 0.5)), r"candles\[9\]: high is below low"),
        (_broken(lambda f: f.drop(columns=["close", "open"])), "missing column.*open, close"),
        (_broken(lambda f: f.iloc[[0, 2, 1, *range(3, 40)]]), r"candles\[2\].*increasing order"),
        (_broken(lambda f: f.iloc[[0, 1, 1, *range(2, 40)]]), r"candles\[2\]: duplicate timestamp"),
        (make_candles(MIN_HISTORY_BARS - 1), f"too little history.*{MIN_HISTORY_BARS} needed"),
    ],
)
def test_bad_candles_raise_naming_the_problem(frame, message):
    with pytest.raises(ValueError, match=message):
        validate_candles(frame)


def test_records_round_trip_and_unparseable_timestamp():
    frame = make_candles(40)
    parsed = candles_from_records(candle_records(frame))
    pd.testing.assert_index_equal(parsed.index, frame.index, check_exact=True, check_freq=False)
    records = candle_records(frame)
    records[4]["timestamp"] = "not a date"
    with pytest.raises(ValueError, match="timestamp could not be parsed"):
        candles_from_records(records)
    del records[4]["timestamp"]
    with pytest.raises(ValueError, match="timestamp"):
        candles_from_records([{"open": 1.0}])


def test_history_sources_in_order(tmp_path):
    frame = make_candles(50)
    frame.reset_index().to_csv(tmp_path / f"{ISIN}.csv", index=False)
    inline = make_candles(45, seed=3)

    from_request = resolve_history(
        ISIN, candle_records(inline), data_dir=tmp_path, allow_synthetic=True
    )
    assert from_request.source == "request"
    assert len(from_request.candles) == 45

    from_file = resolve_history(ISIN, None, data_dir=tmp_path, allow_synthetic=True)
    assert from_file.source == "data_dir"
    np.testing.assert_allclose(from_file.candles.to_numpy(), frame.to_numpy())

    other = "US0378331005"
    synthetic = resolve_history(other, None, data_dir=tmp_path, allow_synthetic=True)
    assert synthetic.source == "synthetic"

    with pytest.raises(HistoryNotFoundError, match=f"{other}.*candles.*KRONOS_DATA_DIR"):
        resolve_history(other, None, data_dir=tmp_path, allow_synthetic=False)
    with pytest.raises(HistoryNotFoundError, match="KRONOS_DATA_DIR"):
        resolve_history(other, None, data_dir=None, allow_synthetic=False)


def test_changing_utc_offsets_keep_their_wall_clock_and_mixed_naive_times_are_refused():
    frame = make_candles(40, freq="h", start="2025-03-29 19:00")
    frame.index = frame.index.tz_localize("UTC").tz_convert("Europe/Paris")  # summer from 03-30
    records = candle_records(frame)
    assert {r["timestamp"][-6:] for r in records} == {"+01:00", "+02:00"}
    parsed = candles_from_records(records)
    assert parsed.index[0] == pd.Timestamp("2025-03-29 19:00", tz="UTC")
    assert parsed.index[10] == pd.Timestamp("2025-03-30 05:00", tz="UTC")
    assert [stamp.isoformat() for stamp in parsed.index] == [r["timestamp"] for r in records]
    shifted = [dict(r, timestamp=r["timestamp"][:-6] + "+05:00") for r in records[:10]]
    unlikely = candles_from_records([*shifted, *records[10:]])  # offsets no time zone has
    assert str(unlikely.index.tz) == "UTC"
    assert unlikely.index[0] == pd.Timestamp("2025-03-29 15:00", tz="UTC")
    records[3]["timestamp"] = records[3]["timestamp"][:-6]
    with pytest.raises(ValueError, match="mix UTC offsets"):
        candles_from_records(records)


def test_parquet_file_is_read(tmp_path):
    frame = make_candles(50)
    frame.reset_index().to_parquet(tmp_path / f"{ISIN}.parquet")
    history = resolve_history(ISIN, None, data_dir=tmp_path, allow_synthetic=False)
    assert history.source == "data_dir"
    np.testing.assert_allclose(history.candles.to_numpy(), frame.to_numpy())


def test_bad_file_raises_value_error(tmp_path):
    make_candles(50).to_csv(tmp_path / f"{ISIN}.csv", index=False)
    with pytest.raises(ValueError, match=f"^KRONOS_DATA_DIR/{ISIN}.csv: needs a 'timestamp'"):
        resolve_history(ISIN, None, data_dir=tmp_path, allow_synthetic=False)
    frame = make_candles(50)
    frame.iloc[3, 1] = -5.0
    frame.reset_index().to_csv(tmp_path / f"{ISIN}.csv", index=False)
    with pytest.raises(ValueError, match=rf"^KRONOS_DATA_DIR/{ISIN}.csv: candles\[3\]\.high"):
        resolve_history(ISIN, None, data_dir=tmp_path, allow_synthetic=False)


def test_synthetic_history_is_deterministic_per_isin_and_ends_at_100():
    first = synthetic_history(ISIN, end=date(2025, 3, 7))
    again = synthetic_history(ISIN, end=date(2025, 3, 7))
    other = synthetic_history("US0378331005", end=date(2025, 3, 7))
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["close"], other["close"])
    assert first["close"].iloc[-1] == pytest.approx(100.0)
    assert first.index[-1] == pd.Timestamp("2025-03-07")
    validate_candles(first)


def test_synthetic_history_ends_on_the_last_business_day():
    history = resolve_history(
        ISIN, None, data_dir=None, allow_synthetic=True, today=date(2025, 3, 10)
    )
    assert history.timestamps[-1] == pd.Timestamp("2025-03-07")  # Monday → previous Friday


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
    history = validate_candles(read_history_file(GOLDEN / "candles.csv"))
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
