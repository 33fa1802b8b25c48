"""`models:/NAME/VERSION` and `models:/NAME@ALIAS` from a local file-based MLflow registry.

The registry tests run only where the optional extra is installed (`pip install '.[mlflow]'`);
the error for a `models:/` id without MLflow runs everywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from benchmarks.live_server import refusing_port
from kronos_integration.registry import ArtifactSpec, ModelLoadError, load_artifacts
from tests.canaries import HUB_PASSWORD_CANARY
from tests.support import assert_redacted, loaded_app, make_settings

CPU = torch.device("cpu")


def test_models_uri_without_mlflow_installed_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    monkeypatch.delitem(sys.modules, "kronos_integration.mlflow_source", raising=False)
    with pytest.raises(ModelLoadError, match=r"models:/kronos/1.*pip install '\.\[mlflow\]'"):
        load_artifacts(ArtifactSpec("models:/kronos/1"), ArtifactSpec("models:/tok/1"), device=CPU)


@pytest.fixture
def registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoints: tuple[Path, Path]
) -> dict[str, Any]:
    """A file-based MLflow store holding `kronos-tiny` v1 and `kronos-tiny-tokenizer` v1 (@prod)."""
    mlflow = pytest.importorskip("mlflow")
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 wants a database otherwise
    monkeypatch.setenv("MLFLOW_ENABLE_TELEMETRY", "false")
    client = mlflow.MlflowClient()
    run_ids = {}
    for name, folder in zip(
        ("kronos-tiny", "kronos-tiny-tokenizer"), tiny_checkpoints, strict=True
    ):
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(folder), artifact_path="checkpoint")
        client.create_registered_model(name)
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/checkpoint", run_id=run.info.run_id
        )
        run_ids[name] = run.info.run_id
    client.set_registered_model_alias("kronos-tiny-tokenizer", "prod", "1")
    return run_ids


def test_loads_registered_versions_by_number_and_alias(
    registry: dict[str, Any], tiny_checkpoints: tuple[Path, Path]
) -> None:
    loaded = load_artifacts(
        ArtifactSpec("models:/kronos-tiny/1"),
        ArtifactSpec("models:/kronos-tiny-tokenizer@prod"),
        device=CPU,
    )
    assert loaded.model_sha == registry["kronos-tiny"]
    assert loaded.tokenizer_sha == registry["kronos-tiny-tokenizer"]
    saved = load_file(tiny_checkpoints[0] / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in loaded.model.state_dict().items())
    assert not loaded.model.training


@pytest.mark.parametrize("uri", ["models:/kronos-tiny/7", "models:/no-such-model@prod"])
def test_unknown_versions_name_the_uri(registry: dict[str, Any], uri: str) -> None:
    with pytest.raises(ModelLoadError, match="MLflow registry") as caught:
        load_artifacts(
            ArtifactSpec(uri), ArtifactSpec("models:/kronos-tiny-tokenizer/1"), device=CPU
        )
    assert caught.value.repo_id == uri


def test_an_unconfigured_store_names_the_model_and_the_unset_variables_and_no_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI: MLflow falls back to sqlite in the working
    folder, which mlflow-skinny cannot open. The operator's log says which model and why; the
    unauthenticated /models shows no path of the server's (the sqlite URI's included)."""
    pytest.importorskip("mlflow")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_TELEMETRY", "false")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        load_artifacts(
            ArtifactSpec("models:/secretmodel/1"), ArtifactSpec("models:/tok/1"), device=CPU
        )
    message = str(caught.value)
    assert message.startswith("cannot load 'models:/secretmodel/1': MLflow registry: ")
    assert "MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI are unset" in message
    app = loaded_app(make_settings(mode="auto", model_id="models:/secretmodel/1"))
    reason = app.test_client().get("/models").get_json()["fallback_reason"]
    assert_redacted(reason, str(tmp_path))
    assert reason.startswith("ModelLoadError: cannot load 'models:/secretmodel/1': MLflow registry")


def test_a_tracking_servers_credentials_stay_out_of_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An MLflow tracking server at a closed loopback port, its URL with a password: the load
    error names the server without it."""
    pytest.importorskip("mlflow")
    with refusing_port() as closed_port:
        store = f"http://kronos:{HUB_PASSWORD_CANARY}@127.0.0.1:{closed_port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", store)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
        monkeypatch.setenv("MLFLOW_ENABLE_TELEMETRY", "false")
        with pytest.raises(ModelLoadError) as caught:
            load_artifacts(
                ArtifactSpec("models:/secretmodel/1"), ArtifactSpec("models:/tok/1"), device=CPU
            )
    message = str(caught.value)
    assert message.startswith("cannot load 'models:/secretmodel/1': MLflow registry: ")
    assert HUB_PASSWORD_CANARY not in message and "are unset" not in message
