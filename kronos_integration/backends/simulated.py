"""The statistical simulator as a backend: it applies the temperature, not top-k or top-p."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kronos_integration.backends.base import BackendInfo, ForecastTask
from kronos_integration.config import ModelSettings
from kronos_integration.simulator import SIMULATOR_VERSION, StatisticalSimulator


class SimulatedBackend:
    """`StatisticalSimulator` behind the `Backend` protocol."""

    def __init__(self, max_context: int, simulator: StatisticalSimulator | None = None) -> None:
        self.simulator = simulator or StatisticalSimulator()
        # The lookback policy stays the model's, so simulated answers use the same history.
        self.info = BackendInfo(
            name="simulated", version=SIMULATOR_VERSION, max_context=max_context
        )

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        return [
            self.simulator.sample_paths(
                task.candles,
                len(task.future),
                sample_count=task.sampling.sample_count,
                temperature=task.sampling.temperature,
                seed=task.sampling.seed,
                deadline=task.deadline,
            )
            for task in tasks
        ]


def load(settings: ModelSettings) -> SimulatedBackend:
    return SimulatedBackend(settings.max_context)
