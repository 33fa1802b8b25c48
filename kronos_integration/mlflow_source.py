"""Checkpoints from an MLflow model registry (optional extra: `pip install '.[mlflow]'`).

A registered model version is a folder with `config.json` and `model.safetensors` (register one
with `MlflowClient.create_model_version(name, source=<artifact folder>, run_id=...)`). It is named
`models:/NAME/VERSION` or `models:/NAME@ALIAS`; the tracking and registry stores come from
MLflow's own variables (`MLFLOW_TRACKING_URI`, `MLFLOW_REGISTRY_URI`, credentials).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from kronos_integration.redact import strip_userinfo

STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))")


class RegisteredModelError(LookupError):
    """The registry has no such version, or its files could not be fetched."""


def fetch_registered_checkpoint(uri: str) -> tuple[Path, str]:
    """The local folder of the registered version `uri` and the MLflow run id that produced it.

    Raises ValueError for a URI that is not `models:/NAME/VERSION` or `models:/NAME@ALIAS`, and
    RegisteredModelError when the registry cannot provide it (no URL credentials in its message).
    """
    match = _MODEL_URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not models:/NAME/VERSION or models:/NAME@ALIAS")
    name, version, alias = match.group("name", "version", "alias")
    try:
        client = MlflowClient()  # raises already for a store it cannot use
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
        folder = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{found.version}")
    except (MlflowException, OSError) as error:
        reason = strip_userinfo(str(error))  # a tracking server's URL may carry user:password@
        raise RegisteredModelError(f"{reason}{_unset_store_hint()}") from error
    return Path(folder), str(found.run_id)


def _unset_store_hint() -> str:
    """Why MLflow looked where it did, when no store was configured: its default is a sqlite
    database in the working folder, which mlflow-skinny cannot open."""
    if any(os.environ.get(name) for name in STORE_VARIABLES):
        return ""
    return (
        f" ({' and '.join(STORE_VARIABLES)} are unset, so MLflow fell back to its default sqlite"
        " store, which mlflow-skinny cannot use: set them to the registry's tracking server)"
    )
