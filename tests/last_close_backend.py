"""A third backend for the registry test: every path stays at the last close (a flat forecast).

This whole module plus one `register_backend` call is what adding a backend takes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kronos_integration.backends.base import BackendInfo, ForecastTask
from kronos_integration.config import ModelSettings


class LastCloseBackend:
    def __init__(self, max_context: int) -> None:
        self.info = BackendInfo("last_close", "last-close-1", max_context=max_context)

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        return [
            np.tile(
                task.candles.iloc[-1].to_numpy(), (task.sampling.sample_count, len(task.future), 1)
            )
            for task in tasks
        ]


def load(settings: ModelSettings) -> LastCloseBackend:
    return LastCloseBackend(settings.max_context)
