"""Real OHLCV series for calibration work: vendored training series and held-out ones.

Training (in the repository, `tests/data/`, see its README): IBM and MSFT daily.
Held out (read from installed packages' data files, never copied into the repository):
S&P 500 and NASDAQ Composite daily (`arch`), AAPL and GOOG daily (`bokeh-sampledata`),
and hourly EUR/USD (`backtesting`). Package files are located without importing the packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_integration.candles import read_candles_file, validate_candles

VENDORED_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"
TRAINING = ("IBM", "MSFT")
HELD_OUT_DAILY = ("SP500", "NASDAQ", "AAPL", "GOOG")


class SeriesUnavailableError(LookupError):
    """A held-out series' package is not installed (pip install -r requirements-dev.txt)."""


def vendored(name: str) -> pd.DataFrame:
    """A training series from `tests/data/<name>.csv` as validated candles."""
    return validate_candles(read_candles_file(VENDORED_DIR / f"{name}.csv"))


def held_out(name: str) -> pd.DataFrame:
    """A held-out daily series (`HELD_OUT_DAILY`) as validated candles."""
    if name in ("SP500", "NASDAQ"):
        lower = name.lower()
        frame = pd.read_csv(_package_file("arch", f"data/{lower}/{lower}.csv.gz"))
        frame.index = pd.to_datetime(frame.pop("Date"), format="%m/%d/%Y")
        return _candles(frame)
    if name in ("AAPL", "GOOG"):
        stocks = pd.read_csv(_package_file("bokeh_sampledata", "_data/stocks.csv.gz"))
        frame = stocks[stocks["Ticker"] == name].drop(columns="Ticker")
        frame.index = pd.to_datetime(frame.pop("Date"))
        return _candles(frame.sort_index())
    raise KeyError(f"unknown held-out series {name!r}; one of {', '.join(HELD_OUT_DAILY)}")


def eurusd_hourly() -> pd.DataFrame:
    """Hourly EUR/USD, 2017-04-19 … 2018-02-07, timestamps tz-naive UTC (bar start)."""
    frame = pd.read_csv(_package_file("backtesting", "test/EURUSD.csv"), index_col=0)
    frame.index = pd.to_datetime(frame.index)
    return _candles(frame)


def _candles(frame: pd.DataFrame) -> pd.DataFrame:
    """Source columns (Open, High, Low, Close[, Adj Close], Volume) as adjusted candles."""
    factor = frame["Adj Close"] / frame["Close"] if "Adj Close" in frame else 1.0
    prices = frame[["Open", "High", "Low", "Close"]].mul(factor, axis=0)
    prices.columns = ["open", "high", "low", "close"]
    prices["volume"] = np.round(frame["Volume"] / factor)
    prices.index.name = "timestamp"
    return validate_candles(prices)


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SeriesUnavailableError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / relative
