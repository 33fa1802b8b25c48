"""A ``Forecaster`` wrapper that runs each forecast within the request's time budget and counts it.

``ForecastService`` wraps its forecaster once it has loaded and warmed up, so every request's
forecast goes through :func:`app.time_budget.run_within_budget` and, when it finishes (on time or
not), lands in the inference metrics: wall time by mode, sample paths, and bars generated.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, has_app_context

from app.metrics import EXTENSION_KEY as METRICS_KEY
from app.time_budget import request_deadline, run_within_budget
from kronos_integration.forecast import Forecast, Forecaster


class GuardedForecaster:
    """Satisfies ``Forecaster``; delegates to ``inner``, which serves as ``mode``."""

    def __init__(self, inner: Forecaster, mode: str) -> None:
        self.inner = inner
        self.mode = mode

    def forecast(self, *args: Any, **kwargs: Any) -> Forecast:
        """``inner.forecast(*args, **kwargs)``; raises ``BudgetExceeded`` (504) if time runs out.

        The request's deadline is handed to the forecaster, so work the client will never see
        stops at the deadline instead of holding its in-flight slot to the end.
        """
        kwargs.setdefault("deadline", request_deadline())

        def timed() -> Forecast:
            started = time.perf_counter()
            result = self.inner.forecast(*args, **kwargs)
            self._observe(time.perf_counter() - started, result)
            return result

        return run_within_budget(timed)

    def _observe(self, seconds: float, result: Forecast) -> None:
        if not has_app_context() or METRICS_KEY not in current_app.extensions:
            return
        samples, bars, _ = result.paths.shape  # (S, L, 6)
        current_app.extensions[METRICS_KEY].observe_forecast(self.mode, seconds, samples, bars)
