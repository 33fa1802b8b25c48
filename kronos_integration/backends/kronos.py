"""The Kronos backend: the model and tokenizer from the registry, decoded by `KronosPredictor`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from kronos_integration.backends.base import ArtifactInfo, BackendInfo, ForecastTask
from kronos_integration.config import ModelSettings, SettingsError
from kronos_integration.predictor import KronosPredictor
from kronos_integration.registry import (
    ArtifactSpec,
    LoadedArtifacts,
    load_artifacts,
    resolve_device,
)
from kronos_integration.request import Sampling

NAME = "kronos"


class KronosBackend:
    """`KronosPredictor` behind the `Backend` protocol; applies temperature, top-k and top-p."""

    def __init__(self, predictor: KronosPredictor, artifacts: LoadedArtifacts) -> None:
        self.predictor = predictor
        self.artifacts = artifacts
        self.info = BackendInfo(
            name=NAME,
            version=artifacts.model_spec.repo_id,
            device=str(predictor.device),
            dtype=str(next(artifacts.model.parameters()).dtype).removeprefix("torch."),
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

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        """Tasks that share one horizon length and one `Sampling` decode as one batch (one random
        stream, seeded by that sampling); the answers come back in the tasks' order."""
        groups: dict[tuple[int, Sampling], list[int]] = {}
        for position, task in enumerate(tasks):
            groups.setdefault((len(task.future), task.sampling), []).append(position)
        paths: dict[int, np.ndarray] = {}
        for (pred_len, sampling), positions in groups.items():
            group = [tasks[p] for p in positions]
            deadlines = [t.deadline for t in group if t.deadline is not None]
            forecasts = self.predictor.forecast_batch(
                [t.candles for t in group],
                [pd.DatetimeIndex(t.candles.index) for t in group],
                [t.future for t in group],
                pred_len,
                sample_count=sampling.sample_count,
                T=sampling.temperature,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                seed=sampling.seed,
                deadline=min(deadlines) if deadlines else None,
            )
            paths.update(zip(positions, (f.paths for f in forecasts), strict=True))
        return [paths[p] for p in range(len(tasks))]


def load(settings: ModelSettings) -> KronosBackend:
    """Load the configured model and tokenizer onto the configured device.

    Raises SettingsError for a device this machine does not have, ModelLoadError for weights
    that cannot be resolved or loaded.
    """
    try:
        device = resolve_device(settings.device)
    except ValueError as error:
        raise SettingsError(
            "KRONOS_DEVICE", settings.device, f"a device this machine has ({error})"
        ) from None
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
    )
    return KronosBackend(predictor, artifacts)


def _describe(spec: ArtifactSpec, sha: str | None, module: torch.nn.Module) -> ArtifactInfo:
    parameters = sum(p.numel() for p in module.parameters())
    return ArtifactInfo(id=spec.repo_id, revision=spec.revision, sha=sha, parameters=parameters)
