"""The Kronos backend: the model and tokenizer from the registry, decoded by `KronosPredictor`."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import pandas as pd
import torch

from kronos_integration.backends.base import ArtifactInfo, BackendInfo, ForecastTask, TaskOutcome
from kronos_integration.config import ModelSettings, SettingsError
from kronos_integration.model.kernels import dtype_name, dtype_supported, supported_dtypes
from kronos_integration.predictor import ForecastJob, JobResult, KronosPredictor
from kronos_integration.registry import (
    ArtifactSpec,
    LoadedArtifacts,
    load_artifacts,
    resolve_device,
)
from kronos_integration.request import Sampling

NAME = "kronos"


class KronosBackend:
    """`KronosPredictor` behind the `Backend` protocol; applies temperature, top-k and top-p.

    Also a `BatchingBackend`: tasks whose histories have one length and whose sampling shares
    temperature, top-k and top-p decode together, each from its own seed.
    """

    def __init__(self, predictor: KronosPredictor, artifacts: LoadedArtifacts) -> None:
        self.predictor = predictor
        self.artifacts = artifacts
        self.info = BackendInfo(
            name=NAME,
            version=artifacts.model_spec.repo_id,
            device=str(predictor.device),
            dtype=dtype_name(predictor.dtype),
            max_context=predictor.max_context,
            max_bars=predictor.max_context,
            sampling_options=frozenset({"temperature", "top_k", "top_p"}),
            batches=True,
            artifacts={
                "model": _describe(artifacts.model_spec, artifacts.model_sha, artifacts.model),
                "tokenizer": _describe(
                    artifacts.tokenizer_spec, artifacts.tokenizer_sha, artifacts.tokenizer
                ),
            },
        )

    def batch_key(self, task: ForecastTask) -> Hashable:
        """History length and sampling filters: tasks that decode alike, so together."""
        sampling = task.sampling
        return (len(task.candles), sampling.temperature, sampling.top_k, sampling.top_p)

    def forecast_each(
        self, tasks: Sequence[ForecastTask], done: Callable[[int, TaskOutcome], None]
    ) -> None:
        """Each task its own forecast (its own seed, horizon, sample count and deadline), tasks
        of one `batch_key` decoded as one batch; `done(index, paths or exception)` per task."""
        groups: dict[Hashable, list[int]] = {}
        for position, task in enumerate(tasks):
            groups.setdefault(self.batch_key(task), []).append(position)
        for positions in groups.values():
            self._forecast_group([tasks[p] for p in positions], positions, done)

    def _forecast_group(
        self,
        group: list[ForecastTask],
        positions: list[int],
        done: Callable[[int, TaskOutcome], None],
    ) -> None:
        """Tasks of one batch key as one `forecast_jobs` call; `done(positions[i], …)`."""
        settled: set[int] = set()

        def settle(index: int, result: JobResult) -> None:
            settled.add(index)
            done(positions[index], result if isinstance(result, Exception) else result[0].paths)

        sampling = group[0].sampling
        jobs = [_job([task], task.sampling, task.deadline) for task in group]
        try:
            self.predictor.forecast_jobs(
                jobs,
                T=sampling.temperature,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                on_done=settle,
            )
        except ValueError as error:  # the group's shared sampling arguments
            for index in range(len(jobs)):
                if index not in settled:
                    settle(index, error)

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        """Tasks that share one horizon length and one `Sampling` decode as one batch (one random
        stream, seeded by that sampling); the answers come back in the tasks' order."""
        groups: dict[tuple[int, Sampling], list[int]] = {}
        for position, task in enumerate(tasks):
            groups.setdefault((len(task.future), task.sampling), []).append(position)
        paths: dict[int, np.ndarray] = {}
        for (_, sampling), positions in groups.items():
            group = [tasks[p] for p in positions]
            deadlines = [t.deadline for t in group if t.deadline is not None]
            job = _job(group, sampling, min(deadlines) if deadlines else None)
            (forecasts,) = self.predictor.forecast_jobs(
                [job], T=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p
            )
            if isinstance(forecasts, Exception):
                raise forecasts
            paths.update(zip(positions, (f.paths for f in forecasts), strict=True))
        return [paths[p] for p in range(len(tasks))]


def load(settings: ModelSettings) -> KronosBackend:
    """Load the configured model and tokenizer onto the configured device.

    Raises SettingsError for a device this machine does not have or a dtype it cannot run
    (before any weights are read), ModelLoadError for weights that cannot be resolved or loaded.
    """
    try:
        device = resolve_device(settings.device)
    except ValueError as error:
        raise SettingsError(
            "KRONOS_DEVICE", settings.device, f"a device this machine has ({error})"
        ) from None
    if not dtype_supported(device, settings.dtype):
        runs = [dtype_name(d) for d in supported_dtypes(device)]
        raise SettingsError("KRONOS_DTYPE", settings.dtype, f"a dtype {device} runs: {runs}")
    artifacts = load_artifacts(
        ArtifactSpec(settings.model_id, settings.model_revision),
        ArtifactSpec(settings.tokenizer_id, settings.tokenizer_revision),
        device=device,
        token=settings.hf_token,
        hub_timeout_s=settings.hub_timeout_s,
    )
    predictor = KronosPredictor(
        artifacts.model,
        artifacts.tokenizer,
        device=device,
        max_context=settings.max_context,
        clip=settings.clip,
        dtype=settings.dtype,
    )
    return KronosBackend(predictor, artifacts)


def _job(tasks: Sequence[ForecastTask], sampling: Sampling, deadline: float | None) -> ForecastJob:
    """Tasks of one horizon length drawn from one `sampling` as one job."""
    return ForecastJob(
        [t.candles for t in tasks],
        [pd.DatetimeIndex(t.candles.index) for t in tasks],
        [t.future for t in tasks],
        len(tasks[0].future),
        sampling.sample_count,
        sampling.seed,
        deadline,
    )


def _describe(spec: ArtifactSpec, sha: str | None, module: torch.nn.Module) -> ArtifactInfo:
    parameters = sum(p.numel() for p in module.parameters())
    return ArtifactInfo(id=spec.repo_id, revision=spec.revision, sha=sha, parameters=parameters)
