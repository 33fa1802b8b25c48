"""The one forecasting pipeline the service, the command line and the backtest share.

`run_forecast(backend, history, request, settings)`: resolve the trading calendar (the request's,
the data folder's, the ISIN country's default, or one inferred from the history), lay out the
future bars of `horizon_days` sessions, check them against the limits, choose the lookback window
and the seed, ask the backend for sample paths, calibrate their bands when asked (a conformal
backtest on the history's last origins, `conformal.py`), and summarise them per day (price,
quantiles, P(up), confidence) and, if asked, per bar. It raises only `kronos_integration.errors`
classes.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kronos_integration.backends.base import Backend, BackendInfo, ForecastTask
from kronos_integration.calendars import (
    ExchangeTradingCalendar,
    ResolvedCalendar,
    TradingCalendar,
    future_grid,
    resolve_calendar,
)
from kronos_integration.candles import MIN_HISTORY_BARS, validate_candles
from kronos_integration.config import ForecastSettings
from kronos_integration.conformal import (
    MIN_WINDOW,
    ConformalFit,
    apply_conformal,
    fit_conformal,
    not_requested,
)
from kronos_integration.errors import DeadlineExceededError, InvalidRequestError
from kronos_integration.evaluation.forecasters import from_backend
from kronos_integration.forecast import Forecast, check_quantile_levels
from kronos_integration.grid import FutureGrid, TooManyBarsError
from kronos_integration.history import History, synthetic_history
from kronos_integration.request import ForecastRequest, Sampling
from kronos_integration.summary import bar_path, daily_predictions, history_bars

MAX_SEED = 2**31
WARM_UP_INSTRUMENT = "XS0000000009"


@dataclass(frozen=True)
class ForecastResult:
    """A finished forecast: what was asked, what answered, the sample paths and their summaries.

    Attributes:
        forecast: the sample paths (sample_count, pred_len, 6) with timestamps and levels.
        grid: the future bars and each horizon day's last bar.
        days: one summary per horizon day (see `summary.daily_predictions`).
        lookback: history bars the backend saw.
        sampling: how the paths were drawn (the seed is the one used).
        calendar: the trading calendar's name and where it came from (`request`, `data_dir`,
            `isin`, `history`).
        calibration: whether and how the bands were calibrated (`conformal.ConformalFit.metadata`
            or `conformal.not_requested()`, plus `elapsed_ms`).
        warnings: what the answer was given that looks wrong but was forecast anyway (sentences;
            `history_warnings`).
        elapsed_s, backend_s: seconds for the whole pipeline, and in the backend.
    """

    request: ForecastRequest
    backend: BackendInfo
    history: History
    forecast: Forecast
    grid: FutureGrid
    days: list[dict[str, Any]]
    current_price: float
    lookback: int
    sampling: Sampling
    calendar: dict[str, str]
    calibration: dict[str, Any]
    warnings: list[str]
    fallback_reason: str | None
    elapsed_s: float
    backend_s: float

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready data: the /predict response, less the worker's own fields."""
        info, sampling = self.backend, self.sampling
        options = info.sampling_options
        model = info.artifacts.get("model")
        tokenizer = info.artifacts.get("tokenizer")
        document: dict[str, Any] = {
            self.request.instrument_type: self.request.instrument,
            "model": info.name,
            "model_version": info.version,
            "prediction_horizon_days": self.request.horizon_days,
            "current_price": self.current_price,
            "predictions": self.days,
        }
        if self.request.include_path:
            document["path"] = bar_path(self.forecast)
        if self.request.include_history:
            document["history"] = history_bars(self.history.candles.iloc[-self.lookback :])
        document["metadata"] = {
            "device": info.device,
            "dtype": info.dtype,
            "max_context": info.max_context,
            "lookback_periods": self.lookback,
            "prediction_periods": len(self.grid.timestamps),
            "history_periods": len(self.history.candles),
            "history_source": self.history.source,
            "bar_interval": str(pd.Timedelta(self.grid.bar_interval).isoformat()),
            "calendar": self.calendar,
            "calibration": self.calibration,
            "warnings": self.warnings,
            "sample_count": sampling.sample_count,
            "seed": sampling.seed,
            "temperature": sampling.temperature,
            # Options a backend does not apply are reported as null, never as applied.
            "top_p": sampling.top_p if "top_p" in options else None,
            "top_k": sampling.top_k if "top_k" in options else None,
            "quantiles": list(self.forecast.quantile_levels),
            "model_revision": model.sha if model else None,
            "tokenizer": vars(tokenizer) if tokenizer else None,
            "fallback_reason": self.fallback_reason,
            "elapsed_ms": round(self.elapsed_s * 1000, 2),
        }
        return document


def run_forecast(
    backend: Backend,
    history: History,
    request: ForecastRequest,
    settings: ForecastSettings,
    *,
    deadline: float | None = None,
    fallback_reason: str | None = None,
) -> ForecastResult:
    """Forecast `request` from `history` with `backend` (see module docstring).

    `deadline` is a `time.monotonic()` instant handed to the backend; `fallback_reason` is carried
    into the result when `auto` mode had to fall back. Raises InvalidRequestError (a horizon too
    long for the limits, a lookback the window cannot hold, a grid past the year 9999, a
    non-finite forecast) and DeadlineExceededError.
    """
    started = time.perf_counter()
    info = backend.info
    calendar = trading_calendar(history, request.calendar, request.isin)
    grid = _future_grid(
        history, request.horizon_days, calendar.calendar, _bar_limit(info, settings)
    )
    pred_len = len(grid.timestamps)
    lookback = _lookback(request.lookback, pred_len, len(history.candles), info, settings)
    sampling = Sampling(
        sample_count=request.sample_count or settings.default_sample_count,
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p,
        seed=secrets.randbelow(MAX_SEED) if request.seed is None else request.seed,
    )
    task = ForecastTask(history.candles.iloc[-lookback:], grid.timestamps, sampling, deadline)
    backend_started = time.perf_counter()
    calibration: dict[str, Any] = {**not_requested(), "elapsed_ms": 0.0}
    try:
        (paths,) = backend.forecast([task])
        backend_s = time.perf_counter() - backend_started
        if settings.calibrate if request.calibrate is None else request.calibrate:
            fit = _fit_calibration(backend, history, task, settings)
            paths = apply_conformal(paths, fit)
            calibration_s = time.perf_counter() - backend_started - backend_s
            calibration = {**fit.metadata(), "elapsed_ms": round(calibration_s * 1000, 2)}
    except TimeoutError as error:
        raise DeadlineExceededError(str(error)) from error
    if not np.isfinite(paths).all():
        raise InvalidRequestError(
            "candles", "the forecast for this history is not finite (values too large or small)"
        )
    levels = check_quantile_levels(request.quantiles)
    forecast = Forecast(grid.timestamps, paths, levels, sampling.seed)
    closes = history.candles["close"].to_numpy()
    return ForecastResult(
        request=request,
        backend=info,
        history=history,
        forecast=forecast,
        grid=grid,
        days=daily_predictions(forecast, grid, closes[-lookback:]),
        current_price=float(closes[-1]),
        lookback=lookback,
        sampling=sampling,
        calendar={"name": calendar.calendar.name, "source": calendar.source},
        calibration=calibration,
        warnings=[
            *history_warnings(pd.DatetimeIndex(task.candles.index), calendar.calendar),
            *future_warnings(grid.timestamps, calendar.calendar),
        ],
        fallback_reason=fallback_reason,
        elapsed_s=time.perf_counter() - started,
        backend_s=backend_s,
    )


def _fit_calibration(
    backend: Backend, history: History, task: ForecastTask, settings: ForecastSettings
) -> ConformalFit:
    """Conformal band factors for `task` from `settings.calibration_origins` inner origins of
    the history, each forecast from as many bars as `task` and with its sampling (one batched
    backend call, split only past `evaluation.forecasters.MAX_ROWS` sample paths)."""
    sampling, lookback = task.sampling, len(task.candles)
    forecaster = from_backend(
        backend,
        sampling.sample_count,
        temperature=sampling.temperature,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        deadline=task.deadline,
    )
    return fit_conformal(
        history.candles,
        forecaster,
        len(task.future),
        origins=settings.calibration_origins,
        min_window=min(MIN_WINDOW, lookback),
        seed=(sampling.seed + 1) % MAX_SEED,
        window=lookback,
    )


def warm_up(backend: Backend) -> ForecastResult:
    """One small forecast, so the first real request does not pay for lazy initialisation."""
    candles = synthetic_history(WARM_UP_INSTRUMENT, end=dt.date(2024, 1, 5), bars=64)
    history = History(validate_candles(candles), "synthetic")
    request = ForecastRequest(WARM_UP_INSTRUMENT, horizon_days=2, sample_count=1, seed=0)
    return run_forecast(backend, history, request, ForecastSettings())


def history_warnings(timestamps: pd.DatetimeIndex, calendar: TradingCalendar) -> list[str]:
    """What looks wrong in the bars the model saw (`timestamps`) for `calendar`: bars outside
    its sessions (on holidays, weekends or in closed hours), which the model reads as trading."""
    outside = calendar.outside_sessions(timestamps)
    if not outside:
        return []
    return [
        f"{outside} of the {len(timestamps)} history bars the model saw fall outside the "
        f"sessions of the calendar {calendar.name} (holidays, weekends or closed hours): check "
        "the timestamps and the calendar"
    ]


def future_warnings(future: pd.DatetimeIndex, calendar: TradingCalendar) -> list[str]:
    """What the forecast's dates cannot know: sessions past the last date the calendar's
    holidays are recorded for (exchange_calendars stops some exchanges at a year's end), laid
    out on every weekday there."""
    if not isinstance(calendar, ExchangeTradingCalendar):
        return []
    recorded_until = calendar.holidays_recorded_until
    last = pd.Timestamp(future[-1]).tz_localize(None).normalize()
    if recorded_until is None or last <= recorded_until:
        return []
    return [
        f"the holidays of {calendar.name} are recorded through {recorded_until.date()}: the "
        "forecast's later dates assume every weekday trades"
    ]


def trading_calendar(history: History, name: str | None, isin: str | None) -> ResolvedCalendar:
    """A forecast's trading calendar: `name` (the request's), else the one stored with the history
    (the data folder's), else the ISIN's country's, else one inferred from the bars; its source
    is `request`, `data_dir`, `isin` or `history`. InvalidRequestError for an unknown name."""
    stored = name or history.calendar
    try:
        resolved = resolve_calendar(stored, isin=isin, timestamps=history.timestamps)
    except ValueError as error:
        raise InvalidRequestError("calendar", str(error)) from None
    if stored is None:
        return resolved
    return ResolvedCalendar(resolved.calendar, "request" if name else "data_dir")


def _future_grid(
    history: History,
    horizon_days: int,
    calendar: TradingCalendar,
    limit: tuple[int, str],
) -> FutureGrid:
    """The grid, refused (field `horizon_days`) past `limit` bars before it is laid out."""
    max_bars, variable = limit
    try:
        return future_grid(history.timestamps, horizon_days, calendar, max_bars=max_bars)
    except TooManyBarsError as error:
        raise InvalidRequestError(
            "horizon_days",
            f"{horizon_days} trading days of these bars is {error.bars} bars; at most {max_bars} "
            f"are allowed ({variable}={max_bars})",
        ) from None
    except ValueError as error:
        raise InvalidRequestError("candles", str(error)) from None


def _bar_limit(info: BackendInfo, settings: ForecastSettings) -> tuple[int, str]:
    """The most future bars allowed and the variable that sets it: `KRONOS_MAX_PREDICTION_BARS`,
    or the backend's own limit (Kronos cannot generate more bars than its context window holds)."""
    limit, variable = settings.max_prediction_bars, "KRONOS_MAX_PREDICTION_BARS"
    if info.max_bars is not None and info.max_bars < limit:
        limit, variable = info.max_bars, "KRONOS_MAX_CONTEXT"
    return limit, variable


def _lookback(
    requested: int | None,
    pred_len: int,
    available: int,
    info: BackendInfo,
    settings: ForecastSettings,
) -> int:
    """Requested bars, else the configured lookback kept within max_context - pred_len when the
    horizon leaves room for MIN_HISTORY_BARS; never more than the history has.

    A requested lookback above the context window is refused: the model sees at most
    `max_context` bars, and a longer history only multiplies the work of every sliding bar.
    """
    if requested is not None:
        if requested > info.max_context:
            raise InvalidRequestError(
                "lookback",
                f"must be at most {info.max_context} bars, the context window "
                f"(KRONOS_MAX_CONTEXT={info.max_context})",
            )
        return min(requested, available)
    lookback = settings.lookback
    room = info.max_context - pred_len
    if room >= MIN_HISTORY_BARS:
        lookback = min(lookback, room)
    return min(lookback, available)
