"""POST /backtest through Flask's test client: the serving backend on rolling origins of a real
series (IBM, vendored), beside the baselines, within tight limits; bad input is problem+json
naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.schemas import BacktestResponseSchema
from benchmarks.real_series import vendored
from tests.candles import candle_records
from tests.support import assert_problem, loaded_app, make_settings

IBM = candle_records(vendored("IBM").iloc[-700:])
REQUEST = {"symbol": "IBM", "candles": IBM, "horizon_days": [5, 1], "origins": 12, "samples": 16}


@pytest.mark.parametrize("mode", ["simulated", "kronos"], indirect=True)
def test_a_backtest_scores_the_serving_backend_beside_the_baselines(
    client: FlaskClient, mode: str
) -> None:
    response = client.post("/backtest", json={**REQUEST, "calendar": "XNYS", "window": 200})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert BacktestResponseSchema().validate(body) == {}
    assert body["backend"]["name"] == mode and body["backend"]["fallback_reason"] is None
    assert body["calendar"] == {"name": "XNYS", "source": "request"}
    assert body["history_source"] == "request"
    assert body["horizon_days"] == [1, 5] and body["origins"] == 12
    assert body["window"] == 200 and body["samples"] == 16 and body["series"] == ["IBM"]
    assert set(body["models"]) == {mode, "random_walk", "drift", "gaussian_random_walk"}
    scores = body["models"][mode]["horizons"]["5"]
    assert scores["n"] == 12 and 0 <= scores["coverage_0.8"] <= 1
    assert scores["date_accuracy"] == 1.0
    assert body["models"]["random_walk"]["horizons"]["1"]["coverage_0.8"] is None
    assert body["models"]["random_walk"]["confidence"] is None
    assert body["models"][mode]["confidence"]["top_tenth"]["n"] >= 1
    bins = body["models"][mode]["reliability"]  # 24 forecasts (12 origins, 2 horizons)
    assert [b["n"] for b in bins] == [3, 3, 3, 3, 2, 2, 2, 2, 2, 2]
    assert all(0 <= b["p_up"] <= 1 and 0 <= b["observed"] <= 1 for b in bins)
    assert [b["p_up"] for b in bins] == sorted(b["p_up"] for b in bins)
    assert body["models"]["random_walk"]["reliability"] is None


def test_the_same_seed_gives_the_same_scores(client: FlaskClient) -> None:
    first = client.post("/backtest", json={**REQUEST, "seed": 4}).get_json()
    again = client.post("/backtest", json={**REQUEST, "seed": 4}).get_json()
    assert first["models"] == again["models"]
    assert first["calendar"]["source"] == "history"  # a symbol, no calendar given: inferred


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"origins": 101}, "origins", "KRONOS_MAX_BACKTEST_ORIGINS=100"),
        ({"origins": 0}, "origins", ""),
        ({"horizon_days": [1, 31]}, "horizon_days", "KRONOS_MAX_HORIZON_DAYS=30"),
        ({"horizon_days": [1, 1]}, "horizon_days", "more than once"),
        ({"horizon_days": [1, 2, 3, 4, 5, 6]}, "horizon_days", ""),
        ({"samples": 65}, "samples", "KRONOS_MAX_SAMPLE_COUNT=64"),
        ({"window": 8}, "window", ""),
        ({"calendar": "XXXX"}, "calendar", "XNYS"),
        ({"conformal": True}, "conformal", "Unknown"),
        ({"candles": IBM[:150]}, "candles", "no origin"),
    ],
)
def test_bad_input_names_its_field(
    client: FlaskClient, change: dict[str, object], field: str, says: str
) -> None:
    body = assert_problem(client.post("/backtest", json={**REQUEST, **change}), 422, field)
    assert says in " ".join(body["errors"][field])


def test_an_instrument_missing_from_the_data_folder_is_a_404(tmp_path: Path) -> None:
    client = loaded_app(make_settings(mode="simulated", data_dir=tmp_path)).test_client()
    body = assert_problem(client.post("/backtest", json={"symbol": "IBM"}), 404)
    assert "KRONOS_DATA_DIR/IBM.csv" in body["detail"]
    assert_problem(client.post("/backtest", json={"horizon_days": [1]}), 422, "isin")


def test_a_history_too_short_is_filed_under_what_the_client_can_change(tmp_path: Path) -> None:
    client = loaded_app(make_settings(mode="simulated", data_dir=tmp_path)).test_client()
    vendored("IBM").iloc[-150:].to_csv(tmp_path / "IBM.csv")
    request = {"symbol": "IBM", "horizon_days": [1], "origins": 2, "samples": 2}
    body = assert_problem(client.post("/backtest", json=request), 422, "symbol")
    assert "no origin" in body["errors"]["symbol"][0] and "candles" not in body["errors"]
    body = assert_problem(client.post("/backtest", json={**request, "window": 200}), 422)
    assert list(body["errors"]) == ["window"] and "no origin" in body["errors"]["window"][0]
    vendored("IBM").iloc[-20:].to_csv(tmp_path / "IBM.csv")  # fewer bars than any forecast needs
    body = assert_problem(client.post("/backtest", json=request), 500)  # the operator's file
    assert body["type"].endswith("/stored-history-unusable") and "errors" not in body
    with_candles = {**request, "candles": IBM[:150], "window": 200}
    assert_problem(client.post("/backtest", json=with_candles), 422, "window")


def test_a_backtest_on_synthetic_history_says_so(client: FlaskClient) -> None:
    """Simulated mode with no data folder makes history up, as /predict's history_source says."""
    body = client.post("/backtest", json={"symbol": "IBM", "origins": 3, "samples": 4}).get_json()
    assert body["history_source"] == "synthetic"
    assert BacktestResponseSchema().validate(body) == {}


def test_the_openapi_document_lists_backtest(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/backtest"]["post"]
    assert {"200", "422", "429", "504"} <= set(operation["responses"])
    document = spec["components"]["schemas"]["BacktestResponse"]
    assert "history_source" in document["properties"] and "history_source" in document["required"]
    scores = spec["components"]["schemas"]["HorizonScores"]["properties"]
    assert {"coverage_0.8", "pinball_vs_baseline", "brier"} <= set(scores)
