"""Where history comes from (`kronos_integration.history`): inline candles, the data folder,
synthetic history, in that order."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from kronos_integration.calendars import ExchangeTradingCalendar
from kronos_integration.candles import validate_candles
from kronos_integration.errors import HistoryNotFoundError, InvalidRequestError, StoredHistoryError
from kronos_integration.history import (
    DataFolder,
    SyntheticHistory,
    resolve_history,
    synthetic_history,
)
from tests.candles import make_candles

ISIN = "US67066G1040"


def test_history_sources_in_order(tmp_path):
    frame = make_candles(50)
    frame.reset_index().to_csv(tmp_path / f"{ISIN}.csv", index=False)
    inline = make_candles(45, seed=3)

    both = [DataFolder(tmp_path), SyntheticHistory()]
    from_request = resolve_history(ISIN, inline, both)
    assert from_request.source == "request"
    assert len(from_request.candles) == 45

    from_file = resolve_history(ISIN, None, both)
    assert from_file.source == "data_dir"
    np.testing.assert_allclose(from_file.candles.to_numpy(), frame.to_numpy())

    other = "US0378331005"
    synthetic = resolve_history(other, None, both)
    assert synthetic.source == "synthetic"

    with pytest.raises(HistoryNotFoundError, match=f"{other}.*candles.*KRONOS_DATA_DIR"):
        resolve_history(other, None, [DataFolder(tmp_path)])
    with pytest.raises(HistoryNotFoundError, match="KRONOS_DATA_DIR"):
        resolve_history(other, None, [])


def test_parquet_file_is_read(tmp_path):
    frame = make_candles(50)
    frame.reset_index().to_parquet(tmp_path / f"{ISIN}.parquet")
    history = resolve_history(ISIN, None, [DataFolder(tmp_path)])
    assert history.source == "data_dir"
    np.testing.assert_allclose(history.candles.to_numpy(), frame.to_numpy())


def test_a_bad_file_is_the_operators_error_naming_it_not_the_path(tmp_path):
    folder = [DataFolder(tmp_path)]
    make_candles(50).to_csv(tmp_path / f"{ISIN}.csv", index=False)
    with pytest.raises(StoredHistoryError) as caught:
        resolve_history(ISIN, None, folder)
    assert "needs a 'times" in caught.value.reason
    frame = make_candles(50)
    frame.iloc[3, 1] = -5.0
    frame.reset_index().to_csv(tmp_path / f"{ISIN}.csv", index=False)
    with pytest.raises(StoredHistoryError) as caught:
        resolve_history(ISIN, None, folder)
    assert "candles[3].high" in caught.value.reason
    assert str(caught.value).startswith(
        f"The stored history of {ISIN} (KRONOS_DATA_DIR/{ISIN}.csv) cannot be used"
    )
    assert str(tmp_path) not in str(caught.value)
    assert not isinstance(caught.value, InvalidRequestError)


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
    history = resolve_history(ISIN, None, [SyntheticHistory(today=lambda: date(2025, 3, 10))])
    assert history.timestamps[-1] == pd.Timestamp("2025-03-07")  # Monday → previous Friday


def test_synthetic_history_of_an_isin_trades_on_its_exchanges_sessions():
    """A US ISIN's forecast follows XNYS (`metadata.calendar`): so does its made-up history."""
    source = SyntheticHistory(today=lambda: date(2026, 11, 27))  # the day after Thanksgiving
    stamps = source.load(ISIN).timestamps
    assert pd.Timestamp("2026-11-26") not in stamps  # Thanksgiving
    assert stamps[-1] == pd.Timestamp("2026-11-25")
    xnys = ExchangeTradingCalendar("XNYS").schedule(stamps[0], stamps[-1]).index
    assert list(stamps) == list(xnys)
    # An ISIN prefix with no country exchange (XS) keeps the weekdays.
    weekdays = synthetic_history("XS0000000009", end=date(2026, 11, 27)).index
    assert pd.Timestamp("2026-11-26") in weekdays and (weekdays.day_of_week < 5).all()
    # A symbol whose first letters spell a country (IN: India, XBOM) is no ISIN: weekdays too.
    symbol = synthetic_history("INSTRUMENT", end=date(2026, 11, 27)).index
    assert list(symbol) == list(pd.bdate_range(end="2026-11-27", periods=len(symbol)))
