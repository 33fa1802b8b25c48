"""The forecast gate: at most `capacity` forecast calls of a backend at once, the rest wait in
arrival order within their queue time and deadline (kronos_integration/backends/gate.py).

Forecasts are the real simulator's, held by the test (`HeldBackend`), so which call runs and which
waits is decided by events, not by timing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kronos_integration.backends import create_backend
from kronos_integration.backends.base import Backend, BatchingBackend, ForecastTask
from kronos_integration.backends.gate import ForecastGate, gated
from kronos_integration.batching import Batcher
from kronos_integration.candles import validate_candles
from kronos_integration.config import ModelSettings
from kronos_integration.errors import BackendBusyError, DeadlineExceededError
from kronos_integration.request import Sampling
from tests.candles import make_candles
from tests.held_backend import HeldBackend
from tests.support import wait_until

CANDLES = make_candles(64)
FUTURE = pd.date_range(CANDLES.index[-1] + pd.offsets.BDay(), periods=3, freq="B")


def task(seed: int, deadline: float | None = None) -> ForecastTask:
    return ForecastTask(CANDLES, FUTURE, Sampling(sample_count=2, seed=seed), deadline)


class Caller:
    """One forecast call in its own thread; `outcome` is its paths or its exception."""

    def __init__(self, gate: Backend, *tasks: ForecastTask) -> None:
        self.outcome: object = None
        self.thread = threading.Thread(target=self._run, args=(gate, tasks))
        self.thread.start()

    def _run(self, gate: Backend, tasks: tuple[ForecastTask, ...]) -> None:
        try:
            self.outcome = gate.forecast(list(tasks))
        except Exception as error:
            self.outcome = error

    def result(self) -> object:
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the call never returned"
        return self.outcome


@pytest.fixture
def held() -> Iterator[HeldBackend]:
    backend = HeldBackend()
    backend.hold()
    yield backend
    backend.go.set()


def test_capacity_calls_run_at_once_and_the_next_runs_when_one_ends(held):
    gate = ForecastGate(held, capacity=2, queue_timeout_s=30)
    first, second = Caller(gate, task(1)), Caller(gate, task(2))
    held.wait_started()
    held.wait_started()
    third = Caller(gate, task(3))
    wait_until(lambda: gate.queued == 1)
    assert gate.running == 2 and sorted(held.calls) == [1, 2]
    held.go.set()
    for caller in (first, second, third):
        (paths,) = caller.result()  # type: ignore[misc]
        assert paths.shape == (2, 3, 6)
    assert held.calls[2] == 3 and gate.running == 0 and gate.queued == 0


def test_waiting_calls_run_in_arrival_order(held):
    gate = ForecastGate(held, capacity=1, queue_timeout_s=30)
    running = Caller(gate, task(0))
    held.wait_started()
    waiting = []
    for seed in (1, 2, 3):
        waiting.append(Caller(gate, task(seed)))
        wait_until(lambda n=seed: gate.queued == n)
    held.go.set()
    for caller in (running, *waiting):
        caller.result()
    assert held.calls == [0, 1, 2, 3]


def test_a_call_that_waits_out_its_queue_time_is_busy_and_never_runs(held):
    gate = ForecastGate(held, capacity=1, queue_timeout_s=0.05)
    running = Caller(gate, task(0))
    held.wait_started()
    refused = Caller(gate, task(1)).result()
    assert isinstance(refused, BackendBusyError)
    assert "1 forecast slots" in str(refused) and "0.05 s" in str(refused)
    assert held.calls == [0] and gate.queued == 0
    held.go.set()
    running.result()
    (paths,) = gate.forecast([task(2)])  # the refused call left no slot taken
    assert paths.shape == (2, 3, 6) and held.calls == [0, 2] and gate.running == 0


def test_a_deadline_before_the_queue_time_ends_the_wait_as_a_deadline(held):
    gate = ForecastGate(held, capacity=1, queue_timeout_s=30)
    running = Caller(gate, task(0))
    held.wait_started()
    late = Caller(gate, task(1, deadline=time.monotonic() + 0.05), task(2)).result()
    assert isinstance(late, DeadlineExceededError) and isinstance(late, TimeoutError)
    assert held.calls == [0]
    held.go.set()
    running.result()


def test_a_call_past_its_deadline_does_not_start():
    backend = HeldBackend()
    gate = ForecastGate(backend, capacity=1, queue_timeout_s=30)
    with pytest.raises(DeadlineExceededError):
        gate.forecast([task(0, deadline=time.monotonic() - 1)])
    assert backend.calls == [] and gate.running == 0


def test_a_failing_forecast_gives_its_slot_back():
    backend = HeldBackend()
    gate = ForecastGate(backend, capacity=1, queue_timeout_s=30)
    bad = ForecastTask(CANDLES, FUTURE, Sampling(sample_count=0, seed=1))
    with pytest.raises(ValueError):
        gate.forecast([bad])
    assert gate.running == 0
    (paths,) = gate.forecast([task(2)])
    assert paths.shape == (2, 3, 6)


def test_one_call_of_several_tasks_takes_one_slot_and_info_is_the_backends(held):
    gate = ForecastGate(held, capacity=1, queue_timeout_s=30)
    assert gate.info is held.info
    batch = Caller(gate, task(1), task(2), task(3))
    held.wait_started()
    assert gate.running == 1 and gate.queued == 0
    held.go.set()
    assert len(batch.result()) == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(("capacity", "queue_timeout_s"), [(0, 1.0), (1, -1.0)])
def test_a_gate_needs_a_slot_and_a_queue_time(capacity, queue_timeout_s):
    with pytest.raises(ValueError):
        ForecastGate(HeldBackend(), capacity, queue_timeout_s)


# --- behind a batcher ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kronos(tiny_checkpoints: tuple[Path, Path]) -> Backend:
    model_dir, tokenizer_dir = tiny_checkpoints
    settings = ModelSettings(model_id=str(model_dir), tokenizer_id=str(tokenizer_dir))
    return create_backend("kronos", settings)


def hourly_task(seed: int) -> ForecastTask:
    history = validate_candles(make_candles(48, freq="h", seed=seed))
    future = pd.date_range(history.index[-1], periods=3, freq="h")[1:]
    return ForecastTask(history, future, Sampling(sample_count=2, seed=seed))


def test_a_gate_around_a_batching_backend_batches_and_the_simulators_does_not(kronos):
    assert isinstance(gated(kronos, 1, 30), BatchingBackend)
    assert not isinstance(gated(HeldBackend(), 1, 30), BatchingBackend)


def test_one_shared_decode_takes_one_slot_and_a_busy_gate_refuses_each_task(kronos):
    gate = gated(kronos, capacity=1, queue_timeout_s=0.05)
    decodes: list[int] = []
    batcher = Batcher(gate, window_s=30, max_tasks=2, observe=lambda size, _: decodes.append(size))
    with gate.slot():  # something else computes meanwhile
        refused = [Caller(batcher, hourly_task(seed)) for seed in (1, 2)]
        outcomes = [caller.result() for caller in refused]
    assert all(isinstance(outcome, BackendBusyError) for outcome in outcomes)
    assert outcomes[0] is not outcomes[1]  # each caller raises its own
    answered = [Caller(batcher, hourly_task(seed)) for seed in (1, 2)]
    for caller in answered:
        (paths,) = caller.result()  # type: ignore[misc]
        assert paths.shape == (2, 2, 6)
    assert decodes == [2, 2] and gate.running == 0  # one slot held the two-task decode
