"""What the operator reads when weights cannot be had: each fallback said once, in words that match
what happened (the hub asked and silent, or never asked), with advice that is not the command that
just failed. The `kronos` command runs as a real process (its logging goes to stderr there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.live_server import refusing_port
from kronos_integration.config import DEFAULT_MODEL_ID
from kronos_integration.registry import ArtifactSpec, ModelLoadError, load_artifacts
from tests.checkpoints import GOLDEN
from tests.support import isolate_environment

REPO_ROOT = Path(__file__).resolve().parents[1]


def _kronos(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_", "HF_"))}
    return subprocess.run(
        [sys.executable, "-m", "kronos_integration", *args],
        capture_output=True,
        text=True,
        env={**clean, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1", **env},
        cwd=REPO_ROOT,
        timeout=180,
        check=False,
    )


def test_predict_in_auto_mode_says_the_fallback_once(tmp_path: Path) -> None:
    candles = str(GOLDEN / "candles.csv")
    result = _kronos(tmp_path, "predict", candles, "--horizon-days", "1", "--sample-count", "3")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("not in the cache") == 1, result.stderr
    assert "serving simulated" in result.stderr


def test_download_offline_advises_something_else_than_itself(tmp_path: Path) -> None:
    result = _kronos(tmp_path, "download")
    assert result.returncode == 1
    assert DEFAULT_MODEL_ID in result.stderr
    assert "HF_HUB_OFFLINE=1 kept the hub from being asked: unset it" in result.stderr
    assert "kronos_integration download" not in result.stderr


def test_an_unreachable_hub_is_said_to_have_been_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    isolate_environment(monkeypatch, tmp_path / "hf-home")
    with refusing_port() as closed_port:
        endpoint = f"http://127.0.0.1:{closed_port}"
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        with pytest.raises(ModelLoadError) as caught:
            load_artifacts(
                ArtifactSpec(DEFAULT_MODEL_ID),
                ArtifactSpec("NeoQuasar/Kronos-Tokenizer-base"),
                device=torch.device("cpu"),
                hub_timeout_s=2,
            )
    message = str(caught.value)
    assert f"the hub {endpoint} did not answer" in message
    assert "not asked" not in message and "kronos_integration download" not in message
    assert f"hub {endpoint} unreachable for {DEFAULT_MODEL_ID}" in caplog.text
