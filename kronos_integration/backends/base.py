"""The backend seam: what every forecasting model offers the pipeline.

A backend draws sample paths of future OHLCV bars for a batch of `ForecastTask`s and describes
itself with a `BackendInfo`. Callers never branch on a backend's name: what differs (version,
device, context window, which sampling options apply) is in its info. A backend that can decode
concurrent forecasts together is also a `BatchingBackend` (see `kronos_integration.batching`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from kronos_integration.request import Sampling


@dataclass(frozen=True)
class ForecastTask:
    """One series to forecast.

    Attributes:
        candles: validated history window, (L, 6) float64 `CANDLE_COLUMNS`, DatetimeIndex.
        future: the `pred_len` timestamps to generate.
        sampling: how to draw the sample paths (seeded).
        deadline: a `time.monotonic()` instant; past it the backend raises TimeoutError.
    """

    candles: pd.DataFrame
    future: pd.DatetimeIndex
    sampling: Sampling
    deadline: float | None = None


@dataclass(frozen=True)
class ArtifactInfo:
    """A loaded checkpoint: repo id or folder, requested revision, resolved commit, size."""

    id: str
    revision: str | None
    sha: str | None
    parameters: int


@dataclass(frozen=True)
class BackendInfo:
    """What a backend is and what it can do.

    Attributes:
        name: its registry name (`kronos`, `simulated`, …): the `model` of an answer.
        version: the model's repo id or folder, or the algorithm's version string.
        max_context: bars of history the default lookback keeps within (with the horizon).
        max_bars: most future bars one forecast may generate, or None for no limit.
        sampling_options: the `Sampling` fields besides `sample_count`/`seed` that it applies.
        artifacts: the checkpoints it loaded, by role (`model`, `tokenizer`).
        batches: it decodes tasks that share a horizon length and a `Sampling` as one batch
            (one random stream), so callers with many tasks give them one `Sampling`.
    """

    name: str
    version: str
    device: str = "cpu"
    dtype: str = "float64"
    max_context: int = 512
    max_bars: int | None = None
    sampling_options: frozenset[str] = frozenset({"temperature"})
    artifacts: Mapping[str, ArtifactInfo] = field(default_factory=dict)
    batches: bool = False


class Backend(Protocol):
    """A forecasting model: `info` and one method."""

    info: BackendInfo

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        """Sample paths per task: float64 (sample_count, len(task.future), 6) in price units.

        Raises ValueError for input it cannot forecast and TimeoutError past a task's deadline.
        """
        ...


TaskOutcome = np.ndarray | Exception
"""A task's sample paths (as `Backend.forecast` returns them), or why it has none."""


@runtime_checkable
class BatchingBackend(Backend, Protocol):
    """A backend that decodes unrelated tasks together, each as if it were alone."""

    def batch_key(self, task: ForecastTask) -> Hashable:
        """Tasks with equal keys may share one decode (e.g. same history length and filters)."""
        ...

    def forecast_each(
        self, tasks: Sequence[ForecastTask], done: Callable[[int, TaskOutcome], None]
    ) -> None:
        """Decode `tasks` together, each from its own `sampling.seed` (its paths are those
        `forecast([task])` gives), to its own horizon and deadline; `done(index, outcome)` is
        called once per task as soon as its paths (or its ValueError, TimeoutError, …) are
        known. Never raises for one task's sake."""
        ...
