"""Conformal calibration in the pipeline: the request field and `KRONOS_CALIBRATE`, one batched
backend call for the inner origins, `metadata.calibration`, `kronos predict --calibrate`, and a
backend whose bands are too narrow widened on real data (IBM, vendored)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from app.schemas import PredictResponseSchema
from benchmarks.real_series import VENDORED_DIR, vendored
from kronos_integration.backends.base import ForecastTask
from kronos_integration.backends.simulated import SimulatedBackend
from kronos_integration.cli import main
from kronos_integration.config import ForecastSettings, SettingsError
from kronos_integration.history import History
from kronos_integration.pipeline import ForecastResult, run_forecast
from kronos_integration.request import ForecastRequest, Sampling
from tests.candles import candle_records
from tests.support import assert_problem, isolate_environment, loaded_app, make_settings

SYMBOL = "IBM"


class RecordingBackend(SimulatedBackend):
    """The real simulator, keeping each call's tasks (to see how the pipeline batches), saying
    it `batches` or not."""

    def __init__(self, batches: bool) -> None:
        super().__init__(512)
        self.info = dataclasses.replace(self.info, batches=batches)
        self.calls: list[Sequence[ForecastTask]] = []

    def forecast(self, tasks: Sequence[ForecastTask]) -> list[np.ndarray]:
        self.calls.append(list(tasks))
        return super().forecast(tasks)


def ibm(bars: int = 600) -> History:
    return History(vendored("IBM").iloc[-bars:], "request")


def request(
    *, sample_count: int = 64, temperature: float = 1.0, calibrate: bool | None = None
) -> ForecastRequest:
    return ForecastRequest(
        SYMBOL,
        horizon_days=5,
        instrument_type="symbol",
        sample_count=sample_count,
        temperature=temperature,
        seed=3,
        calibrate=calibrate,
    )


def band(result: ForecastResult, day: int) -> float:
    quantiles = result.days[day]["quantiles"]
    return float(quantiles["0.9"] - quantiles["0.1"])


def test_a_too_narrow_backend_is_widened_through_the_pipeline() -> None:
    """At temperature 0.4 the simulator's bands are far too narrow; calibrated, every day's
    P10–P90 band is wider, the median stays, and the metadata says by how much and why."""
    backend = SimulatedBackend(512)
    raw = run_forecast(backend, ibm(), request(temperature=0.4), ForecastSettings())
    calibrated = run_forecast(
        backend, ibm(), request(temperature=0.4, calibrate=True), ForecastSettings()
    )
    meta = calibrated.to_dict()["metadata"]["calibration"]
    assert meta["requested"] and meta["calibrated"]
    assert meta["method"] == "split-conformal band scaling"
    assert meta["origins"] == 30 and meta["checked_steps"] == 5
    assert meta["coverage_before"]["0.8"] < 0.7  # the raw band missed many inner outcomes
    assert meta["factor_first_step"] > 1.3 and meta["factor_last_step"] > 1.3  # at this seed
    assert meta["reason"] is None and meta["elapsed_ms"] > 0
    for day in range(5):
        assert band(calibrated, day) > 1.1 * band(raw, day)
        assert calibrated.days[day]["quantiles"]["0.5"] == pytest.approx(
            raw.days[day]["quantiles"]["0.5"], rel=1e-6
        )
    assert raw.to_dict()["metadata"]["calibration"]["requested"] is False


@pytest.mark.parametrize("batches", [True, False])
def test_the_inner_origins_are_one_backend_call(batches: bool) -> None:
    """A backend that decodes batches gets one `Sampling` for all inner origins; any other gets
    a seed per origin."""
    backend = RecordingBackend(batches)
    settings = ForecastSettings(calibrate=True, calibration_origins=12)
    result = run_forecast(backend, ibm(), request(sample_count=8), settings)
    outer, inner = backend.calls
    assert len(outer) == 1 and len(inner) == 12
    seeds = {task.sampling.seed for task in inner}
    assert len(seeds) == (1 if batches else 12) and 3 not in seeds
    unseeded = {dataclasses.replace(task.sampling, seed=0) for task in inner}
    assert unseeded == {Sampling(sample_count=8, seed=0)}
    assert {len(task.candles) for task in inner} == {result.lookback}  # as much as the outer
    assert {len(task.future) for task in inner} == {5}
    assert inner[-1].future[-1] == ibm().candles.index[-1]  # the last inner future: the last bar
    assert result.calibration["origins"] == 12


def test_the_request_overrides_the_setting_and_short_history_says_why() -> None:
    backend = SimulatedBackend(512)
    on = ForecastSettings(calibrate=True)
    off = run_forecast(backend, ibm(), request(calibrate=False), on).calibration
    assert off["requested"] is False and off["reason"] == "not requested"
    short = run_forecast(backend, ibm(120), request(), on).calibration
    assert short["requested"] and not short["calibrated"] and short["origins"] == 0
    assert "120 bars" in short["reason"]
    assert short["factor_first_step"] is None


def test_kronos_calibrate_is_a_setting() -> None:
    assert ForecastSettings.from_env({}).calibrate is False
    assert ForecastSettings.from_env({"KRONOS_CALIBRATE": "yes"}).calibrate is True
    with pytest.raises(SettingsError, match="KRONOS_CALIBRATE"):
        ForecastSettings.from_env({"KRONOS_CALIBRATE": "maybe"})
    with pytest.raises(SettingsError, match="KRONOS_CALIBRATION_ORIGINS"):
        ForecastSettings.from_env({"KRONOS_CALIBRATION_ORIGINS": "2"})


@pytest.mark.parametrize("mode", ["simulated", "kronos"], indirect=True)
def test_predict_reports_its_calibration(client: FlaskClient, mode: str) -> None:
    body = {
        "symbol": SYMBOL,
        "horizon_days": 3,
        "candles": candle_records(vendored("IBM").iloc[-200:]),
        "sample_count": 5,  # odd: the median is a sample, which calibration keeps
        "seed": 1,
    }
    plain = client.post("/predict", json=body).get_json()
    calibrated = client.post("/predict", json={**body, "calibrate": True}).get_json()
    for document in (plain, calibrated):
        document["metadata"].pop("worker_pid")
        assert PredictResponseSchema(partial=("metadata.worker_pid",)).validate(document) == {}
    assert plain["metadata"]["calibration"]["requested"] is False
    meta = calibrated["metadata"]["calibration"]
    assert meta["calibrated"] and meta["origins"] == 30 and meta["checked_steps"] == 3
    assert plain["predictions"][0]["quantiles"]["0.5"] == pytest.approx(
        calibrated["predictions"][0]["quantiles"]["0.5"]
    )


def test_the_setting_calibrates_by_default_and_the_field_is_checked() -> None:
    client = loaded_app(make_settings(mode="simulated", calibrate=True)).test_client()
    body = {"symbol": SYMBOL, "horizon_days": 1, "candles": candle_records(vendored("IBM")[-200:])}
    answer = client.post("/predict", json=body).get_json()
    assert answer["metadata"]["calibration"]["calibrated"] is True
    assert_problem(client.post("/predict", json={**body, "calibrate": "often"}), 422, "calibrate")


def test_the_openapi_document_describes_calibration(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    request_schema = next(s for name, s in schemas.items() if name.startswith("PredictRequest"))
    assert request_schema["properties"]["calibrate"]["type"] == "boolean"
    metadata = next(s for name, s in schemas.items() if name.startswith("PredictMetadata"))
    assert "calibration" in metadata["required"]
    calibration = next(s for name, s in schemas.items() if name.startswith("CalibrationInfo"))
    assert {"requested", "calibrated", "origins", "reason"} <= set(calibration["required"])


def test_the_command_line_calibrates_on_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolate_environment(monkeypatch, tmp_path / "hf-home")
    predict = ["predict", str(VENDORED_DIR / "IBM.csv"), "--horizon-days", "2", "--json"]
    options = ["--mode", "simulated", "--sample-count", "9", "--seed", "2"]
    assert main([*predict, *options, "--calibrate"]) == 0
    calibration = json.loads(capsys.readouterr().out)["metadata"]["calibration"]
    assert calibration["calibrated"] and calibration["origins"] == 30
    monkeypatch.setenv("KRONOS_CALIBRATE", "1")
    assert main([*predict, *options, "--no-calibrate"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["calibration"]["requested"] is False
