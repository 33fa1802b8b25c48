"""The backend seam: the registry, `auto`'s fallback, and each shipped backend through the
library's pipeline (no Flask here)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from app.settings import Settings
from app.state import worker_state
from kronos_integration.backends import BACKENDS, create_backend, load_backend, register_backend
from kronos_integration.backends.kronos import KronosBackend
from kronos_integration.candles import validate_candles
from kronos_integration.config import ForecastSettings, ModelSettings, SettingsError
from kronos_integration.errors import DeadlineExceededError, InvalidRequestError
from kronos_integration.history import History
from kronos_integration.model.kernels import dtype_supported
from kronos_integration.pipeline import run_forecast, warm_up
from kronos_integration.request import ForecastRequest
from tests.candles import make_candles
from tests.support import SEED_REQUEST, assert_redacted, loaded_app, make_settings


@pytest.fixture
def last_close() -> Iterator[str]:
    register_backend("last_close", "tests.last_close_backend:load")  # the one line
    yield "last_close"
    BACKENDS.pop("last_close")


def test_a_registered_backend_is_a_mode_and_serves_predict(last_close: str) -> None:
    assert Settings.from_env({"KRONOS_MODE": last_close}).mode == last_close
    settings = make_settings(mode=last_close, allow_synthetic_history=True)
    client = loaded_app(settings).test_client()
    body = client.post("/predict", json={**SEED_REQUEST, "sample_count": 3}).get_json()
    assert body["model"] == last_close and body["model_version"] == "last-close-1"
    assert {day["predicted_price"] for day in body["predictions"]} == {body["current_price"]}
    assert body["metadata"]["top_k"] is None  # it applies no top-k, so none is reported
    assert client.get("/models").get_json()["serving"] == last_close


def test_unknown_modes_are_refused_and_auto_is_not_a_backend() -> None:
    with pytest.raises(ValueError, match="KRONOS_MODE"):
        ForecastSettings.from_env({"KRONOS_MODE": "last_close"})
    with pytest.raises(ValueError, match="mode"):
        register_backend("auto", "tests.last_close_backend:load")


def test_auto_falls_back_to_the_simulator_and_says_why(tmp_path) -> None:
    settings = ModelSettings(model_id=str(tmp_path / "absent"), hf_token="hf_secretvalue")
    loaded = load_backend("auto", settings, warm_up)
    assert loaded.backend.info.name == "simulated"
    reason = assert_redacted(loaded.fallback_reason, str(tmp_path))
    assert reason == "ModelLoadError: cannot load '<path>': no such local folder"
    assert load_backend("simulated", settings, warm_up).fallback_reason is None


def test_auto_serves_kronos_when_it_loads(tiny_checkpoints) -> None:
    model_dir, tokenizer_dir = tiny_checkpoints
    settings = ModelSettings(model_id=str(model_dir), tokenizer_id=str(tokenizer_dir))
    loaded = load_backend("auto", settings, warm_up)
    assert loaded.backend.info.name == "kronos" and loaded.fallback_reason is None
    assert loaded.backend.info.artifacts["model"].id == str(model_dir)


def _history(bars: int = 120) -> History:
    return History(validate_candles(make_candles(bars)), "request")


@pytest.mark.parametrize("name", ["simulated", "random_walk", "kronos"])
def test_every_backend_runs_through_the_pipeline(name: str, tiny_checkpoints) -> None:
    model_dir, tokenizer_dir = tiny_checkpoints
    backend = create_backend(
        name, ModelSettings(model_id=str(model_dir), tokenizer_id=str(tokenizer_dir))
    )
    request = ForecastRequest("US0378331005", horizon_days=4, sample_count=5, seed=1)
    result = run_forecast(backend, _history(), request, ForecastSettings())
    assert result.forecast.paths.shape == (5, 4, 6)
    assert np.isfinite(result.forecast.paths).all()
    again = run_forecast(backend, _history(), request, ForecastSettings())
    np.testing.assert_array_equal(result.forecast.paths, again.forecast.paths)
    document = result.to_dict()
    assert document["model"] == name and len(document["predictions"]) == 4


def test_the_random_walk_has_the_windows_volatility_and_no_drift() -> None:
    backend = create_backend("random_walk", ModelSettings())
    history = _history(400)
    request = ForecastRequest("US0378331005", horizon_days=1, sample_count=20_000, seed=3)
    result = run_forecast(backend, history, request, ForecastSettings())
    window = history.candles["close"].iloc[-result.lookback :]
    moves = np.log(result.forecast.paths[:, 0, 3] / window.iloc[-1])
    sigma = np.std(np.diff(np.log(window.to_numpy())))
    assert abs(moves.mean()) < 4 * sigma / np.sqrt(20_000)
    assert moves.std() == pytest.approx(sigma, rel=0.03)


def test_the_pipeline_refuses_what_the_backend_cannot_do(tiny_checkpoints) -> None:
    model_dir, tokenizer_dir = tiny_checkpoints
    small = ModelSettings(model_id=str(model_dir), tokenizer_id=str(tokenizer_dir), max_context=64)
    kronos = create_backend("kronos", small)
    hourly = History(validate_candles(make_candles(100, freq="h", start="2025-03-03")), "request")
    with pytest.raises(InvalidRequestError, match="KRONOS_MAX_CONTEXT=64") as caught:
        run_forecast(kronos, hourly, ForecastRequest("X", horizon_days=3), ForecastSettings())
    assert caught.value.field == "horizon_days"
    late = ForecastRequest("X", horizon_days=2, sample_count=1)
    with pytest.raises(DeadlineExceededError):
        run_forecast(kronos, _history(), late, ForecastSettings(), deadline=time.monotonic() - 1)


def test_kronos_dtype_is_read_validated_and_refused_where_the_device_cannot_run_it(
    tiny_checkpoints,
) -> None:
    assert ModelSettings.from_env({}).dtype == "float32"
    assert ModelSettings.from_env({"KRONOS_DTYPE": "BFloat16"}).dtype == "bfloat16"
    with pytest.raises(SettingsError, match="KRONOS_DTYPE='float64' is invalid") as bad:
        ModelSettings.from_env({"KRONOS_DTYPE": "float64"})
    assert bad.value.variable == "KRONOS_DTYPE"
    model_dir, tokenizer_dir = tiny_checkpoints
    half = ModelSettings(model_id=str(model_dir), tokenizer_id=str(tokenizer_dir), dtype="float16")
    for mode in ("kronos", "auto"):  # auto mode does not fall back over a bad setting
        with pytest.raises(SettingsError, match=r"KRONOS_DTYPE='float16'.*a dtype cpu runs"):
            load_backend(mode, half, warm_up)


@pytest.mark.skipif(
    not dtype_supported("cpu", "bfloat16"), reason="this CPU has no native bfloat16 arithmetic"
)
def test_kronos_dtype_bfloat16_serves_and_says_so(tiny_checkpoints) -> None:
    model_dir, tokenizer_dir = tiny_checkpoints
    app = loaded_app(
        make_settings(
            mode="kronos",
            model_id=str(model_dir),
            tokenizer_id=str(tokenizer_dir),
            allow_synthetic_history=True,
            dtype="bfloat16",
        )
    )
    client = app.test_client()
    assert client.get("/models").get_json()["dtype"] == "bfloat16"
    answer = client.post("/predict", json={**SEED_REQUEST, "seed": 3})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["metadata"]["dtype"] == "bfloat16"
    backend = worker_state(app).backend
    assert isinstance(backend, KronosBackend) and backend.predictor.dtype == torch.bfloat16
