"""The service with its default repo ids, loading from an offline hub cache laid out like
huggingface_hub's: /models and every forecast name the commit shas of the weights; a revision
that is not cached fails kronos mode and makes auto mode fall back, naming the repo. Once through
the Flask app, once through a real gunicorn configured only by environment variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import create_app
from benchmarks.live_server import LiveServer, request
from kronos_integration.config import DEFAULT_MODEL_ID, DEFAULT_TOKENIZER_ID
from kronos_integration.registry import ModelLoadError
from tests.hub_fixtures import build_hub_cache, fake_sha, point_hub_at
from tests.support import (
    QUIET_TORCH,
    SEED_REQUEST,
    assert_redacted,
    loaded_app,
    make_settings,
    state_of,
)

MODEL_SHA = fake_sha("service-model")
TOKENIZER_SHA = fake_sha("service-tokenizer")
REQUEST = {**SEED_REQUEST, "horizon_days": 2, "sample_count": 2, "seed": 3}
TOKEN = "hf_serviceTestSecret0123456789abcd"


@pytest.fixture
def hf_home(
    tmp_path: Path, tiny_checkpoints: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """HF_HOME with the default repos cached, HF_HUB_OFFLINE=1."""
    model_dir, tokenizer_dir = tiny_checkpoints
    build_hub_cache(tmp_path / "hub", DEFAULT_MODEL_ID, model_dir, MODEL_SHA)
    build_hub_cache(tmp_path / "hub", DEFAULT_TOKENIZER_ID, tokenizer_dir, TOKENIZER_SHA)
    point_hub_at(monkeypatch, tmp_path, offline=True)
    return tmp_path


@pytest.mark.parametrize("revision", [None, MODEL_SHA])
def test_service_loads_the_default_repos_from_the_cache(
    hf_home: Path, revision: str | None
) -> None:
    settings = make_settings(mode="kronos", model_revision=revision, allow_synthetic_history=True)
    assert (settings.model.model_id, settings.model.tokenizer_id) == (
        DEFAULT_MODEL_ID,
        DEFAULT_TOKENIZER_ID,
    )
    client = loaded_app(settings).test_client()

    models = client.get("/models").get_json()
    assert models["serving"] == "kronos"
    assert models["model"]["id"] == DEFAULT_MODEL_ID and models["model"]["sha"] == MODEL_SHA
    assert models["tokenizer"]["sha"] == TOKENIZER_SHA

    response = client.post("/predict", json=REQUEST)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["model"] == "kronos"
    assert body["metadata"]["model_revision"] == MODEL_SHA
    assert body["metadata"]["tokenizer"]["sha"] == TOKENIZER_SHA


def test_uncached_revision_fails_kronos_mode_naming_the_repo(hf_home: Path) -> None:
    settings = make_settings(mode="kronos", model_revision="v9", allow_synthetic_history=True)
    with pytest.raises(ModelLoadError, match=DEFAULT_MODEL_ID):
        state_of(create_app(settings)).load()


def test_uncached_revision_makes_auto_mode_fall_back_with_the_reason(hf_home: Path) -> None:
    settings = make_settings(mode="auto", model_revision="v9", hf_token=TOKEN)
    models = loaded_app(settings).test_client().get("/models").get_json()
    assert models["serving"] == "simulated"
    reason = models["fallback_reason"]
    assert DEFAULT_MODEL_ID in reason and "'v9'" in reason and "not in the cache <path>" in reason
    assert_redacted(reason, str(hf_home))
    assert TOKEN not in str(models)


@pytest.mark.slow
def test_gunicorn_serves_the_default_repos_from_an_offline_cache(hf_home: Path) -> None:
    env = {
        **QUIET_TORCH,
        "HF_HOME": str(hf_home),
        "HF_TOKEN": TOKEN,
        "KRONOS_MODE": "kronos",
        "KRONOS_MODEL_ID": "",  # empty: the defaults, whatever the outer environment says
        "KRONOS_TOKENIZER_ID": "",
        "KRONOS_MODEL_REVISION": MODEL_SHA,
        "KRONOS_ALLOW_SYNTHETIC_HISTORY": "1",
    }
    with LiveServer(env, hf_home / "gunicorn.log", workers=1) as server:
        status, _, body = request(server.port, "GET", "/models")
        models = json.loads(body)
        assert status == 200 and models["serving"] == "kronos"
        assert (models["model"]["id"], models["model"]["sha"]) == (DEFAULT_MODEL_ID, MODEL_SHA)
        assert models["tokenizer"]["sha"] == TOKENIZER_SHA
        status, _, body = request(server.port, "POST", "/predict", REQUEST)
        assert status == 200 and json.loads(body)["metadata"]["model_revision"] == MODEL_SHA
    log = server.log_text()
    assert MODEL_SHA in log and TOKEN not in log  # the load was logged, the token never
