"""Cross-request batching: concurrent forecasts share one decode and get what they get alone.

The Kronos backend here is the real one on tiny saved checkpoints; the threads are real threads
calling the `Batcher` (and, through the app, real request handlers), each with its own task.
A batch closes when `max_tasks` tasks have joined, so the tests never rely on timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kronos_integration.backends import create_backend
from kronos_integration.backends.base import BatchingBackend, ForecastTask
from kronos_integration.backends.kronos import KronosBackend
from kronos_integration.batching import Batcher
from kronos_integration.candles import validate_candles
from kronos_integration.config import ModelSettings
from kronos_integration.request import Sampling
from tests.candles import make_candles
from tests.support import SEED_REQUEST, loaded_app, make_settings

LONG_WINDOW_S = 30.0  # the batches below close because they are full, long before this


@pytest.fixture(scope="module")
def kronos(tiny_checkpoints: tuple[Path, Path]) -> KronosBackend:
    model_dir, tokenizer_dir = tiny_checkpoints
    settings = ModelSettings(model_id=str(model_dir), tokenizer_id=str(tokenizer_dir))
    backend = create_backend("kronos", settings)
    assert isinstance(backend, KronosBackend) and isinstance(backend, BatchingBackend)
    return backend


def _task(
    seed: int,
    horizon: int,
    samples: int,
    *,
    bars: int = 48,
    deadline: float | None = None,
    candles: pd.DataFrame | None = None,
) -> ForecastTask:
    """A task on its own instrument's history (`bars` hourly bars) with its own seed."""
    history = validate_candles(make_candles(bars, freq="h", seed=seed))
    if candles is not None:
        history = candles
    future = pd.date_range(history.index[-1], periods=horizon + 1, freq="h")[1:]
    return ForecastTask(history, future, Sampling(samples, 1.0, 0, 0.9, seed), deadline)


def _concurrently(call: Callable[[ForecastTask], Any], tasks: Sequence[ForecastTask]) -> list[Any]:
    """`call(task)` for every task at once, one thread each; results or raised exceptions."""

    def guarded(task: ForecastTask) -> Any:
        try:
            return call(task)
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(guarded, tasks))


class _Sizes:
    """Records what a `Batcher` reports about each decode."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.waits: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, size: int, waits_s: Sequence[float]) -> None:
        with self.lock:
            self.sizes.append(size)
            self.waits.extend(waits_s)


TASKS = [(11, 6, 4), (12, 20, 3), (13, 3, 8), (14, 12, 2)]  # (seed, horizon, samples)


def test_four_concurrent_forecasts_share_one_decode_and_each_gets_its_paths_alone(
    kronos: KronosBackend,
) -> None:
    tasks = [_task(*shape) for shape in TASKS]
    alone = [kronos.forecast([task])[0] for task in tasks]
    observed = _Sizes()
    batcher = Batcher(kronos, LONG_WINDOW_S, max_tasks=4, observe=observed)
    batched = _concurrently(lambda task: batcher.forecast([task])[0], tasks)
    assert observed.sizes == [4]
    assert len(observed.waits) == 4 and all(0 <= w < LONG_WINDOW_S for w in observed.waits)
    for task, paths, got in zip(tasks, alone, batched, strict=True):
        assert paths.shape == (task.sampling.sample_count, len(task.future), 6)
        np.testing.assert_array_equal(got, paths)


def test_a_task_past_its_deadline_or_with_bad_candles_fails_alone(kronos: KronosBackend) -> None:
    good = [_task(*TASKS[0]), _task(*TASKS[1])]
    alone = [kronos.forecast([task])[0] for task in good]
    history = good[0].candles.copy()
    history.iloc[5, 0] = np.nan  # past the service's validation: the backend must say so itself
    late = _task(13, 3, 8, deadline=time.monotonic() - 1)
    broken = _task(14, 12, 2, candles=history)
    observed = _Sizes()
    batcher = Batcher(kronos, LONG_WINDOW_S, max_tasks=4, observe=observed)
    results = _concurrently(lambda task: batcher.forecast([task])[0], [*good, late, broken])
    assert observed.sizes == [4]
    np.testing.assert_array_equal(results[0], alone[0])
    np.testing.assert_array_equal(results[1], alone[1])
    assert isinstance(results[2], TimeoutError) and "deadline after 0 of 3 bars" in str(results[2])
    assert isinstance(results[3], ValueError) and "NaN" in str(results[3])


def test_tasks_decode_together_only_with_their_own_kind(kronos: KronosBackend) -> None:
    """Another history length (or another temperature) is another batch."""
    tasks = [_task(1, 4, 2), _task(2, 5, 2, bars=40), _task(3, 6, 2), _task(4, 7, 2, bars=40)]
    observed = _Sizes()
    batcher = Batcher(kronos, LONG_WINDOW_S, max_tasks=2, observe=observed)
    results = _concurrently(lambda task: batcher.forecast([task])[0], tasks)
    assert observed.sizes == [2, 2]
    for task, got in zip(tasks, results, strict=True):
        np.testing.assert_array_equal(got, kronos.forecast([task])[0])
    assert kronos.batch_key(tasks[0]) != kronos.batch_key(tasks[1])
    hotter = ForecastTask(tasks[0].candles, tasks[0].future, Sampling(2, 0.7, 0, 0.9, 1))
    assert kronos.batch_key(hotter) != kronos.batch_key(tasks[0])


def test_several_tasks_in_one_call_and_a_zero_window_go_straight_to_the_backend(
    kronos: KronosBackend,
) -> None:
    observed = _Sizes()
    tasks = [_task(1, 4, 2), _task(2, 4, 2)]
    batched = Batcher(kronos, LONG_WINDOW_S, max_tasks=4, observe=observed).forecast(tasks)
    assert observed.sizes == []
    for got, expected in zip(batched, kronos.forecast(tasks), strict=True):
        np.testing.assert_array_equal(got, expected)
    Batcher(kronos, 0.0, max_tasks=4, observe=observed).forecast(tasks[:1])
    assert observed.sizes == []
    with pytest.raises(ValueError, match="window_s must be >= 0"):
        Batcher(kronos, -1.0, max_tasks=4)


def _metric(text: str, name: str, sample: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return sum(s.value for s in family.samples if s.name == sample)
    raise AssertionError(f"{name} is not exposed")


def test_concurrent_requests_share_a_decode_and_answer_as_they_would_alone(
    tiny_checkpoints: tuple[Path, Path],
) -> None:
    model_dir, tokenizer_dir = tiny_checkpoints
    common: dict[str, Any] = dict(
        mode="kronos",
        model_id=str(model_dir),
        tokenizer_id=str(tokenizer_dir),
        allow_synthetic_history=True,
        max_inflight=4,
    )
    alone_app = loaded_app(make_settings(batch_window_ms=0, **common))
    batched_app = loaded_app(make_settings(batch_window_ms=1000, **common))
    bodies = [
        {**SEED_REQUEST, "isin": isin, "horizon_days": days, "seed": seed, "sample_count": 3}
        for isin, days, seed in [
            ("US67066G1040", 5, 1),
            ("US0378331005", 3, 2),
            ("DE0007164600", 8, 3),
            ("US5949181045", 2, 4),
        ]
    ]

    def answer(app: Any, body: dict[str, Any]) -> dict[str, Any]:
        response = app.test_client().post("/predict", json=body)
        assert response.status_code == 200, response.get_json()
        document: dict[str, Any] = response.get_json()
        return document

    alone = [answer(alone_app, body) for body in bodies]
    with ThreadPoolExecutor(max_workers=4) as pool:
        batched = list(pool.map(lambda body: answer(batched_app, body), bodies))
    for one, other in zip(alone, batched, strict=True):
        assert one["predictions"] == other["predictions"]
        assert one["metadata"]["seed"] == other["metadata"]["seed"]
    metrics = batched_app.test_client().get("/metrics").get_data(as_text=True)
    assert _metric(metrics, "kronos_batch_size", "kronos_batch_size_count") == 1
    assert _metric(metrics, "kronos_batch_size", "kronos_batch_size_sum") == 4
    waits = "kronos_batch_queue_wait_seconds_count"
    assert _metric(metrics, "kronos_batch_queue_wait_seconds", waits) == 4
    alone_metrics = alone_app.test_client().get("/metrics").get_data(as_text=True)
    assert _metric(alone_metrics, "kronos_batch_size", "kronos_batch_size_count") == 0


class _Recording(KronosBackend):
    """The real Kronos backend, noting how many `forecast_each` calls overlap."""

    def __init__(self, backend: KronosBackend) -> None:
        super().__init__(backend.predictor, backend.artifacts)
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def forecast_each(self, tasks: Sequence[ForecastTask], done: Callable[..., None]) -> None:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            super().forecast_each(tasks, done)
        finally:
            with self.lock:
                self.running -= 1


def test_a_worker_runs_one_decode_at_a_time(kronos: KronosBackend) -> None:
    """Six concurrent forecasts, batches of two: three decodes, one after the other."""
    recording = _Recording(kronos)
    observed = _Sizes()
    batcher = Batcher(recording, LONG_WINDOW_S, max_tasks=2, observe=observed)
    tasks = [_task(seed, 8, 4) for seed in range(6)]
    results = _concurrently(lambda task: batcher.forecast([task])[0], tasks)
    assert observed.sizes == [2, 2, 2]
    assert recording.most_running == 1
    for task, got in zip(tasks, results, strict=True):
        np.testing.assert_array_equal(got, kronos.forecast([task])[0])
