"""Shared fixtures. The chain is `settings -> app -> client`:

- `mode` ("simulated" by default; parametrize it with `indirect=True` for "kronos" or "auto")
- `settings`: a `Settings` for that mode: kronos loads the tiny checkpoints saved by
  `tests/checkpoints.py`; auto points at a model folder that does not exist, so it falls back
- `app`: `create_app(settings)` with the service loaded (what gunicorn's worker hook does)
- `client`: the Flask test client of `app`
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.settings import Settings
from tests.checkpoints import make_tiny_checkpoints

MODES = ("simulated", "kronos", "auto")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Tests share two cores with other work: keep torch to one thread."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model_dir, tokenizer_dir) of a tiny random Kronos saved with `save_pretrained`."""
    return make_tiny_checkpoints(tmp_path_factory.mktemp("tiny-checkpoints"))


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "simulated"))


@pytest.fixture
def settings(mode: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if mode == "simulated":
        return Settings(mode="simulated")
    if mode == "auto":
        return Settings(mode="auto", model_id=str(tmp_path / "no-such-model"))
    model_dir, tokenizer_dir = request.getfixturevalue("tiny_checkpoints")
    return Settings(
        mode="kronos",
        model_id=str(model_dir),
        tokenizer_id=str(tokenizer_dir),
        allow_synthetic_history=True,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    app.config["TESTING"] = True
    app.extensions["kronos.service"].load()
    yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
