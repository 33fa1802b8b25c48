"""Candles: the one place they are validated, and how they are read from records and files.

Candles are OHLCV(+amount) bars indexed by a strictly increasing `DatetimeIndex` named `timestamp`.
Timestamps with UTC offsets that change within a series (daylight saving time) are put in a time
zone with exactly those offsets, so a session keeps its wall-clock bar times.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_integration.forecast import CANDLE_COLUMNS, PRICE_COLUMNS
from kronos_integration.grid import MIN_BAR_INTERVAL, intraday_step

MIN_HISTORY_BARS = 32
"""Fewest bars a forecast is calibrated on (Kronos and the simulator alike)."""

MAX_CANDLE_VALUE = 1e15
"""Largest price, volume or amount accepted: beyond it float32 statistics of a series overflow."""

OHLC_TOLERANCE = 1e-6
"""Relative slack for open and close outside [low, high]: float32 rounding of a consistent bar, not
a tick (prices written as float32 differ by up to 6e-8 of their value)."""

TIMESTAMP_COLUMNS: tuple[str, ...] = ("timestamp", "timestamps")


def validate_candles(frame: pd.DataFrame, *, min_bars: int = MIN_HISTORY_BARS) -> pd.DataFrame:
    """Check candles and return them as float64 `CANDLE_COLUMNS` (missing volume/amount filled).

    `frame` must be indexed by timestamps. Raises ValueError naming the first problem found:
    missing columns, NaN or infinite values, values above `MAX_CANDLE_VALUE`, prices not above
    zero, negative volume or amount, high below low, open or close outside [low, high] (beyond
    `OHLC_TOLERANCE`), unsorted or duplicate timestamps, bars
    closer than `MIN_BAR_INTERVAL` (the median step within a day), or fewer than `min_bars` bars.
    """
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"candles: missing column(s) {', '.join(missing)}")
    given = [c for c in CANDLE_COLUMNS if c in frame.columns]
    out = frame.reindex(columns=list(CANDLE_COLUMNS)).astype("float64")
    # Check what the client sent before deriving anything from it.
    given_values = out[given].to_numpy()
    bad_rows, bad_cols = np.nonzero(~np.isfinite(given_values))
    if bad_rows.size:
        raise ValueError(f"candles[{bad_rows[0]}].{given[bad_cols[0]]}: NaN or infinite value")
    too_large_rows, too_large_cols = np.nonzero(np.abs(given_values) > MAX_CANDLE_VALUE)
    if too_large_rows.size:
        column = given[too_large_cols[0]]
        raise ValueError(f"candles[{too_large_rows[0]}].{column}: above {MAX_CANDLE_VALUE:g}")
    if "volume" not in frame.columns:
        out["volume"] = 0.0
    if "amount" not in frame.columns:
        out["amount"] = out["volume"] * out[list(PRICE_COLUMNS)].mean(axis=1)
    values = out.to_numpy()
    price_count = len(PRICE_COLUMNS)
    bad_rows, bad_cols = np.nonzero(values[:, :price_count] <= 0)
    if bad_rows.size:
        raise ValueError(
            f"candles[{bad_rows[0]}].{CANDLE_COLUMNS[bad_cols[0]]}: prices must be positive"
        )
    bad_rows, bad_cols = np.nonzero(values[:, price_count:] < 0)
    if bad_rows.size:
        column = CANDLE_COLUMNS[price_count + bad_cols[0]]
        raise ValueError(f"candles[{bad_rows[0]}].{column}: negative value")
    high, low = out["high"].to_numpy(), out["low"].to_numpy()
    inverted = np.flatnonzero(high < low)
    if inverted.size:
        raise ValueError(f"candles[{inverted[0]}]: high is below low")
    ends = out[["open", "close"]].to_numpy()
    outside_rows, outside_cols = np.nonzero(
        (ends > high[:, None] * (1 + OHLC_TOLERANCE)) | (ends < low[:, None] * (1 - OHLC_TOLERANCE))
    )
    if outside_rows.size:
        row, column = outside_rows[0], ("open", "close")[outside_cols[0]]
        value = ends[row, outside_cols[0]]
        # repr: the shortest digits that tell the two apart (rejected by a relative 1e-6)
        value, bound = float(value), float(high[row] if value > high[row] else low[row])
        side = f"above high {bound!r}" if value > bound else f"below low {bound!r}"
        raise ValueError(f"candles[{row}].{column}: {value!r} is {side}")
    index = pd.DatetimeIndex(out.index)
    if index.hasnans:
        raise ValueError("candles: a timestamp is missing")
    steps = np.diff(index.asi8)
    if (steps == 0).any():
        raise ValueError(f"candles[{int(np.flatnonzero(steps == 0)[0]) + 1}]: duplicate timestamp")
    if (steps < 0).any():
        position = int(np.flatnonzero(steps < 0)[0]) + 1
        raise ValueError(f"candles[{position}]: timestamps are not in increasing order")
    step = intraday_step(index)
    if step is not None and step < MIN_BAR_INTERVAL:
        raise ValueError(
            f"candles: bars are {step.total_seconds():g} s apart; the shortest bar interval "
            f"supported is {MIN_BAR_INTERVAL.total_seconds():g} s"
        )
    if len(out) < min_bars:
        raise ValueError(f"candles: too little history, {len(out)} bars given, {min_bars} needed")
    out.index = index.rename("timestamp")
    return out


def candles_from_records(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Candles given inline as `[{timestamp, open, high, low, close, volume?, amount?}, ...]`."""
    frame = pd.DataFrame.from_records(list(records))
    if "timestamp" not in frame.columns:
        raise ValueError("candles: every candle needs a timestamp")
    timestamps = _parse_timestamps(frame.pop("timestamp"))
    frame.index = timestamps
    return frame


def read_candles_file(path: Path) -> pd.DataFrame:
    """Candles from a CSV or Parquet file with a `timestamp` (or `timestamps`) column."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    column = next((c for c in TIMESTAMP_COLUMNS if c in frame.columns), None)
    if column is None:
        raise ValueError(f"{path.name}: needs a 'timestamp' column")
    frame.index = _parse_timestamps(frame.pop(column))
    return frame


def _parse_timestamps(values: pd.Series) -> pd.DatetimeIndex:
    """Timestamps as one index. UTC offsets that change within the series (daylight saving time)
    put the index in a time zone that has exactly those offsets, so the session keeps its wall-clock
    times (UTC when no zone fits); naive and zone-aware timestamps mixed together are refused."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(values), name="timestamp")
    except (ValueError, TypeError):
        pass
    try:
        stamps = [pd.Timestamp(value) for value in values]
    except (ValueError, TypeError) as error:
        raise ValueError(f"candles: a timestamp could not be parsed ({error})") from None
    if len({stamp.tzinfo is None for stamp in stamps}) > 1:
        raise ValueError("candles: timestamps mix UTC offsets with times that have none")
    utc = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True), name="timestamp")
    offsets = pd.TimedeltaIndex([stamp.utcoffset() for stamp in stamps])
    zone = _zone_with_offsets(utc, offsets)
    return utc if zone is None else utc.tz_convert(zone)


def _zone_with_offsets(utc: pd.DatetimeIndex, offsets: pd.TimedeltaIndex) -> str | None:
    """The first IANA time zone (by name) whose UTC offset at each instant of `utc` is the one in
    `offsets`, or None. Zones are screened on the bars around each change of offset, then
    checked on every bar."""
    changes = np.flatnonzero(offsets[1:] != offsets[:-1]) + 1
    probes = sorted({0, *changes.tolist(), *(changes - 1).tolist()})
    expected = [(utc[i].to_pydatetime(), offsets[i]) for i in probes]
    for name in sorted(zoneinfo.available_timezones()):
        zone = zoneinfo.ZoneInfo(name)
        if any(instant.astimezone(zone).utcoffset() != offset for instant, offset in expected):
            continue
        local = utc.tz_convert(name)
        if (local.tz_localize(None) - utc.tz_localize(None) == offsets).all():
            return name
    return None
