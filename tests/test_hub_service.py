"""The service with its default repo ids, loading from an offline hub cache laid out like
huggingface_hub's: /models and every forecast name the commit shas of the weights; a revision
that is not cached fails kronos mode and makes auto mode fall back, naming the repo."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app import create_app
from app.settings import Settings
from kronos_integration.registry import DEFAULT_MODEL_ID, DEFAULT_TOKENIZER_ID, ModelLoadError
from tests.hub_fixtures import build_hub_cache, fake_sha, point_hub_at

MODEL_SHA = fake_sha("service-model")
TOKENIZER_SHA = fake_sha("service-tokenizer")
SEED_REQUEST = {"isin": "US67066G1040", "horizon_days": 2, "sample_count": 2, "seed": 3}


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


def loaded_client(settings: Settings) -> FlaskClient:
    app = create_app(settings)
    app.extensions["kronos.service"].load()
    return app.test_client()


@pytest.mark.parametrize("revision", [None, MODEL_SHA])
def test_service_loads_the_default_repos_from_the_cache(
    hf_home: Path, revision: str | None
) -> None:
    settings = Settings(mode="kronos", model_revision=revision, allow_synthetic_history=True)
    assert (settings.model_id, settings.tokenizer_id) == (DEFAULT_MODEL_ID, DEFAULT_TOKENIZER_ID)
    client = loaded_client(settings)

    models = client.get("/models").get_json()
    assert models["serving"] == "kronos"
    assert models["model"]["id"] == DEFAULT_MODEL_ID and models["model"]["sha"] == MODEL_SHA
    assert models["tokenizer"]["sha"] == TOKENIZER_SHA

    response = client.post("/predict", json=SEED_REQUEST)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["model"] == "kronos"
    assert body["metadata"]["model_revision"] == MODEL_SHA
    assert body["metadata"]["tokenizer"]["sha"] == TOKENIZER_SHA


def test_uncached_revision_fails_kronos_mode_naming_the_repo(hf_home: Path) -> None:
    settings = Settings(mode="kronos", model_revision="v9", allow_synthetic_history=True)
    with pytest.raises(ModelLoadError, match=DEFAULT_MODEL_ID):
        create_app(settings).extensions["kronos.service"].load()


def test_uncached_revision_makes_auto_mode_fall_back_with_the_reason(hf_home: Path) -> None:
    token = "hf_serviceTestSecret0123456789abcd"
    settings = Settings(mode="auto", model_revision="v9", hf_token=token)
    models = loaded_client(settings).get("/models").get_json()
    assert models["serving"] == "simulated"
    reason = models["fallback_reason"]
    assert DEFAULT_MODEL_ID in reason and "'v9'" in reason and "not in the cache" in reason
    assert token not in str(models)
