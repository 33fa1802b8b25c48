"""Cross-request batching: concurrent forecasts of one worker join one decode.

A `Batcher` wraps a `BatchingBackend` and is itself a `Backend`. A one-task `forecast` call (one
request's forecast) joins the open batch of its task's `batch_key`, or opens one; the thread that
opened it (the batch's leader) waits at most `window_s` for others, less once `max_tasks` have
joined, then decodes them all with `forecast_each` in its own thread. Every caller gets its own
outcome as soon as the decode has it: its paths (the same as alone, since each task draws from its
own seed), or its own exception (a bad input, its deadline), which never fails the others.

A worker runs one decode at a time, batches in the order their windows ended: a batch whose window
has passed while another decode runs keeps collecting tasks until its turn, and one window more
(the clients just answered by that decode send their next requests then). Decodes running side by
side would share the same cores (measured: slower than one after the other), and the tasks
arriving meanwhile would start batches of one.

Calls with several tasks (a backtest's or a calibration's windows, already a batch) and every call
while the window is 0 go straight to the backend. `observe(batch_size, waits_s)` is told about
each decode: how many tasks it holds and how long each waited for it to start.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import cast

import numpy as np

from kronos_integration.backends.base import BatchingBackend, ForecastTask, TaskOutcome

logger = logging.getLogger(__name__)

BatchObserver = Callable[[int, Sequence[float]], None]
"""Told each decode's size (tasks) and each task's wait (seconds) before it started."""


@dataclass
class _Entry:
    """One caller's task, and its outcome once `done` is set."""

    task: ForecastTask
    enqueued: float
    done: threading.Event = field(default_factory=threading.Event)
    outcome: TaskOutcome | None = None

    def settle(self, outcome: TaskOutcome) -> None:
        if not self.done.is_set():
            self.outcome = outcome
            self.done.set()


@dataclass
class _Batch:
    """Tasks of one batch key collected for one decode; `full` is set at `max_tasks`."""

    key: Hashable
    entries: list[_Entry] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class Batcher:
    """Joins concurrent one-task forecasts of `backend` into shared decodes (module docstring).

    Thread-safe: one instance serves every request thread of a worker.
    """

    def __init__(
        self,
        backend: BatchingBackend,
        window_s: float,
        max_tasks: int,
        observe: BatchObserver | None = None,
    ) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be >= 1, got {max_tasks}")
        self.backend = backend
        self.info = backend.info
        self.window_s = window_s
        self.max_tasks = max_tasks
        self.observe = observe
        self._lock = threading.Lock()
        self._open: dict[Hashable, _Batch] = {}
        self._turns = threading.Condition()  # one decode at a time, first come first served
        self._waiting: deque[_Batch] = deque()
        self._decoding = False

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        """`Backend.forecast`: one task shares a decode with concurrent ones; raises what the
        backend raises for that task alone (ValueError, TimeoutError past its deadline)."""
        if len(tasks) != 1 or self.window_s == 0:
            return self.backend.forecast(tasks)
        entry = _Entry(tasks[0], monotonic())
        batch, leader = self._join(entry)
        if leader:
            batch.full.wait(self.window_s)
            if self._wait_for_turn(batch):  # others kept joining while an earlier decode ran
                batch.full.wait(self.window_s)
            try:
                self._close(batch)
                self._run(batch.entries)
            finally:
                with self._turns:
                    self._decoding = False
                    self._turns.notify_all()
        entry.done.wait()
        if isinstance(entry.outcome, Exception):
            raise entry.outcome
        return [cast(np.ndarray, entry.outcome)]  # done is set only with an outcome

    def _join(self, entry: _Entry) -> tuple[_Batch, bool]:
        """Add `entry` to its key's open batch, or open one: (batch, whether it leads it)."""
        key = self.backend.batch_key(entry.task)
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch(key)
            batch.entries.append(entry)
            if len(batch.entries) >= self.max_tasks:
                del self._open[key]
                batch.full.set()
        return batch, leader

    def _wait_for_turn(self, batch: _Batch) -> bool:
        """Return once no decode runs and every batch queued before `batch` has had its turn;
        whether it had to wait for one."""
        waited = False
        with self._turns:
            self._waiting.append(batch)
            while self._decoding or self._waiting[0] is not batch:
                waited = True
                self._turns.wait()
            self._waiting.popleft()
            self._decoding = True
        return waited

    def _close(self, batch: _Batch) -> None:
        """No task joins `batch` from now on (its entries are final)."""
        with self._lock:
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]

    def _run(self, entries: list[_Entry]) -> None:
        """Decode the entries' tasks together; every entry is settled when this returns."""
        started = monotonic()
        if self.observe is not None:
            self.observe(len(entries), [started - e.enqueued for e in entries])
        if len(entries) > 1:
            logger.debug("decoding %d forecasts together", len(entries))
        try:
            self.backend.forecast_each(
                [e.task for e in entries], lambda index, outcome: entries[index].settle(outcome)
            )
        except Exception as error:  # the whole decode failed: each caller raises it
            logger.exception("a batch of %d forecasts failed", len(entries))
            for entry in entries:
                entry.settle(error)
        finally:
            for entry in entries:  # never leave a caller waiting
                entry.settle(RuntimeError("the batched decode ended without this forecast"))
