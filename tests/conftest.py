"""Shared fixtures. The chain is `settings -> app -> client`:

- `mode` ("simulated" by default; parametrize it with `indirect=True` for "kronos" or "auto")
- `settings`: a `Settings` for that mode: kronos loads the tiny checkpoints saved by
  `tests/checkpoints.py`; auto points at a model folder that does not exist, so it falls back
- `app`: `create_app(settings)` with its backend loaded (what gunicorn's worker hook does)
- `client`: the Flask test client of `app`
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from flask import Flask
from flask.testing import FlaskClient

from app.settings import Settings
from tests.canaries import HF_TOKEN_CANARY, SECRETS
from tests.checkpoints import make_tiny_checkpoints
from tests.support import loaded_app, make_settings

MODES = ("simulated", "kronos", "auto")

NO_SKIPS_ENV = "KRONOS_TESTS_NO_SKIPS"
"""Set to 1 (as `.ci/run` does), a skipped test fails the run unless it needs a GPU."""
_DISALLOWED_SKIPS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_DISALLOWED_SKIPS] = []


def _needs_a_gpu(item: pytest.Item, reason: str) -> bool:
    """Marked `gpu`, or skipped for want of CUDA."""
    return item.get_closest_marker("gpu") is not None or "CUDA" in reason


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if not _needs_a_gpu(item, reason):
            item.config.stash[_DISALLOWED_SKIPS].append(f"{item.nodeid}: {reason}")
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    skipped = session.config.stash[_DISALLOWED_SKIPS]
    if os.environ.get(NO_SKIPS_ENV) == "1" and skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    skipped = config.stash[_DISALLOWED_SKIPS]
    if skipped and os.environ.get(NO_SKIPS_ENV) == "1":
        terminalreporter.section(f"{NO_SKIPS_ENV}=1: only GPU tests may skip", sep="=", red=True)
        for line in skipped:
            terminalreporter.line(line)


class _LogRecorder(logging.Handler):
    """Keeps every formatted log line (traceback included) emitted in this process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter().format(record))


def _leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture(scope="session", autouse=True)
def _secret_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The whole run has `HF_TOKEN` set to a canary (every gunicorn a test starts inherits it);
    no response of a Flask test client, no log line of this process and no log file a test
    wrote may contain it, nor the API-key canaries the auth tests configure."""
    previous = os.environ.get("HF_TOKEN")
    os.environ["HF_TOKEN"] = HF_TOKEN_CANARY
    recorder = _LogRecorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    original_open = FlaskClient.open

    def scanned_open(self: FlaskClient, *args: Any, **kwargs: Any) -> Any:
        response = original_open(self, *args, **kwargs)
        shown = response.get_data(as_text=True) + str(response.headers)
        assert not _leaked(shown), f"a response shows a secret: {_leaked(shown)}"
        return response

    FlaskClient.open = scanned_open  # type: ignore[method-assign]
    try:
        yield
    finally:
        FlaskClient.open = original_open  # type: ignore[method-assign]
        root.removeHandler(recorder)
        if previous is None:
            os.environ.pop("HF_TOKEN", None)
        else:
            os.environ["HF_TOKEN"] = previous
    leaks = [line for line in recorder.lines if _leaked(line)]
    for log_file in tmp_path_factory.getbasetemp().rglob("*.log"):
        leaks += [
            f"{log_file}: {line}"
            for line in log_file.read_text(errors="replace").splitlines()
            if _leaked(line)
        ]
    assert not leaks, f"secrets in {len(leaks)} log line(s), e.g. {leaks[:3]}"


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
        return make_settings(mode="simulated")
    if mode == "auto":
        return make_settings(mode="auto", model_id=str(tmp_path / "no-such-model"))
    model_dir, tokenizer_dir = request.getfixturevalue("tiny_checkpoints")
    return make_settings(
        mode="kronos",
        model_id=str(model_dir),
        tokenizer_id=str(tokenizer_dir),
        allow_synthetic_history=True,
    )


@pytest.fixture
def app(settings: Settings) -> Flask:
    return loaded_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
