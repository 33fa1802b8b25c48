"""Admission to the device: at most `capacity` forecast calls of a backend run at once.

A `ForecastGate` is a `Backend` around another one. Each `forecast` call takes one of its slots for
the duration of the inner call; a call that finds every slot taken waits in first-come order, at
most `queue_timeout_s` and never past its tasks' earliest deadline. A call that runs out of queue
time raises `BackendBusyError` (nothing ran; retry shortly), one that reaches its deadline while
waiting raises `DeadlineExceededError`. On a CPU one forecast already keeps `torch_threads` cores
busy, so forecasts beyond cores / torch threads only share the cores and all finish later; the
gate lets the excess wait instead, and refuse the rest before any work is done.

One call takes one slot, whatever it holds: several tasks (a backtest's windows), or, through a
`BatchingGate` (what `gated` gives for a `BatchingBackend`), one shared decode of the
`kronos_integration.batching.Batcher` in front of it. `info` is the inner backend's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from kronos_integration.backends.base import Backend, BatchingBackend, ForecastTask, TaskOutcome
from kronos_integration.errors import BackendBusyError, DeadlineExceededError


class ForecastGate:
    """`inner` behind `capacity` slots and a first-come queue (module docstring)."""

    def __init__(
        self,
        inner: Backend,
        capacity: int,
        queue_timeout_s: float,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if queue_timeout_s < 0:
            raise ValueError(f"queue_timeout_s must be >= 0, got {queue_timeout_s}")
        self.inner = inner
        self.info = inner.info
        self.capacity = capacity
        self.queue_timeout_s = queue_timeout_s
        self._lock = threading.Lock()
        self._free = capacity
        self._waiting: deque[threading.Event] = deque()  # granted a slot when set

    @property
    def running(self) -> int:
        """Calls holding a slot now."""
        with self._lock:
            return self.capacity - self._free

    @property
    def queued(self) -> int:
        """Calls waiting for a slot now."""
        with self._lock:
            return len(self._waiting)

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        """`Backend.forecast` of the inner backend, once a slot is free (module docstring)."""
        deadlines = [task.deadline for task in tasks if task.deadline is not None]
        with self.slot(min(deadlines) if deadlines else None):
            return self.inner.forecast(tasks)

    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[None]:
        """Hold one slot for the block, waiting for it at most `queue_timeout_s` and never past
        `deadline` (a `time.monotonic()` instant); `BackendBusyError` or `DeadlineExceededError`
        when it does not come."""
        self._acquire(deadline)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, deadline: float | None) -> None:
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            raise DeadlineExceededError("the deadline passed before the forecast could start")
        with self._lock:
            if self._free > 0 and not self._waiting:
                self._free -= 1
                return
            granted = threading.Event()
            self._waiting.append(granted)
        give_up = now + self.queue_timeout_s
        wait_until = give_up if deadline is None else min(deadline, give_up)
        if granted.wait(wait_until - now):
            return
        with self._lock:
            if granted.is_set():  # handed a slot just as the wait ended: keep it
                return
            self._waiting.remove(granted)
        if wait_until < give_up:
            raise DeadlineExceededError(
                f"the deadline passed while waiting for one of {self.capacity} forecast slots"
            )
        raise BackendBusyError(
            f"All {self.capacity} forecast slots of this worker stayed busy for "
            f"{self.queue_timeout_s:g} s; retry shortly."
        )

    def _release(self) -> None:
        """Hand the slot to the longest waiting call, or free it."""
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1


class BatchingGate(ForecastGate):
    """A `ForecastGate` around a `BatchingBackend`, itself one: one `forecast_each` (a shared
    decode) takes one slot."""

    def __init__(self, inner: BatchingBackend, capacity: int, queue_timeout_s: float) -> None:
        super().__init__(inner, capacity, queue_timeout_s)
        self.batching = inner

    def batch_key(self, task: ForecastTask) -> Hashable:
        return self.batching.batch_key(task)

    def forecast_each(
        self, tasks: Sequence[ForecastTask], done: Callable[[int, TaskOutcome], None]
    ) -> None:
        """`BatchingBackend.forecast_each` once a slot is free. The decode waits as long as its
        latest task could use it (each task's own deadline still holds inside the decode); a wait
        that ends in vain settles every task with its own `BackendBusyError` or
        `DeadlineExceededError`."""
        deadlines = [task.deadline for task in tasks]
        latest = None if None in deadlines else max(d for d in deadlines if d is not None)
        try:
            self._acquire(latest)
        except (BackendBusyError, DeadlineExceededError) as error:
            for index in range(len(tasks)):
                done(index, type(error)(str(error)))
            return
        try:
            self.batching.forecast_each(tasks, done)
        finally:
            self._release()


def gated(backend: Backend, capacity: int, queue_timeout_s: float) -> ForecastGate:
    """`backend` behind a gate of `capacity` slots: a `BatchingGate` when it batches."""
    if isinstance(backend, BatchingBackend):
        return BatchingGate(backend, capacity, queue_timeout_s)
    return ForecastGate(backend, capacity, queue_timeout_s)
