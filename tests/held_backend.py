"""The real simulator as a backend whose forecasts the test holds until it lets them go, so a
test decides how many run at once instead of timing luck."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from kronos_integration.backends.base import ForecastTask
from kronos_integration.backends.simulated import SimulatedBackend


class HeldBackend:
    """`SimulatedBackend` whose `forecast` waits for `go` (set: it runs at once).

    `started` is released once per call that began (before it waits); `calls` lists each call's
    first task's seed in the order the calls began.
    """

    def __init__(self, max_context: int = 512) -> None:
        self.inner = SimulatedBackend(max_context)
        self.info = self.inner.info
        self.go = threading.Event()
        self.go.set()
        self.started = threading.Semaphore(0)
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def hold(self) -> None:
        """Forecasts from now on wait for `go`; the calls so far (a warm-up) are forgotten."""
        with self._lock:
            self.calls.clear()
            self.started = threading.Semaphore(0)
        self.go.clear()

    def wait_started(self, timeout_s: float = 5.0) -> None:
        assert self.started.acquire(timeout=timeout_s), "no forecast began"

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        with self._lock:
            self.calls.append(tasks[0].sampling.seed)
        self.started.release()
        assert self.go.wait(timeout=10), "the test never let the forecast go"
        return self.inner.forecast(tasks)
