"""`kronos backtest`: rolling origins of a repository CSV through the pipeline's backends, beside
the naive baselines, with its progress bar, JSON summary, text table and HTML report; and the
Kronos backend decoding a backtest's windows as batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.real_series import VENDORED_DIR, vendored
from kronos_integration.backends import create_backend
from kronos_integration.backends.base import ForecastTask
from kronos_integration.cli import main
from kronos_integration.config import ModelSettings
from kronos_integration.evaluation.report import summary_table
from kronos_integration.request import Sampling
from tests.support import assert_redacted, isolate_environment

IBM = VENDORED_DIR / "IBM.csv"
BASELINES = {"random_walk", "drift", "gaussian_random_walk"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No KRONOS_* variable from outside; an empty hub cache, offline."""
    isolate_environment(monkeypatch, tmp_path / "hf-home")


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["backtest", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_command_backtests_a_repository_csv(tmp_path: Path) -> None:
    """The installed entry point, 200 origins in simulated mode, offline: a progress bar on
    stderr, the table on stdout, the JSON summary and a self-contained report."""
    report, summary_file = tmp_path / "report.html", tmp_path / "summary.json"
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "kronos_integration", "backtest", str(IBM)),
            *("--mode", "simulated", "--calendar", "XNYS", "--origins", "200"),
            *("--report", str(report), "--json", str(summary_file)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "KRONOS_MODE": "kronos"},  # --mode wins over the setting
    )
    assert completed.returncode == 0, completed.stderr
    assert "200/200" in completed.stderr  # tqdm's bar, counted in origins
    summary = json.loads(summary_file.read_text())
    assert summary["backend"] == {
        "name": "simulated",
        "version": "statistical-simulator/garch-fhs-2",
        "fallback_reason": None,
    }
    assert summary["calendar"] == {"name": "XNYS", "source": "request"}
    assert summary["origins"] == 200 and summary["forecasts_per_model"] == 600
    assert set(summary["models"]) == {"simulated", *BASELINES}
    simulated = summary["models"]["simulated"]
    for horizon in ("1", "5", "20"):
        scores = simulated["horizons"][horizon]
        assert 0.7 <= scores["coverage_0.8"] <= 0.9, horizon
        assert scores["date_accuracy"] == 1.0  # every scored day is a real NYSE session
        assert summary["models"]["random_walk"]["horizons"][horizon]["coverage_0.8"] is None
    assert simulated["confidence"]["top_tenth"]["n"] > 0
    assert completed.stdout.splitlines()[0].split()[:3] == ["model", "days", "50%"]
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "<script" not in page and "http" not in page
    assert "XNYS" in page and "statistical-simulator/garch-fhs-2" in page


def test_auto_mode_falls_back_to_the_simulator_and_says_so(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    summary_file = tmp_path / "summary.json"
    status, out, err = backtest(
        capsys,
        *(IBM, "--mode", "auto", "--model", tmp_path / "no-model", "--origins", "12"),
        *("--horizon-days", "5,1", "--samples", "16", "--json", summary_file),
    )
    assert status == 0, err
    assert "serving the simulator" not in err  # said once, by the warning below (on stderr)
    assert str(tmp_path / "no-model") in caplog.text  # the log has it whole
    summary = json.loads(summary_file.read_text())
    assert summary["backend"]["name"] == "simulated"
    assert_redacted(summary["backend"]["fallback_reason"], str(tmp_path))
    assert summary["horizon_days"] == [1, 5]
    assert summary["calendar"]["source"] == "history"  # IBM is not an ISIN: inferred
    assert out.count("simulated") == 2  # one row per horizon


def test_conformal_rows_sit_beside_the_backend(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = backtest(
        capsys,
        *(IBM, "--mode", "simulated", "--origins", "8", "--horizon-days", "1,5"),
        *("--samples", "16", "--window", "200", "--conformal"),
    )
    assert status == 0, err
    assert "simulated+conformal" in out


def test_kronos_backtests_with_the_tiny_checkpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_checkpoints: tuple[Path, Path]
) -> None:
    model_dir, tokenizer_dir = tiny_checkpoints
    summary_file = tmp_path / "summary.json"
    status, _, err = backtest(
        capsys,
        *(IBM, "--mode", "kronos", "--model", model_dir, "--tokenizer", tokenizer_dir),
        *("--origins", "6", "--horizon-days", "1,3", "--samples", "4", "--window", "64"),
        *("--calendar", "XNYS", "--json", summary_file),
    )
    assert status == 0, err
    summary = json.loads(summary_file.read_text())
    assert summary["backend"]["name"] == "kronos"
    assert summary["backend"]["version"] == str(model_dir)
    assert set(summary["models"]) == {"kronos", *BASELINES}
    assert summary["models"]["kronos"]["horizons"]["3"]["n"] == 6


def test_kronos_decodes_windows_that_share_horizon_and_sampling_as_one_batch(
    tiny_checkpoints: tuple[Path, Path],
) -> None:
    """What the backtest hands it: tasks of one Sampling decode together (the same paths as one
    `forecast_batch` call), and a task of another length gets its own batch, in order."""
    model_dir, tokenizer_dir = tiny_checkpoints
    backend = create_backend(
        "kronos", ModelSettings(model_id=str(model_dir), tokenizer_id=str(tokenizer_dir))
    )
    candles = vendored("IBM")
    sampling = Sampling(sample_count=3, seed=11)
    windows = [candles.iloc[end - 64 : end] for end in (300, 310, 320)]
    futures = [pd.DatetimeIndex(candles.index[end : end + 2]) for end in (300, 310, 320)]
    odd_future = pd.DatetimeIndex(candles.index[330:333])
    tasks = [ForecastTask(w, f, sampling) for w, f in zip(windows, futures, strict=True)]
    tasks.insert(1, ForecastTask(candles.iloc[266:330], odd_future, sampling))
    paths = backend.forecast(tasks)
    batch = backend.predictor.forecast_batch(
        windows,
        [pd.DatetimeIndex(w.index) for w in windows],
        futures,
        2,
        sample_count=3,
        seed=11,
    )
    for got, expected in zip([paths[0], paths[2], paths[3]], batch, strict=True):
        np.testing.assert_array_equal(got, expected.paths)
    assert paths[1].shape == (3, 3, 6)


def test_bad_input_exits_2_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = backtest(capsys, tmp_path / "nope.csv", "--mode", "simulated")
    assert status == 2 and "nope.csv" in err
    short = tmp_path / "short.csv"
    vendored("IBM").iloc[:300].to_csv(short)
    status, _, err = backtest(capsys, short, "--mode", "simulated")
    assert status == 2 and "short.csv" in err and "no origin" in err
    status, _, err = backtest(capsys, IBM, "--mode", "simulated", "--calendar", "XXXX")
    assert status == 2 and "XXXX" in err
    status, _, err = backtest(capsys, IBM, "--report", tmp_path / "absent" / "r.html")
    assert status == 2 and "--report" in err
    with pytest.raises(SystemExit) as caught:
        main(["backtest", str(IBM), "--horizon-days", "1,1"])
    assert caught.value.code == 2
    assert "more than once" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["backtest", str(IBM), "--horizon-days", "1,abc"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "'abc' is not a positive integer in '1,abc'" in err and "_horizon_list" not in err
    status, _, err = backtest(capsys, IBM, "--mode", "simulated", "--samples", "100000")
    assert status == 2 and "--samples: at most 64 (KRONOS_MAX_SAMPLE_COUNT=64)" in err


def test_the_text_table_has_a_row_per_model_and_horizon() -> None:
    scores = {
        "coverage_0.5": 0.5,
        "coverage_0.8": 0.8,
        "coverage_0.9": 0.9,
        "pinball_vs_baseline": 0.97,
        "crps_vs_baseline": 0.98,
        "mase": 1.0,
        "direction_hit": 0.5,
        "brier": 0.25,
        "date_accuracy": 1.0,
    }
    point = {**scores, "coverage_0.5": None, "coverage_0.8": None, "brier": None}
    summary = {
        "models": {
            "simulated": {"horizons": {"1": scores, "5": scores}},
            "random_walk": {"horizons": {"1": point, "5": point}},
        }
    }
    lines = summary_table(summary).splitlines()
    rows = [line.split() for line in lines[2:] if line]
    assert [(r[0], r[1]) for r in rows] == [
        ("simulated", "1"),
        ("random_walk", "1"),
        ("simulated", "5"),
        ("random_walk", "5"),
    ]
    assert rows[0][2:4] == ["50.0", "%"] and rows[1][2] == "—"
