"""`python -m kronos_integration`: predict with the golden tiny checkpoints, download/info against a
hub cache laid out like huggingface_hub's, push's argument handling and offline error path.

`push` is not exercised against a hub here (no network, and a fake of the upload protocol would test
the fake): only its argument checks and the error it gives when the hub cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from app.schemas import PredictResponseSchema
from kronos_integration.cli import main
from kronos_integration.config import DEFAULT_MODEL_ID, DEFAULT_TOKENIZER_ID
from tests.checkpoints import GOLDEN
from tests.hub_fixtures import build_hub_cache, fake_sha, point_hub_at, running_fake_hub
from tests.support import assert_redacted, isolate_environment, loaded_app, make_settings

MODEL_DIR = GOLDEN / "tiny-model"
TOKENIZER_DIR = GOLDEN / "tiny-tokenizer"
CANDLES = GOLDEN / "candles.csv"
TOKEN = "hf_cliTestSecret0123456789abcdefgh"
LOCAL = ["--model", str(MODEL_DIR), "--tokenizer", str(TOKENIZER_DIR)]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No KRONOS_* or HF_* variable from outside; an empty hub cache, offline."""
    isolate_environment(monkeypatch, tmp_path / "hf-home")


@pytest.fixture
def warm_cache(tmp_path: Path) -> Path:
    """HF_HOME (the one `clean_environment` points at) with both default repos cached."""
    hf_home = tmp_path / "hf-home"
    build_hub_cache(hf_home / "hub", DEFAULT_MODEL_ID, MODEL_DIR, fake_sha("cli-model"))
    build_hub_cache(hf_home / "hub", DEFAULT_TOKENIZER_ID, TOKENIZER_DIR, fake_sha("cli-tok"))
    return hf_home


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


PREDICT = ["predict", str(CANDLES), "--horizon-days", "1", "--sample-count", "3", "--seed", "7"]


def test_predict_prints_a_reproducible_day_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, first, _ = run_cli(capsys, *PREDICT, *LOCAL)
    assert status == 0
    lines = first.strip().splitlines()
    assert lines[0].split() == [
        *("date", "predicted_price", "q0.1", "q0.5", "q0.9", "probability_up", "confidence")
    ]
    assert len(lines) == 2 + 1  # header, index name, 1 day
    assert lines[2].split()[:2] == ["1", "2024-07-01"]
    assert run_cli(capsys, *PREDICT, *LOCAL)[1] == first  # same seed, same forecast


def test_predict_json_is_the_api_document(capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--json", "--quantiles", "0.25,0.75", "--include-path"]
    status, out, _ = run_cli(capsys, *PREDICT, *LOCAL, *options)
    assert status == 0
    document = json.loads(out)
    assert (
        PredictResponseSchema().validate(
            {**document, "metadata": {**document["metadata"], "worker_pid": 1}}
        )
        == {}
    )
    assert (document["model"], document["model_version"]) == ("kronos", str(MODEL_DIR))
    assert document["symbol"] == "candles" and document["prediction_horizon_days"] == 1
    assert document["metadata"]["calendar"] == {"name": "history", "source": "history"}
    meta = document["metadata"]
    assert (meta["seed"], meta["sample_count"], meta["quantiles"]) == (7, 3, [0.25, 0.75])
    assert meta["fallback_reason"] is None and meta["history_source"] == "request"
    (day,) = document["predictions"]
    assert set(day["quantiles"]) == {"0.25", "0.75"}
    assert day["quantiles"]["0.25"] <= day["quantiles"]["0.75"]
    last_candle = pd.Timestamp(pd.read_csv(CANDLES)["timestamps"].iloc[-1])
    stamps = [pd.Timestamp(bar["timestamp"]) for bar in document["path"]]
    assert stamps[0] > last_candle and stamps == sorted(stamps)
    assert stamps[-1] == pd.Timestamp(day["timestamp"])


def test_predict_writes_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plot = tmp_path / "forecast.png"
    status, _, err = run_cli(capsys, *PREDICT, *LOCAL, "--plot", str(plot))
    assert status == 0 and str(plot) in err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_predict_in_simulated_mode_needs_no_weights(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plot = tmp_path / "simulated.png"
    status, out, _ = run_cli(capsys, *PREDICT, "--mode", "simulated", "--json", "--plot", str(plot))
    assert status == 0 and plot.is_file()
    document = json.loads(out)
    assert document["model"] == "simulated" and document["metadata"]["fallback_reason"] is None


def test_predict_from_the_hub_cache_with_default_ids(
    capsys: pytest.CaptureFixture[str], warm_cache: Path
) -> None:
    status, out, _ = run_cli(capsys, *PREDICT, "--json")
    assert status == 0
    document = json.loads(out)
    assert document["model_version"] == DEFAULT_MODEL_ID
    assert document["metadata"]["model_revision"] == fake_sha("cli-model")
    tokenizer = document["metadata"]["tokenizer"]
    assert (tokenizer["id"], tokenizer["sha"]) == (DEFAULT_TOKENIZER_ID, fake_sha("cli-tok"))


def test_predict_rejects_candles_without_a_close_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.csv"
    pd.read_csv(CANDLES).drop(columns=["close"]).to_csv(broken, index=False)
    status, out, err = run_cli(capsys, "predict", str(broken), "--horizon-days", "1", *LOCAL)
    assert status == 2 and "close" in err and out == ""


def test_predict_with_a_cold_cache_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, _, err = run_cli(capsys, *PREDICT, "--mode", "kronos")
    assert status == 1 and DEFAULT_MODEL_ID in err and "not in the cache" in err
    status, out, _ = run_cli(capsys, *PREDICT, "--json")  # auto: the simulator, saying why
    assert status == 0  # the why on stderr: tests/test_load_messages.py
    document = json.loads(out)
    assert document["model"] == "simulated"
    reason = assert_redacted(document["metadata"]["fallback_reason"], str(tmp_path))
    assert DEFAULT_MODEL_ID in reason and "not in the cache <path>" in reason


def test_unknown_device_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, *PREDICT, *LOCAL, "--device", "cuda:7")
    assert status == 2 and "cuda:7" in err


def test_download_reports_the_cached_commits(
    capsys: pytest.CaptureFixture[str], warm_cache: Path
) -> None:
    status, out, _ = run_cli(capsys, "download")
    assert status == 0
    assert f"{DEFAULT_MODEL_ID}@main: commit {fake_sha('cli-model')} (cache)" in out
    assert f"{DEFAULT_TOKENIZER_ID}@main: commit {fake_sha('cli-tok')} (cache)" in out


def test_download_of_an_uncached_revision_offline_fails(
    capsys: pytest.CaptureFixture[str], warm_cache: Path
) -> None:
    status, _, err = run_cli(capsys, "download", "--revision", "v9")
    assert status == 1 and DEFAULT_MODEL_ID in err and "'v9'" in err


def test_download_sends_hf_token_and_never_prints_it(
    capsys: pytest.CaptureFixture[str], warm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {
        DEFAULT_MODEL_ID: (200, fake_sha("cli-model"), None),
        DEFAULT_TOKENIZER_ID: (401, None, None),
    }
    with running_fake_hub(answers) as hub:
        point_hub_at(monkeypatch, warm_cache, offline=False, endpoint=hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        status, out, err = run_cli(capsys, "-v", "download")
    assert hub.authorizations == [f"Bearer {TOKEN}"] * 2
    assert f"commit {fake_sha('cli-model')} (hub)" in out
    assert status == 1 and DEFAULT_TOKENIZER_ID in err and "HF_TOKEN" in err
    assert TOKEN not in out + err


def test_info_says_what_would_load_from_where(
    capsys: pytest.CaptureFixture[str], warm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("KRONOS_TOKENIZER_ID", str(TOKENIZER_DIR))
    status, out, _ = run_cli(capsys, "info", "--json")
    assert status == 0 and TOKEN not in out
    report = json.loads(out)
    model, tokenizer = report["artifacts"]
    assert (model["id"], model["sha"]) == (DEFAULT_MODEL_ID, fake_sha("cli-model"))
    assert "hub cache" in model["where"]
    assert tokenizer["sha"] is None and tokenizer["where"].startswith("local folder")
    assert report["device"] == "cpu" and report["hf_token"] == "set" and report["offline"]
    assert report["hub_cache"] == str(warm_cache / "hub")


def test_push_argument_checks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["push", str(MODEL_DIR), "me/kronos"])  # --kind is required
    assert caught.value.code == 2
    status, _, err = run_cli(capsys, "push", str(MODEL_DIR), "a/b/c", "--kind", "model")
    assert status == 2 and "ORG/NAME" in err
    status, _, err = run_cli(capsys, "push", str(tmp_path), "me/kronos", "--kind", "model")
    assert status == 1 and "config.json missing" in err
    status, _, err = run_cli(capsys, "push", str(MODEL_DIR), "me/kronos", "--kind", "tokenizer")
    assert status == 1 and "KronosTokenizer checkpoint" in err


def test_push_offline_fails_naming_the_repo_without_the_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    status, out, err = run_cli(
        capsys, "push", str(MODEL_DIR), "me/kronos-tiny", "--kind", "model", "--private"
    )
    assert status == 1 and "me/kronos-tiny" in err and "push failed" in err
    assert TOKEN not in out + err


def test_module_entry_point_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_", "HF_"))}
    env |= {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "kronos_integration", "info"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"model: {DEFAULT_MODEL_ID} @ main" in result.stdout
    assert "loading will fail" in result.stdout


def test_a_short_lookback_keeps_the_trading_grid_of_the_whole_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The last 40 bars all lie on one afternoon; the grid must still come from the whole file.
    options = ["--json", "--include-path", "--lookback", "40", "--horizon-days", "2"]
    status, out, _ = run_cli(capsys, *PREDICT, *LOCAL, *options)
    assert status == 0
    document = json.loads(out)
    assert document["metadata"]["lookback_periods"] == 40
    stamps = [pd.Timestamp(bar["timestamp"]) for bar in document["path"]]
    golden = pd.read_csv(GOLDEN / "future_timestamps.csv")["timestamps"]
    assert stamps[: len(golden)] == [pd.Timestamp(value) for value in golden]


def test_bad_predict_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    plot = ["--plot", "/nonexistent-folder/forecast.png"]
    status, out, err = run_cli(capsys, *PREDICT, *LOCAL, *plot)
    assert status == 2 and "/nonexistent-folder does not exist" in err and out == ""
    status, out, err = run_cli(capsys, *PREDICT, *LOCAL, "--sample-count", "100000")
    assert status == 2 and "--sample-count: at most 64 (KRONOS_MAX_SAMPLE_COUNT=64)" in err
    options = (["--clip", "-1"], ["--clip", "x"], ["--mode", "fast"], ["--horizon-days", "0"])
    for option in options:
        with pytest.raises(SystemExit) as caught:
            main([*PREDICT, *LOCAL, *option])
        assert caught.value.code == 2
        assert option[0] in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["simulated", "kronos"])
def test_the_cli_and_the_api_give_the_same_days(
    capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    options = ["--mode", mode, "--json", "--horizon-days", "2", "--quantiles", "0.05,0.5,0.95"]
    options += ["--instrument", "US0378331005"]  # its exchange's calendar, in both
    status, out, _ = run_cli(capsys, *PREDICT, *LOCAL, *options)
    assert status == 0
    settings = make_settings(mode=mode, model_id=str(MODEL_DIR), tokenizer_id=str(TOKENIZER_DIR))
    frame = pd.read_csv(CANDLES).rename(columns={"timestamps": "timestamp"})
    request = {
        "isin": "US0378331005",
        "horizon_days": 2,
        "sample_count": 3,
        "seed": 7,
        "quantiles": [0.05, 0.5, 0.95],
        "candles": frame.to_dict(orient="records"),
    }
    answer = loaded_app(settings).test_client().post("/predict", json=request).get_json()
    assert answer["model"] == mode
    assert answer["predictions"] == json.loads(out)["predictions"]


def test_info_says_a_malformed_repo_id_will_not_load(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "info", "--json", "--model", "my org/kronos")
    model = json.loads(out)["artifacts"][0]
    assert status == 0 and "nor a hub repo id" in model["where"]
    assert "loading will fail" in model["where"]


def test_predict_prints_the_answers_warnings_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Daily bars on every calendar day, forecast on XNYS: the table on stdout, and on stderr
    the warning the JSON document carries as metadata.warnings (weekend bars)."""
    frame = pd.read_csv(CANDLES).tail(60).reset_index(drop=True)
    frame["timestamps"] = pd.date_range("2024-03-01", periods=60, freq="D").strftime("%Y-%m-%d")
    daily = tmp_path / "daily.csv"
    frame.to_csv(daily, index=False)
    args = ("predict", str(daily), "--horizon-days", "2", "--mode", "simulated")
    args = (*args, "--calendar", "XNYS")
    status, out, err = run_cli(capsys, *args, "--json")
    warnings = json.loads(out)["metadata"]["warnings"]
    assert status == 0 and len(warnings) == 1 and "outside the sessions" in warnings[0]
    status, out, err = run_cli(capsys, *args)
    assert status == 0 and out.splitlines()[0].split()[0] == "date"
    assert f"warning: {warnings[0]}" in err.splitlines()
