"""Hub loading offline: a hub cache laid out like huggingface_hub's, local folders, a fake hub."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kronos_integration.config import DEFAULT_MODEL_ID, DEFAULT_TOKENIZER_ID
from kronos_integration.registry import (
    ArtifactSpec,
    ModelLoadError,
    load_artifacts,
    resolve_artifact,
)
from tests.checkpoints import make_tiny_checkpoints
from tests.hub_fixtures import (
    build_hub_cache,
    closed_loopback_url,
    fake_sha,
    point_hub_at,
    running_fake_hub,
    silent_loopback_url,
)

TOKEN = "hf_registryTestSecret0123456789abcdef"
MODEL_SHA = fake_sha("model")
TOKENIZER_SHA = fake_sha("tokenizer")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model_dir, tokenizer_dir): tiny random checkpoints written with `save_pretrained`."""
    return make_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def hf_home(tmp_path: Path, checkpoints: tuple[Path, Path]) -> Path:
    """An HF_HOME whose hub cache holds the default model and tokenizer repos at known commits."""
    model_dir, tokenizer_dir = checkpoints
    build_hub_cache(tmp_path / "hub", DEFAULT_MODEL_ID, model_dir, MODEL_SHA, refs=("main", "v1.0"))
    build_hub_cache(tmp_path / "hub", DEFAULT_TOKENIZER_ID, tokenizer_dir, TOKENIZER_SHA)
    return tmp_path


def default_specs(revision: str | None = None) -> tuple[ArtifactSpec, ArtifactSpec]:
    return ArtifactSpec(DEFAULT_MODEL_ID, revision), ArtifactSpec(DEFAULT_TOKENIZER_ID)


@pytest.mark.parametrize("revision", [None, "main", "v1.0", MODEL_SHA])
def test_loads_default_repo_ids_offline_from_the_cache(
    hf_home: Path,
    checkpoints: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    revision: str | None,
) -> None:
    point_hub_at(monkeypatch, hf_home, offline=True)
    loaded = load_artifacts(*default_specs(revision), device=CPU)

    assert (loaded.model_sha, loaded.tokenizer_sha) == (MODEL_SHA, TOKENIZER_SHA)
    assert loaded.model_spec == ArtifactSpec(DEFAULT_MODEL_ID, revision)
    assert loaded.device == CPU and loaded.load_seconds > 0
    assert not loaded.model.training and not loaded.tokenizer.training
    saved = load_file(checkpoints[0] / "model.safetensors")
    state = loaded.model.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[name], state[name]) for name in saved)
    assert all(p.device == CPU for p in loaded.tokenizer.parameters())


def test_revision_missing_from_the_cache_names_repo_and_revision(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_hub_at(monkeypatch, hf_home, offline=True)
    for revision in ("v2.0", fake_sha("never cached")):
        with pytest.raises(ModelLoadError) as caught:
            load_artifacts(*default_specs(revision), device=CPU)
        message = str(caught.value)
        assert DEFAULT_MODEL_ID in message and revision in message and "not in the cache" in message


def test_empty_cache_offline_names_the_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_hub_at(monkeypatch, tmp_path, offline=True)
    with pytest.raises(ModelLoadError, match="NeoQuasar/Kronos-small"):
        resolve_artifact(ArtifactSpec(DEFAULT_MODEL_ID))


def test_local_folders_load_without_a_sha(
    checkpoints: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_hub_at(monkeypatch, tmp_path, offline=True)
    model_dir, tokenizer_dir = checkpoints
    loaded = load_artifacts(
        ArtifactSpec(str(model_dir)), ArtifactSpec(str(tokenizer_dir)), device=CPU
    )
    assert loaded.model_sha is None and loaded.tokenizer_sha is None
    assert not loaded.model.training
    assert resolve_artifact(ArtifactSpec(str(model_dir))).source == "local"


def test_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-checkpoint")
    with pytest.raises(ModelLoadError, match="no such local folder") as caught:
        resolve_artifact(ArtifactSpec(missing))
    assert caught.value.repo_id == missing


def test_corrupt_weights_in_the_cache_are_a_clear_error(
    tmp_path: Path, checkpoints: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, tokenizer_dir = checkpoints
    snapshot = build_hub_cache(tmp_path / "hub", DEFAULT_MODEL_ID, model_dir, MODEL_SHA)
    build_hub_cache(tmp_path / "hub", DEFAULT_TOKENIZER_ID, tokenizer_dir, TOKENIZER_SHA)
    blob = (snapshot / "model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])  # a download cut short
    point_hub_at(monkeypatch, tmp_path, offline=True)
    with pytest.raises(ModelLoadError, match=r"NeoQuasar/Kronos-small.*unusable"):
        load_artifacts(*default_specs(), device=CPU)


def test_config_that_does_not_fit_the_weights_is_a_clear_error(
    tmp_path: Path, checkpoints: tuple[Path, Path]
) -> None:
    model_dir, tokenizer_dir = checkpoints
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    shutil.copy(model_dir / "config.json", mismatched / "config.json")
    shutil.copy(tokenizer_dir / "model.safetensors", mismatched / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"mismatched.*Kronos checkpoint") as caught:
        load_artifacts(ArtifactSpec(str(mismatched)), ArtifactSpec(str(tokenizer_dir)), device=CPU)
    assert caught.value.repo_id == str(mismatched)


def test_tokenizer_config_for_the_model_is_a_clear_error(checkpoints: tuple[Path, Path]) -> None:
    model_dir = checkpoints[0]
    with pytest.raises(ModelLoadError, match="KronosTokenizer checkpoint"):
        load_artifacts(ArtifactSpec(str(model_dir)), ArtifactSpec(str(model_dir)), device=CPU)


def test_unreachable_hub_falls_back_to_the_cache_without_retrying(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    point_hub_at(monkeypatch, hf_home, offline=False, endpoint=closed_loopback_url())
    caplog.set_level(logging.DEBUG)
    loaded = load_artifacts(*default_specs(), device=CPU, hub_timeout_s=2.0)
    assert loaded.model_sha == MODEL_SHA
    assert "unreachable" in caplog.text
    assert "Retrying" not in caplog.text


def test_unreachable_hub_and_cold_cache_fails_fast_naming_the_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    point_hub_at(monkeypatch, tmp_path, offline=False, endpoint=closed_loopback_url())
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"NeoQuasar/Kronos-small.*not in the cache"):
        resolve_artifact(ArtifactSpec(DEFAULT_MODEL_ID), hub_timeout_s=2.0)
    assert "Retrying" not in caplog.text  # huggingface_hub's 5-step backoff (~25 s) was not entered
    assert time.monotonic() - started < 20  # loose: only proves there was no backoff


def test_silent_hub_times_out_after_hub_timeout_and_uses_the_cache(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with silent_loopback_url() as url:
        point_hub_at(monkeypatch, hf_home, offline=False, endpoint=url)
        resolved = resolve_artifact(ArtifactSpec(DEFAULT_MODEL_ID), hub_timeout_s=0.5)
    assert (resolved.sha, resolved.source) == (MODEL_SHA, "cache")
    assert "ReadTimeout" in caplog.text and "Retrying" not in caplog.text


def test_reachable_hub_resolves_the_branch_to_its_commit(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {DEFAULT_MODEL_ID: (200, MODEL_SHA, None)}
    with running_fake_hub(answers) as hub:
        point_hub_at(monkeypatch, hf_home, offline=False, endpoint=hub.url)
        resolved = resolve_artifact(ArtifactSpec(DEFAULT_MODEL_ID), token=TOKEN, hub_timeout_s=2.0)
    assert (resolved.sha, resolved.source) == (MODEL_SHA, "hub")
    assert hub.authorizations == [f"Bearer {TOKEN}"]  # the token reached huggingface_hub


@pytest.mark.parametrize(
    ("status", "error_code", "expected"),
    [
        (401, None, "HF_TOKEN"),
        (403, None, "HF_TOKEN"),
        (404, "RepoNotFound", "repository not found"),
        (404, "RevisionNotFound", "does not exist on the hub"),
    ],
)
def test_hub_refusals_name_the_repo_and_never_the_token(
    hf_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    status: int,
    error_code: str | None,
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_fake_hub({DEFAULT_MODEL_ID: (status, None, error_code)}) as hub:
        point_hub_at(monkeypatch, hf_home, offline=False, endpoint=hub.url)
        with pytest.raises(ModelLoadError) as caught:
            load_artifacts(*default_specs(), device=CPU, token=TOKEN, hub_timeout_s=2.0)
    error = caught.value
    assert DEFAULT_MODEL_ID in str(error) and expected in str(error)
    chain = [error, error.__cause__, error.__context__]
    assert all(TOKEN not in f"{e} {e!r}" for e in chain if e is not None)
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("repo_id", ["bad id/x", "org/", "NeoQuasar/Kronos-small@main", "a--b/c"])
def test_malformed_hub_repo_id_is_a_clear_error(
    repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_hub_at(monkeypatch, tmp_path, offline=False, endpoint=closed_loopback_url())
    with pytest.raises(ModelLoadError, match="nor a hub repo id ORG/NAME") as caught:
        resolve_artifact(ArtifactSpec(repo_id), hub_timeout_s=1.0)
    assert caught.value.repo_id == repo_id


def test_download_from_the_hub_then_load_the_branch_offline(
    checkpoints: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `download` (image pre-download, init container) followed by an HF_HUB_OFFLINE=1
    start does: the files come by commit sha, yet the offline start asks for `main`."""
    model_dir, tokenizer_dir = checkpoints
    answers = {
        DEFAULT_MODEL_ID: (200, MODEL_SHA, None),
        DEFAULT_TOKENIZER_ID: (200, TOKENIZER_SHA, None),
    }
    files = {DEFAULT_MODEL_ID: model_dir, DEFAULT_TOKENIZER_ID: tokenizer_dir}
    with running_fake_hub(answers, files) as hub:
        point_hub_at(monkeypatch, tmp_path, offline=False, endpoint=hub.url)
        for spec in default_specs():
            assert resolve_artifact(spec, hub_timeout_s=5.0).source == "hub"
    point_hub_at(monkeypatch, tmp_path, offline=True)
    loaded = load_artifacts(*default_specs("main"), device=CPU)
    assert (loaded.model_sha, loaded.tokenizer_sha) == (MODEL_SHA, TOKENIZER_SHA)


def test_a_hub_that_failed_for_the_model_is_not_asked_again_for_the_tokenizer(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {DEFAULT_MODEL_ID: (503, None, None), DEFAULT_TOKENIZER_ID: (503, None, None)}
    with running_fake_hub(answers) as hub:
        point_hub_at(monkeypatch, hf_home, offline=False, endpoint=hub.url)
        loaded = load_artifacts(*default_specs(), device=CPU, hub_timeout_s=2.0)
    assert (loaded.model_sha, loaded.tokenizer_sha) == (MODEL_SHA, TOKENIZER_SHA)
    assert len(hub.authorizations) == 1  # one model-info request in all
