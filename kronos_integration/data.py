"""Candle history for a forecast: validation, where it comes from, and the future bar grid.

History comes, in this order, from the request's inline candles, from `<data_dir>/<ISIN>.csv` or
`.parquet`, or (only when allowed) from a synthetic series that is deterministic per ISIN.
`horizon_days` counts trading days: the future timestamps repeat the bar grid observed in the
history on the following trading days, and each horizon day is reported as that day's last bar.
"""

from __future__ import annotations

import hashlib
import logging
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from kronos_integration.forecast import CANDLE_COLUMNS, PRICE_COLUMNS

logger = logging.getLogger(__name__)

MIN_HISTORY_BARS = 32
"""Fewest bars a forecast is calibrated on (Kronos and the simulator alike)."""

MAX_CANDLE_VALUE = 1e15
"""Largest price, volume or amount accepted: beyond it float32 statistics of a series overflow."""

SYNTHETIC_BARS = 512
SYNTHETIC_LAST_CLOSE = 100.0
TIMESTAMP_COLUMNS: tuple[str, ...] = ("timestamp", "timestamps")

HistorySource = Literal["request", "data_dir", "synthetic"]


class HistoryNotFoundError(LookupError):
    """No history for an ISIN from any allowed source; the message says how to supply it."""


@dataclass(frozen=True)
class History:
    """Validated candles: `candles` has float64 `CANDLE_COLUMNS` and a tz-naive or tz-aware
    `DatetimeIndex` named `timestamp`, strictly increasing."""

    candles: pd.DataFrame
    source: HistorySource

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.candles.index)


@dataclass(frozen=True)
class FutureGrid:
    """Future bar timestamps for a horizon of trading days.

    Attributes:
        timestamps: every future bar, in order (what the forecaster generates).
        day_end_positions: per horizon day, the position in `timestamps` of its last bar.
    """

    timestamps: pd.DatetimeIndex
    day_end_positions: tuple[int, ...]

    @property
    def days(self) -> list[date]:
        return [self.timestamps[i].date() for i in self.day_end_positions]


def validate_candles(frame: pd.DataFrame, *, min_bars: int = MIN_HISTORY_BARS) -> pd.DataFrame:
    """Check candles and return them as float64 `CANDLE_COLUMNS` (missing volume/amount filled).

    `frame` must be indexed by timestamps. Raises ValueError naming the first problem found:
    missing columns, NaN or infinite values, values above `MAX_CANDLE_VALUE`, prices not above
    zero, negative volume or amount, high below low, unsorted or duplicate timestamps, or fewer
    than `min_bars` bars.
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
    inverted = np.flatnonzero(out["high"].to_numpy() < out["low"].to_numpy())
    if inverted.size:
        raise ValueError(f"candles[{inverted[0]}]: high is below low")
    index = pd.DatetimeIndex(out.index)
    if index.hasnans:
        raise ValueError("candles: a timestamp is missing")
    steps = np.diff(index.asi8)
    if (steps == 0).any():
        raise ValueError(f"candles[{int(np.flatnonzero(steps == 0)[0]) + 1}]: duplicate timestamp")
    if (steps < 0).any():
        position = int(np.flatnonzero(steps < 0)[0]) + 1
        raise ValueError(f"candles[{position}]: timestamps are not in increasing order")
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


def read_history_file(path: Path) -> pd.DataFrame:
    """Candles from a CSV or Parquet file with a `timestamp` (or `timestamps`) column."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    column = next((c for c in TIMESTAMP_COLUMNS if c in frame.columns), None)
    if column is None:
        raise ValueError(f"{path.name}: needs a 'timestamp' column")
    frame.index = _parse_timestamps(frame.pop(column))
    return frame


def synthetic_history(isin: str, *, end: date, bars: int = SYNTHETIC_BARS) -> pd.DataFrame:
    """Daily candles that are the same for the same ISIN: a geometric random walk with 1.5 %
    daily volatility, seeded by the ISIN, ending at `end` with a close of 100.0."""
    seed = int.from_bytes(hashlib.sha256(isin.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    log_returns = rng.normal(0.0003, 0.015, bars)
    close = SYNTHETIC_LAST_CLOSE * np.exp(np.cumsum(log_returns) - log_returns.sum())
    close[-1] = SYNTHETIC_LAST_CLOSE  # exactly, not up to float rounding
    previous_close = np.concatenate([[close[0] / np.exp(log_returns[0])], close[:-1]])
    open_ = previous_close * np.exp(rng.normal(0.0, 0.004, bars))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.006, bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.006, bars)))
    volume = np.round(rng.lognormal(13.0, 0.35, bars))
    amount = volume * (open_ + high + low + close) / 4
    index = pd.bdate_range(end=pd.Timestamp(end), periods=bars, name="timestamp")
    columns = {"open": open_, "high": high, "low": low, "close": close}
    return pd.DataFrame({**columns, "volume": volume, "amount": amount}, index=index)


def resolve_history(
    isin: str,
    candles: Sequence[Mapping[str, Any]] | None,
    *,
    data_dir: Path | None,
    allow_synthetic: bool,
    today: date | None = None,
) -> History:
    """The history for one forecast, from the first source that has it (see module docstring).

    Raises ValueError for candles that fail `validate_candles`, HistoryNotFoundError when no
    allowed source has the ISIN.
    """
    if candles is not None:
        return History(validate_candles(candles_from_records(candles)), "request")
    if data_dir is not None:
        for suffix in (".csv", ".parquet"):
            path = data_dir / f"{isin}{suffix}"
            if path.is_file():
                try:
                    return History(validate_candles(read_history_file(path)), "data_dir")
                except ValueError as error:
                    message = str(error).removeprefix(f"{path.name}: ")
                    raise ValueError(f"KRONOS_DATA_DIR/{path.name}: {message}") from None
    if allow_synthetic:
        last_day = (pd.Timestamp(today or date.today()) - pd.offsets.BDay(1)).date()
        return History(validate_candles(synthetic_history(isin, end=last_day)), "synthetic")
    where = (
        f"a file {isin}.csv or {isin}.parquet in KRONOS_DATA_DIR"
        if data_dir
        else ("KRONOS_DATA_DIR with a file per ISIN")
    )
    raise HistoryNotFoundError(
        f"no price history for {isin}: send it as 'candles' in the request, or provide {where}"
    )


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

    Daily bars: one bar per following trading day at the last bar's time of day. Intraday bars:
    the rest of the last bar's session, then whole sessions whose bar times are the times of day
    seen in the history (on at least two days). Trading days are Monday–Friday, and Saturday or
    Sunday when the history trades on them regularly (see `_trading_weekdays`).
    """
    if horizon_days < 1:
        raise ValueError("horizon_days must be at least 1")
    index = pd.DatetimeIndex(timestamps)
    last = index[-1]
    days = _following_days(last.normalize(), horizon_days, _trading_weekdays(index))
    if infer_bar_interval(index) >= pd.Timedelta(days=1):
        offset = last - last.normalize()
        stamps = [day + offset for day in days]
        return FutureGrid(pd.DatetimeIndex(stamps, name="timestamp"), tuple(range(horizon_days)))
    session = _session_times(index)
    stamps = [last.normalize() + t for t in session if t > last - last.normalize()]
    day_ends = []
    for day in days:
        stamps.extend(day + t for t in session)
        day_ends.append(len(stamps) - 1)
    return FutureGrid(pd.DatetimeIndex(stamps, name="timestamp"), tuple(day_ends))


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
