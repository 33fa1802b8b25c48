"""Candle validation and parsing (`kronos_integration.candles`)."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.real_series import VENDORED_DIR
from kronos_integration.candles import (
    MIN_HISTORY_BARS,
    candles_from_records,
    read_candles_file,
    validate_candles,
)
from tests.candles import candle_records, make_candles
from tests.checkpoints import GOLDEN


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
        (
            _broken(lambda f: _set(f, 4, "close", f["high"].iloc[4] + 999)),
            r"candles\[4\]\.close: \S+ is above high",
        ),
        (_broken(lambda f: _set(f, 6, "open", 1e-3)), r"candles\[6\]\.open: 0\.001 is below low"),
        (
            _broken(lambda f: _set(_set(f, 8, "open", 1e-3), 5, "close", 1e-3)),
            r"candles\[5\]\.close: .* below low",
        ),
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


def test_real_series_keep_open_and_close_inside_the_bar_and_float32_rounding_is_no_error():
    for path in [*sorted(VENDORED_DIR.glob("*.csv")), GOLDEN / "candles.csv"]:
        validate_candles(read_candles_file(path))  # raises on any bar outside [low, high]
    frame = make_candles(40)
    frame["close"] = frame["high"].astype("float32").astype("float64")  # may round above high
    frame["open"] = frame["low"].astype("float32").astype("float64")  # may round below low
    assert ((frame["close"] > frame["high"]) | (frame["open"] < frame["low"])).any()
    validate_candles(frame)
