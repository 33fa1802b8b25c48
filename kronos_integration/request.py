"""What a caller asks for: `ForecastRequest` and `BacktestRequest`, and the resolved `Sampling` a
backend draws with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from kronos_integration.forecast import DEFAULT_QUANTILES


@dataclass(frozen=True)
class Sampling:
    """How sample paths are drawn: count, temperature, top-k/top-p cuts (0 / 1.0: off) and seed.

    Backends apply what has a meaning for them (`BackendInfo.sampling_options` says which).
    """

    sample_count: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    seed: int = 0


@dataclass(frozen=True)
class ForecastRequest:
    """One forecast: `horizon_days` trading days of `instrument`.

    Attributes:
        instrument: the ISIN or symbol the history belongs to (`instrument_type` says which).
        calendar: a trading calendar name (`XNYS`, `24/5`, `24/7`, `history`), or None to take
            the data folder's, then the ISIN country's default, then one inferred from history.
        horizon_days: trading days to forecast, >= 1.
        candles: inline history (raw, indexed by timestamp, oldest first), or None to look it up.
        sample_count: sample paths; None for the configured default.
        temperature, top_k, top_p: sampling (see `Sampling`).
        seed: same seed, same answer; None draws one (reported in the result).
        quantiles: levels in (0, 1) reported per day, in the caller's spelling.
        lookback: history bars handed to the backend; None for the configured policy.
        include_path: also report every future bar.
        include_history: also report the history bars the backend saw (the lookback window).
        calibrate: rescale the bands by a conformal backtest on the history; None for the
            configured default (`ForecastSettings.calibrate`).
    """

    instrument: str
    horizon_days: int
    instrument_type: Literal["isin", "symbol"] = "isin"
    calendar: str | None = None
    candles: pd.DataFrame | None = None
    sample_count: int | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    seed: int | None = None
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    lookback: int | None = None
    include_path: bool = False
    include_history: bool = False
    calibrate: bool | None = None

    @property
    def isin(self) -> str | None:
        """The instrument when it is an ISIN (its country picks a default calendar)."""
        return self.instrument if self.instrument_type == "isin" else None


@dataclass(frozen=True)
class BacktestRequest:
    """A rolling-origin backtest of the serving backend on one instrument's history.

    Attributes:
        instrument, instrument_type, calendar, candles: as in `ForecastRequest`.
        horizon_days: trading days ahead to score (distinct, ascending).
        origins: forecast origins, evenly spaced over the history.
        window: history bars per forecast; None for the configured lookback.
        samples: sample paths per forecast.
        seed: the first origin's seed (origin k uses seed + k).
    """

    instrument: str
    instrument_type: Literal["isin", "symbol"] = "isin"
    calendar: str | None = None
    candles: pd.DataFrame | None = None
    horizon_days: tuple[int, ...] = (1, 5, 20)
    origins: int = 50
    window: int | None = None
    samples: int = 32
    seed: int = 0

    @property
    def isin(self) -> str | None:
        """The instrument when it is an ISIN (its country picks a default calendar)."""
        return self.instrument if self.instrument_type == "isin" else None
