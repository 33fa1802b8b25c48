"""One backend's backtest beside the naive baselines: what `kronos backtest` and `POST /backtest`
run.

`backtest_backend` scores a pipeline backend (and, with `conformal`, the same backend calibrated
per origin by `conformal.conformal_forecaster`) beside the random walk, the drift and the
Gaussian random walk, all on the same origins, windows and seeds, and returns the JSON-ready
summary with the per-forecast scores behind it. `backtest_request` does it for a
`BacktestRequest` on a resolved history, raising only `kronos_integration.errors` classes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kronos_integration.backends.base import Backend
from kronos_integration.calendars import ResolvedCalendar
from kronos_integration.confidence import band_confidence
from kronos_integration.config import ForecastSettings
from kronos_integration.conformal import DEFAULT_ORIGINS, conformal_forecaster
from kronos_integration.errors import DeadlineExceededError, InvalidRequestError
from kronos_integration.evaluation.backtest import (
    BacktestConfig,
    ConfidenceFn,
    NoOriginError,
    run_backtest,
    score_frame,
    summarize,
)
from kronos_integration.evaluation.forecasters import (
    PathForecaster,
    drift,
    from_backend,
    gaussian_random_walk,
    random_walk,
)
from kronos_integration.history import History
from kronos_integration.pipeline import trading_calendar
from kronos_integration.request import BacktestRequest

BASELINES: tuple[str, ...] = ("random_walk", "drift", "gaussian_random_walk")
CONFORMAL_SUFFIX = "+conformal"


@dataclass(frozen=True)
class BacktestRun:
    """A finished backtest: `summary` (see `summarize`, plus what ran on what) and `frame`, one
    row of scores per model, origin and horizon (see `score_frame`)."""

    summary: dict[str, Any]
    frame: pd.DataFrame


def backtest_backend(
    candles: pd.DataFrame,
    backend: Backend,
    calendar: ResolvedCalendar,
    config: BacktestConfig,
    *,
    samples: int = 64,
    conformal: bool = False,
    conformal_origins: int = DEFAULT_ORIGINS,
    series: str = "",
    progress: Callable[[int, int], object] | None = None,
    deadline: float | None = None,
) -> BacktestRun:
    """Backtest `backend` on validated `candles` with `samples` paths per forecast, future bars
    on `calendar`'s sessions.

        The backend's rows are named after it (`simulated`, `kronos`; `<name>_backend` should that
        be a baseline's name) and carry the service's confidence. Raises ValueError when the series
        is too short for one origin.
    """
    started = time.perf_counter()
    name = (
        backend.info.name if backend.info.name not in BASELINES else f"{backend.info.name}_backend"
    )
    forecaster = from_backend(backend, samples, deadline=deadline)
    models: dict[str, PathForecaster] = {name: forecaster}
    if conformal:
        models[name + CONFORMAL_SUFFIX] = conformal_forecaster(
            forecaster, origins=conformal_origins
        )
    models.update(
        random_walk=random_walk, drift=drift, gaussian_random_walk=gaussian_random_walk(samples)
    )
    result = run_backtest(candles, models, calendar.calendar, config, progress=progress)
    confidence: dict[str, ConfidenceFn] = {
        model: band_confidence for model in models if model not in BASELINES
    }
    frame = score_frame(result, confidence=confidence, series=series, seed=config.seed)
    summary = summarize(frame)
    summary.update(
        backend={"name": backend.info.name, "version": backend.info.version},
        calendar={"name": calendar.calendar.name, "source": calendar.source},
        horizon_days=list(config.horizon_days),
        origins=len(result.origin_times),
        first_origin=result.origin_times[0].isoformat(),
        last_origin=result.origin_times[-1].isoformat(),
        window=config.window,
        samples=samples,
        conformal_origins=conformal_origins if conformal else 0,
        seed=config.seed,
        elapsed_s=round(time.perf_counter() - started, 2),
    )
    return BacktestRun(summary, frame)


def backtest_request(
    backend: Backend,
    history: History,
    request: BacktestRequest,
    settings: ForecastSettings,
    *,
    deadline: float | None = None,
) -> BacktestRun:
    """`backtest_backend` for `request` on its resolved `history`, on the calendar a forecast of
    it would use, with `settings.lookback` bars per forecast unless the request says otherwise.

    Raises InvalidRequestError (an unknown calendar; a history too short for one origin, filed
    under `window`, `candles` or the instrument: `_history_field`) and DeadlineExceededError.
    """
    calendar = trading_calendar(history, request.calendar, request.isin)
    config = BacktestConfig(
        horizon_days=request.horizon_days,
        origins=request.origins,
        window=request.window or settings.lookback,
        seed=request.seed,
    )
    try:
        return backtest_backend(
            history.candles,
            backend,
            calendar,
            config,
            samples=request.samples,
            series=request.instrument,
            deadline=deadline,
        )
    except TimeoutError as error:
        raise DeadlineExceededError(str(error)) from error
    except NoOriginError as error:  # filed under what the client can change
        raise InvalidRequestError(_history_field(request, window_set=True), str(error)) from None
    except ValueError as error:
        raise InvalidRequestError(_history_field(request, window_set=False), str(error)) from None


def _history_field(request: BacktestRequest, *, window_set: bool) -> str:
    """The request field a refused history is filed under: the window the client chose (when
    that is what left no origin), the candles it sent, else the instrument it named."""
    if window_set and request.window is not None:
        return "window"
    return "candles" if request.candles is not None else request.instrument_type
