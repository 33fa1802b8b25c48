"""The HTTP contract through Flask's test client, in all three modes (real simulator, real tiny
Kronos checkpoints, auto falling back from a model folder that does not exist)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shutil

import pandas as pd
import pytest

from app import create_app
from app.schemas import BatchResponseSchema, ModelsSchema, PredictResponseSchema
from tests.candles import candle_records, make_candles
from tests.checkpoints import tiny_parameter_counts
from tests.support import (
    SEED_REQUEST,
    assert_problem,
    assert_redacted,
    loaded_app,
    make_settings,
    state_of,
)

OTHER_ISIN = "US0378331005"
SEED_RESPONSE_FIELDS = {
    "isin",
    "model",
    "model_version",
    "prediction_horizon_days",
    "current_price",
    "predictions",
    "metadata",
}
EXPECTED_MODEL = {"simulated": "simulated", "kronos": "kronos", "auto": "simulated"}
MISSING_FOLDER = "ModelLoadError: cannot load '<path>': no such local folder"
"""Why `auto` serves the simulator when its model folder is missing, as clients read it."""
all_modes = pytest.mark.parametrize("mode", ["simulated", "kronos", "auto"], indirect=True)


def with_candles(frame: pd.DataFrame, **fields) -> dict:
    return {"isin": OTHER_ISIN, "horizon_days": 3, "candles": candle_records(frame), **fields}


# The seed contract and the fields beyond it.


@all_modes
def test_seed_request_keeps_the_seed_contract(client, mode):
    response = client.post("/predict", json=SEED_REQUEST)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert PredictResponseSchema().validate(body) == {}
    assert set(body) >= SEED_RESPONSE_FIELDS
    assert body["isin"] == "US67066G1040"
    assert body["model"] == EXPECTED_MODEL[mode]
    assert body["prediction_horizon_days"] == 5
    assert body["current_price"] == 100.0  # the synthetic history ends at 100, like the seed's
    assert [p["day"] for p in body["predictions"]] == [1, 2, 3, 4, 5]
    for day in body["predictions"]:
        assert isinstance(day["predicted_price"], float) and day["predicted_price"] > 0
        assert 0 < day["confidence"] <= 1
        assert 0 <= day["probability_up"] <= 1
        assert day["quantiles"]["0.1"] <= day["quantiles"]["0.5"] <= day["quantiles"]["0.9"]
    dates = [pd.Timestamp(p["date"]) for p in body["predictions"]]
    assert all(d.day_of_week < 5 for d in dates) and dates == sorted(set(dates))
    meta = body["metadata"]
    assert meta["history_source"] == "synthetic"
    assert meta["bar_interval"] == "P1DT0H0M0S"
    assert meta["prediction_periods"] == 5
    assert meta["lookback_periods"] == 400
    assert meta["max_context"] == 512
    assert meta["sample_count"] == 20
    assert meta["worker_pid"] == os.getpid()
    if mode == "auto":
        assert assert_redacted(meta["fallback_reason"]) == MISSING_FOLDER
    else:
        assert meta["fallback_reason"] is None
    if mode == "kronos":
        assert body["model_version"].endswith("tiny-model")
        assert meta["tokenizer"]["id"].endswith("tiny-tokenizer")
        assert meta["tokenizer"]["parameters"] == tiny_parameter_counts()[1]


@all_modes
def test_same_seed_same_answer(client):
    request = {**SEED_REQUEST, "seed": 7, "sample_count": 4}
    first = client.post("/predict", json=request).get_json()
    again = client.post("/predict", json=request).get_json()
    other = client.post("/predict", json={**request, "seed": 8}).get_json()
    assert first["predictions"] == again["predictions"]
    assert first["predictions"] != other["predictions"]
    assert first["metadata"]["seed"] == 7


def test_a_drawn_seed_is_reported_and_reproduces(client):
    first = client.post("/predict", json=SEED_REQUEST).get_json()
    seed = first["metadata"]["seed"]
    again = client.post("/predict", json={**SEED_REQUEST, "seed": seed}).get_json()
    assert again["predictions"] == first["predictions"]


@all_modes
def test_optional_request_fields(client, mode):
    history = make_candles(300, freq="h", start="2025-03-03 00:00", seed=4)
    history = history.iloc[history.index.indexer_between_time("10:00", "15:00")]
    request = with_candles(
        history,
        horizon_days=2,
        sample_count=3,
        quantiles=[0.95, 0.05, 0.5],
        temperature=0.7,
        top_p=0.8,
        top_k=5,
        seed=1,
        lookback=40,
        include_path=True,
        calendar="history",  # the sessions the history itself trades
    )
    response = client.post("/predict", json=request)
    body = response.get_json()
    assert response.status_code == 200, body
    assert PredictResponseSchema().validate(body) == {}
    meta = body["metadata"]
    assert meta["history_source"] == "request"
    assert meta["bar_interval"] == "P0DT1H0M0S"
    assert meta["lookback_periods"] == 40
    assert meta["history_periods"] == len(history)
    # The simulator has no token distribution to cut: top_p and top_k are reported as unused.
    sampling = (0.8, 5) if mode == "kronos" else (None, None)
    assert (meta["sample_count"], meta["temperature"]) == (3, 0.7)
    assert (meta["top_p"], meta["top_k"]) == sampling
    assert meta["quantiles"] == [0.05, 0.5, 0.95]
    assert meta["calendar"] == {"name": "history", "source": "request"}
    # Six hourly bars a session (10:00-15:00): the rest of the last day, then two whole sessions.
    sessions_left = 6 - (history.index[-1].hour - 9)
    assert meta["prediction_periods"] == sessions_left + 2 * 6
    assert [p["timestamp"][11:] for p in body["predictions"]] == ["15:00:00", "15:00:00"]
    assert body["current_price"] == pytest.approx(history["close"].iloc[-1])
    path = body["path"]
    assert len(path) == meta["prediction_periods"]
    assert set(path[0]["quantiles"]) == {"0.05", "0.5", "0.95"}
    day_end = path[-1]
    assert body["predictions"][-1]["timestamp"] == day_end["timestamp"]
    assert body["predictions"][-1]["predicted_price"] == pytest.approx(day_end["mean"]["close"])
    assert body["predictions"][-1]["quantiles"]["0.95"] == day_end["quantiles"]["0.95"]["close"]


def test_every_requested_quantile_level_gets_its_own_key(client):
    levels = [0.12345678, 0.123456789, 0.1, 0.1000000001]
    body = client.post("/predict", json={**SEED_REQUEST, "quantiles": levels}).get_json()
    assert body["metadata"]["quantiles"] == sorted(levels)
    for day in body["predictions"]:
        assert set(day["quantiles"]) == {repr(level) for level in levels}


@pytest.mark.parametrize("levels", [[0.5, 0.5], [0.1, 0.9, 0.10000000000000001]])
def test_a_repeated_quantile_level_is_refused(client, levels):
    body = assert_problem(
        client.post("/predict", json={**SEED_REQUEST, "quantiles": levels}), 422, "quantiles"
    )
    assert "more than once" in str(body["errors"]["quantiles"])


def test_confidence_measures_the_band_against_the_instruments_usual_moves(client):
    def confidences(volatility: float, temperature: float = 1.0) -> list[float]:
        candles = make_candles(200, volatility=volatility)
        request = with_candles(candles, sample_count=64, seed=2, temperature=temperature)
        return [
            p["confidence"] for p in client.post("/predict", json=request).get_json()["predictions"]
        ]

    calm, wild = confidences(0.002), confidences(0.04)  # the same moves, 20 times larger
    assert calm == pytest.approx(wild, abs=0.05)  # the instrument's own volatility is divided out
    narrow, wide = confidences(0.01, temperature=0.5), confidences(0.01, temperature=2.0)
    assert all(0 < w < n < 1 for n, w in zip(narrow, wide, strict=True))


def test_one_sample_has_no_confidence(client):
    body = client.post("/predict", json={**SEED_REQUEST, "sample_count": 1}).get_json()
    assert all(p["confidence"] is None for p in body["predictions"])


def test_history_from_the_data_folder(tmp_path):
    make_candles(80).reset_index().to_csv(tmp_path / f"{OTHER_ISIN}.csv", index=False)
    app = loaded_app(make_settings(mode="simulated", data_dir=tmp_path))
    body = (
        app.test_client().post("/predict", json={"isin": OTHER_ISIN, "horizon_days": 1}).get_json()
    )
    assert body["metadata"]["history_source"] == "data_dir"
    assert body["metadata"]["history_periods"] == 80


@pytest.mark.parametrize("mode", ["kronos"], indirect=True)
def test_kronos_mode_without_history_says_how_to_supply_it(settings):
    app = loaded_app(make_settings(settings, allow_synthetic_history=False))
    response = app.test_client().post("/predict", json=SEED_REQUEST)
    body = assert_problem(response, 404)
    assert "candles" in body["detail"] and "KRONOS_DATA_DIR" in body["detail"]


@pytest.mark.parametrize("mode", ["kronos"], indirect=True)
def test_default_lookback_leaves_room_for_the_horizon(settings):
    app = loaded_app(make_settings(settings, max_context=64, lookback=400))
    body = app.test_client().post("/predict", json={**SEED_REQUEST, "sample_count": 1}).get_json()
    assert body["metadata"]["lookback_periods"] == 64 - 5
    assert body["metadata"]["max_context"] == 64


@pytest.mark.parametrize("mode", ["kronos"], indirect=True)
def test_the_smallest_temperature_allowed_is_one_the_model_can_sample_with(client):
    request = with_candles(make_candles(60), sample_count=2, seed=3)
    assert client.post("/predict", json={**request, "temperature": 0.01}).status_code == 200
    for too_small in (1e-300, 0.0099):
        response = client.post("/predict", json={**request, "temperature": too_small})
        assert_problem(response, 422, "temperature")


def test_a_forecast_past_the_year_9999_is_refused_not_a_500(client):
    history = make_candles(60, start="9999-10-01")
    response = client.post("/predict", json=with_candles(history, horizon_days=30))
    body = assert_problem(response, 422, "candles")
    assert "9999" in body["detail"]


@pytest.mark.parametrize("mode", ["kronos"], indirect=True)
def test_kronos_refuses_more_future_bars_than_its_context_window(settings):
    app = loaded_app(make_settings(settings, max_context=64, max_prediction_bars=512))
    hourly = make_candles(100, freq="h", start="2025-03-03 00:00")  # 24 bars a day, every day
    request = with_candles(hourly, horizon_days=3, sample_count=1, calendar="24/7")
    response = app.test_client().post("/predict", json=request)
    body = assert_problem(response, 422, "horizon_days")
    assert "KRONOS_MAX_CONTEXT=64" in body["detail"]
    fits = app.test_client().post("/predict", json={**request, "horizon_days": 1})
    assert fits.status_code == 200, fits.get_json()


@pytest.mark.parametrize("step", ["1ms", "1us"])
def test_bars_closer_than_a_second_are_refused_before_any_grid_is_laid_out(client, step):
    # A horizon of such bars is billions of future bars: it was laid out in full (a 504 at
    # 7.8 GB for 1 ms bars, a 500 for 1 µs) before the bar limit was checked.
    history = make_candles(60, freq=step, start="2025-03-04 14:00")
    request = {"symbol": "X", "horizon_days": 1, "calendar": "XNYS"}
    response = client.post("/predict", json={**request, "candles": candle_records(history)})
    body = assert_problem(response, 422, "candles")
    assert "shortest bar interval supported is 1 s" in body["errors"]["candles"][0]


def test_a_horizon_of_second_bars_is_counted_before_it_is_laid_out(client):
    history = make_candles(60, freq="1s", start="2025-03-04 14:00")
    request = {"symbol": "X", "horizon_days": 30, "calendar": "24/7"}
    response = client.post("/predict", json={**request, "candles": candle_records(history)})
    body = assert_problem(response, 422, "horizon_days")
    # The rest of Tuesday and 30 whole days of 86,400 bars, refused with the exact count.
    assert f"{(10 * 3600 - 60) + 30 * 86400} bars" in body["detail"]
    assert "KRONOS_MAX_PREDICTION_BARS=512" in body["detail"]


# Errors: every one is problem+json naming the field.


def _candles_with(change) -> list[dict]:
    records = candle_records(make_candles(60))
    change(records)
    return records


def _set(records, row, key, value):
    records[row][key] = value


BAD_REQUESTS = {
    "missing isin": ({"horizon_days": 5}, 422, "isin"),
    "missing horizon": ({"isin": "US67066G1040"}, 422, "horizon_days"),
    "isin format": ({"isin": "NVDA", "horizon_days": 5}, 422, "isin"),
    "isin check digit": ({"isin": "US67066G1049", "horizon_days": 5}, 422, "isin"),
    "isin prefix no country": ({"isin": "ZZ0000000008", "horizon_days": 5}, 422, "isin"),
    "isin not a string": ({"isin": 12, "horizon_days": 5}, 422, "isin"),
    "horizon zero": ({**SEED_REQUEST, "horizon_days": 0}, 422, "horizon_days"),
    "horizon as string": ({**SEED_REQUEST, "horizon_days": "5"}, 422, "horizon_days"),
    "horizon fractional": ({**SEED_REQUEST, "horizon_days": 2.5}, 422, "horizon_days"),
    "horizon over limit": ({**SEED_REQUEST, "horizon_days": 31}, 422, "horizon_days"),
    "unknown field": ({**SEED_REQUEST, "model": "gpt"}, 422, "model"),
    "samples over limit": ({**SEED_REQUEST, "sample_count": 65}, 422, "sample_count"),
    "samples zero": ({**SEED_REQUEST, "sample_count": 0}, 422, "sample_count"),
    "quantile of 1": ({**SEED_REQUEST, "quantiles": [0.5, 1.0]}, 422, "quantiles"),
    "too many quantiles": (
        {**SEED_REQUEST, "quantiles": [0.01 * i for i in range(1, 21)]},
        422,
        "quantiles",
    ),
    "no quantiles": ({**SEED_REQUEST, "quantiles": []}, 422, "quantiles"),
    "temperature zero": ({**SEED_REQUEST, "temperature": 0}, 422, "temperature"),
    "top_p zero": ({**SEED_REQUEST, "top_p": 0}, 422, "top_p"),
    "top_k negative": ({**SEED_REQUEST, "top_k": -1}, 422, "top_k"),
    "seed negative": ({**SEED_REQUEST, "seed": -3}, 422, "seed"),
    "lookback too short": ({**SEED_REQUEST, "lookback": 8}, 422, "lookback"),
    "body is a list": ([SEED_REQUEST], 422, None),
    "empty candles": ({**SEED_REQUEST, "candles": []}, 422, "candles"),
    "candle close missing": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: r[3].pop("close"))},
        422,
        "candles",
    ),
    "candle unknown field": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: _set(r, 0, "vwap", 1.0))},
        422,
        "candles",
    ),
    "candle bad timestamp": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: _set(r, 2, "timestamp", "yesterday"))},
        422,
        "candles",
    ),
    "candle negative price": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: _set(r, 5, "low", -1.0))},
        422,
        "candles",
    ),
    "candle value too large": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: _set(r, 5, "volume", 1e300))},
        422,
        "candles",
    ),
    "candle high below low": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: _set(r, 5, "high", 0.01))},
        422,
        "candles",
    ),
    "candles unsorted": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: r.reverse())},
        422,
        "candles",
    ),
    "candles duplicate": (
        {**SEED_REQUEST, "candles": _candles_with(lambda r: r.insert(4, dict(r[4])))},
        422,
        "candles",
    ),
    "too little history": (
        {**SEED_REQUEST, "candles": candle_records(make_candles(20))},
        422,
        "candles",
    ),
    "weekly bars": (
        {**SEED_REQUEST, "candles": candle_records(make_candles(60, freq="W-FRI"))},
        422,
        "candles",
    ),
    "too many bars": (
        {
            **SEED_REQUEST,
            "horizon_days": 20,
            "candles": candle_records(make_candles(600, freq="min", start="2025-03-03 09:30")),
        },
        422,
        "horizon_days",
    ),
}


@pytest.mark.parametrize(
    ("body", "status", "field"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys()
)
def test_bad_requests_get_problem_json_naming_the_field(client, body, status, field):
    assert_problem(client.post("/predict", json=body), status, field)


@pytest.mark.parametrize(
    ("column", "change", "says"),
    [
        ("close", lambda bar: bar["high"] + 999, "is above high"),
        ("open", lambda bar: bar["low"] / 2, "is below low"),
    ],
)
def test_open_and_close_outside_the_bar_are_refused_naming_the_candle(client, column, change, says):
    records = _candles_with(lambda r: _set(r, 7, column, change(r[7])))
    body = assert_problem(client.post("/predict", json={**SEED_REQUEST, "candles": records}), 422)
    assert body["errors"]["candles"][0].startswith(f"candles[7].{column}: ")
    assert says in body["errors"]["candles"][0]


LOOSE_TYPES = [
    ("calibrate", "yes"),
    ("calibrate", "off"),
    ("include_history", "false"),
    ("include_path", 1),
    ("temperature", "1.5"),
    ("top_p", "0.9"),
    ("quantiles", ["0.5"]),
]
"""Values marshmallow would coerce (to True, False, False, True, 1.5, ...): each is a 422."""


@pytest.mark.parametrize(("field", "value"), LOOSE_TYPES)
def test_booleans_and_numbers_are_not_coerced_from_strings(client, field, value):
    assert_problem(client.post("/predict", json={**SEED_REQUEST, field: value}), 422, field)
    response = client.post("/predict/batch", json={"items": [{**SEED_REQUEST, field: value}]})
    (item,) = response.get_json()["results"]
    assert item["status"] == 422 and field in item["error"]["errors"], item


@pytest.mark.parametrize(("path", "horizon"), [("/predict", 1), ("/backtest", [1])])
def test_a_candle_price_sent_as_a_string_is_refused_naming_the_candle(client, path, horizon):
    records = _candles_with(lambda r: _set(r, 3, "close", str(r[3]["close"])))
    request = {"symbol": "X", "horizon_days": horizon, "candles": records}
    body = assert_problem(client.post(path, json=request), 422)
    assert list(body["errors"]) == ["candles"]
    assert "Not a number" in body["errors"]["candles"]["3"]["close"][0]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "field"),
    [
        ("{not json", "application/json", 400, None),
        ("", "application/json", 422, "isin"),
        ("", None, 422, "isin"),
    ],
    ids=["malformed", "empty", "no body, no content type"],
)
def test_unparseable_bodies(client, data, content_type, status, field):
    assert_problem(client.post("/predict", data=data, content_type=content_type), status, field)


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (json.dumps(SEED_REQUEST), "text/plain"),
        (json.dumps(SEED_REQUEST), None),
        ("isin=US67066G1040&horizon_days=5", "application/x-www-form-urlencoded"),
    ],
    ids=["text/plain", "no content type", "form"],
)
def test_a_body_that_is_not_declared_json_is_415_not_missing_fields(
    client, path, data, content_type
):
    response = client.post(path, data=data, content_type=content_type)
    detail = assert_problem(response, 415)["detail"]
    assert "application/json" in detail
    assert (content_type or "no Content-Type") in detail


@pytest.mark.parametrize("path", ["/predict", "/backtest"])
def test_a_compressed_body_is_415_naming_the_encoding_not_a_utf8_error(client, path):
    body = gzip.compress(json.dumps(SEED_REQUEST).encode())
    response = client.post(
        path, data=body, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    detail = assert_problem(response, 415)["detail"]
    assert "content encoding 'gzip' is not supported" in detail and "UTF-8" not in detail
    assert response.headers["Accept-Encoding"] == "identity"
    plain = json.dumps(SEED_REQUEST)
    identity = {"Content-Encoding": "identity"}
    response = client.post(
        "/predict", data=plain, content_type="application/json", headers=identity
    )
    assert response.status_code == 200


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "us-ascii"])
def test_a_body_declared_in_another_charset_is_415_naming_it(client, charset):
    text = json.dumps({**SEED_REQUEST, "calendar": "XNYS"})
    response = client.post(
        "/predict", data=text.encode(), content_type=f"application/json; charset={charset}"
    )
    detail = assert_problem(response, 415)["detail"]
    assert f"charset '{charset}' is not supported" in detail


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8"])
def test_a_body_declared_utf8_is_read(client, charset):
    content_type = f"application/json; charset={charset}"
    response = client.post("/predict", data=json.dumps(SEED_REQUEST), content_type=content_type)
    assert response.status_code == 200


def test_an_unknown_path_is_404_whatever_the_body(client):
    assert_problem(client.post("/nowhere", data="{bad", content_type="application/json"), 404)
    assert_problem(client.post("/nowhere", data="x", content_type="text/plain"), 404)


def _refused_non_number(response, literal: str) -> None:
    """NaN or Infinity refused by the JSON reader, before any schema: 400 naming the literal."""
    body = assert_problem(response, 400)
    assert f"{literal} is not a JSON number" in body["detail"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(client, literal):
    text = f'{{"isin": "US0378331005", "horizon_days": 2, "temperature": {literal}}}'
    response = client.post("/predict", data=text, content_type="application/json")
    _refused_non_number(response, literal)


def test_nan_inside_candles_is_refused_naming_where(client):
    records = candle_records(make_candles(40))
    records[2]["timestamp"] = "NaN"  # a string that reads NaN is no literal
    text = json.dumps({**SEED_REQUEST, "candles": records}, indent=1)
    close = f'"close": {records[7]["close"]!r}'
    text = text.replace(close, '"close": NaN', 1)
    lines = text.splitlines()
    line = next(n for n, text_line in enumerate(lines, 1) if "NaN," in text_line)
    column = lines[line - 1].index("NaN") + 1
    response = client.post("/predict", data=text, content_type="application/json")
    _refused_non_number(response, "NaN")
    assert f"(at candles[7].close, line {line} column {column})" in response.get_json()["detail"]


def test_limits_name_their_variable(client):
    body = assert_problem(client.post("/predict", json={**SEED_REQUEST, "horizon_days": 31}), 422)
    assert "KRONOS_MAX_HORIZON_DAYS=30" in body["errors"]["horizon_days"][0]


def test_candle_count_limit():
    app = loaded_app(make_settings(mode="simulated", max_candles=50))
    request = {**SEED_REQUEST, "candles": candle_records(make_candles(51))}
    body = assert_problem(app.test_client().post("/predict", json=request), 422, "candles")
    assert "KRONOS_MAX_CANDLES=50" in body["errors"]["candles"][0]


def test_body_over_the_limit_is_413():
    app = loaded_app(make_settings(mode="simulated", max_body_bytes=4096))
    request = {**SEED_REQUEST, "candles": candle_records(make_candles(200))}
    body = assert_problem(app.test_client().post("/predict", json=request), 413)
    assert "4096" in body["detail"]


def test_a_chunked_body_over_the_limit_is_413_not_a_truncated_400():
    """Without Content-Length (chunked transfer), werkzeug stops reading at the limit and hands
    back a truncated body; gunicorn marks such input as terminated, as set here."""
    app = loaded_app(make_settings(mode="simulated", max_body_bytes=4096))
    request = json.dumps({**SEED_REQUEST, "candles": candle_records(make_candles(200))})
    response = app.test_client().post(
        "/predict",
        input_stream=io.BytesIO(request.encode()),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert "4096" in assert_problem(response, 413)["detail"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/predict", 405),
        ("PUT", "/predict/batch", 405),
        ("POST", "/health", 405),
        ("DELETE", "/models", 405),
        ("GET", "/nowhere", 404),
        ("POST", "/predict/", 404),
    ],
)
def test_wrong_method_and_unknown_path(client, method, path, status):
    response = client.open(path, method=method)
    assert_problem(response, status)
    if status == 405:
        assert response.headers["Allow"]


def break_the_backend(app, monkeypatch) -> None:
    """The serving backend's own method fails, so the whole serving path runs up to it."""

    def broken(tasks):
        raise RuntimeError("secret internals /srv/model.py line 3")

    monkeypatch.setattr(state_of(app).backend, "forecast", broken)


def test_unexpected_error_is_500_without_internals(client, app, caplog, monkeypatch):
    break_the_backend(app, monkeypatch)
    with caplog.at_level(logging.ERROR):
        response = client.post("/predict", json=SEED_REQUEST, headers={"X-Request-ID": "req-42"})
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert "req-42" in body["detail"]
    assert any("req-42" in r.getMessage() and r.exc_info for r in caplog.records)


def test_an_unexpected_batch_item_failure_is_logged_with_the_request_id(
    client, app, caplog, monkeypatch
):
    break_the_backend(app, monkeypatch)
    with caplog.at_level(logging.ERROR):
        response = client.post(
            "/predict/batch", json={"items": [SEED_REQUEST]}, headers={"X-Request-ID": "req-77"}
        )
    (item,) = response.get_json()["results"]
    assert item["status"] == 500 and "secret internals" not in json.dumps(item)
    assert "req-77" in item["error"]["detail"]
    assert any("req-77" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_forecast_that_is_not_finite_is_refused_not_sent_as_nan(client, app, monkeypatch):
    backend = state_of(app).backend
    honest = backend.forecast

    def overflowing(tasks):
        paths = honest(tasks)
        paths[0][0, 0, 3] = float("inf")
        return paths

    monkeypatch.setattr(backend, "forecast", overflowing)
    body = assert_problem(client.post("/predict", json=SEED_REQUEST), 422, "candles")
    assert "not finite" in body["detail"]


def test_request_id_is_taken_or_made_and_echoed(client):
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    made = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers[
        "X-Request-ID"
    ]
    assert made != "bad id\twith spaces" and len(made) == 32


# Batch.


@all_modes
def test_batch_answers_item_by_item(client):
    items = [
        {**SEED_REQUEST, "seed": 1, "sample_count": 2},
        {"isin": "US67066G1049", "horizon_days": 5},
        {**SEED_REQUEST, "horizon_days": 2, "candles": candle_records(make_candles(10))},
        {"isin": OTHER_ISIN, "horizon_days": 1, "seed": 2, "sample_count": 2},
    ]
    response = client.post("/predict/batch", json={"items": items})
    body = response.get_json()
    assert response.status_code == 200, body
    assert BatchResponseSchema().validate(body) == {}
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == [200, 422, 422, 200]
    assert "isin" in results[1]["error"]["errors"]
    assert "too little history" in results[2]["error"]["detail"]
    single = client.post("/predict", json=items[0]).get_json()
    assert results[0]["result"]["predictions"] == single["predictions"]


def test_a_null_or_odd_batch_item_gets_its_own_error(client):
    items = [{**SEED_REQUEST, "seed": 1, "sample_count": 2}, None, 5, "US67066G1040", []]
    response = client.post("/predict/batch", json={"items": items})
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [200, 422, 422, 422, 422]
    assert all(r["error"]["errors"] for r in results[1:])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "items"),
        ({"items": [SEED_REQUEST] * 17}, "items"),
        ({}, "items"),
        ({"items": SEED_REQUEST}, "items"),
        ({"items": [SEED_REQUEST], "extra": 1}, "extra"),
    ],
    ids=["empty", "over limit", "missing", "not a list", "unknown field"],
)
def test_bad_batches(client, body, field):
    assert_problem(client.post("/predict/batch", json=body), 422, field)


# Health, readiness, models, OpenAPI.


@all_modes
def test_health_ready_and_models(client, mode, settings):
    assert client.get("/health").get_json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json()["serving"] == EXPECTED_MODEL[mode]
    models = client.get("/models").get_json()
    assert ModelsSchema().validate(models) == {}
    assert models["mode"] == mode
    assert models["worker_pid"] == os.getpid()
    assert models["load_seconds"] > 0
    assert pd.Timestamp(models["loaded_at"]).tzinfo is not None
    if mode == "kronos":
        assert models["model"]["id"] == settings.model.model_id
        assert models["model"]["sha"] is None  # a local folder has no commit
        parameters = (models["model"]["parameters"], models["tokenizer"]["parameters"])
        assert parameters == tiny_parameter_counts()
        assert (models["device"], models["dtype"]) == ("cpu", "float32")
    else:
        assert models["model"] is None
    assert set(ready.get_json()) == {"status", "ready", "mode", "serving", "worker_pid"}
    if mode == "auto":  # why, redacted, only behind the API key (when keys are on)
        assert assert_redacted(models["fallback_reason"], str(settings.model.model_id)) == (
            MISSING_FOLDER
        )


@pytest.mark.parametrize("mode", ["kronos"], indirect=True)
def test_parameter_counts_are_taken_once_at_load_not_per_request(client, app):
    artifacts = state_of(app).backend.artifacts
    counted = client.get("/models").get_json()

    def no_walk(*args, **kwargs):
        raise AssertionError("parameters walked while answering a request")

    for module in (artifacts.model, artifacts.tokenizer):
        module.parameters = no_walk
    models = client.get("/models").get_json()
    body = client.post("/predict", json={**SEED_REQUEST, "sample_count": 1}).get_json()
    assert models["model"] == counted["model"] and models["tokenizer"] == counted["tokenizer"]
    assert body["metadata"]["tokenizer"] == counted["tokenizer"]


def test_not_ready_until_loaded():
    app = create_app(make_settings(mode="simulated"))
    client = app.test_client()
    assert client.get("/health").status_code == 200
    assert_problem(client.get("/health/ready"), 503)
    assert_problem(client.post("/predict", json=SEED_REQUEST), 503)
    assert client.get("/models").get_json()["ready"] is False
    state_of(app).load()
    assert client.get("/health/ready").status_code == 200


def test_kronos_mode_load_failure_raises(tmp_path):
    from kronos_integration.registry import ModelLoadError

    app = create_app(make_settings(mode="kronos", model_id=str(tmp_path / "missing")))
    with pytest.raises(ModelLoadError, match="missing"):
        state_of(app).load()
    assert app.test_client().get("/health/ready").status_code == 503


def test_auto_mode_falls_back_when_the_warm_up_forecast_fails(tiny_checkpoints, monkeypatch):
    from kronos_integration.predictor import KronosPredictor

    def broken_forecast(self, *args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(KronosPredictor, "forecast_jobs", broken_forecast)
    model_dir, tokenizer_dir = tiny_checkpoints
    specs = {"model_id": str(model_dir), "tokenizer_id": str(tokenizer_dir)}
    state = state_of(create_app(make_settings(mode="auto", **specs)))
    state.load()
    assert state.serving == "simulated" and state.backend.info.artifacts == {}
    assert "kernel exploded" in state.fallback_reason
    strict = state_of(create_app(make_settings(mode="kronos", **specs)))
    with pytest.raises(RuntimeError, match="kernel exploded"):
        strict.load()
    assert not strict.ready


def test_a_load_error_is_logged_whole_and_shown_redacted(tiny_checkpoints, tmp_path, caplog):
    """A checkpoint whose config does not fit its weights: torch's per-tensor list and the folder
    go to the log; /models and /predict say why in one line without them; /health/ready not."""
    model_dir, tokenizer_dir = tiny_checkpoints
    widened = tmp_path / "widened-model"
    shutil.copytree(model_dir, widened)
    config = json.loads((widened / "config.json").read_text())
    (widened / "config.json").write_text(json.dumps({**config, "d_model": 2 * config["d_model"]}))
    settings = make_settings(mode="auto", model_id=str(widened), tokenizer_id=str(tokenizer_dir))
    with caplog.at_level(logging.WARNING, logger="kronos_integration.backends"):
        client = loaded_app(settings).test_client()
    (logged,) = [r.getMessage() for r in caplog.records if "could not be loaded" in r.getMessage()]
    assert str(widened) in logged and logged.count("size mismatch for") > 10
    reason = assert_redacted(client.get("/models").get_json()["fallback_reason"], str(tmp_path))
    assert reason.startswith("ModelLoadError: cannot load '<path>': Kronos checkpoint in <path>")
    assert "size mismatch" not in reason and "torch.Size" not in reason
    assert "more lines in the log" in reason
    answer = client.post("/predict", json=SEED_REQUEST).get_json()
    assert answer["metadata"]["fallback_reason"] == reason
    assert str(tmp_path) not in client.get("/health/ready").get_data(as_text=True)


def test_a_cuda_device_that_is_not_there_is_a_start_up_error(tiny_checkpoints):
    from app.settings import SettingsError

    model_dir, tokenizer_dir = tiny_checkpoints
    for mode in ("kronos", "auto"):
        settings = make_settings(
            mode=mode, device="cuda:7", model_id=str(model_dir), tokenizer_id=str(tokenizer_dir)
        )
        with pytest.raises(SettingsError, match="KRONOS_DEVICE"):
            state_of(create_app(settings)).load()


def test_openapi_is_generated_from_the_schemas(client):
    spec = client.get("/openapi.json").get_json()
    assert set(spec["paths"]) == {
        "/predict",
        "/predict/batch",
        "/backtest",
        "/health",
        "/health/ready",
        "/models",
    }
    schemas = spec["components"]["schemas"]
    request_schema = schemas["PredictRequest"]
    assert set(request_schema["required"]) == {"horizon_days"}  # and one of isin, symbol
    assert set(request_schema["properties"]) >= {
        "isin",
        "symbol",
        "calendar",
        "candles",
        "sample_count",
        "quantiles",
        "seed",
        "include_path",
    }
    assert request_schema["additionalProperties"] is False
    assert request_schema["properties"]["quantiles"]["uniqueItems"] is True
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "404", "413", "415", "422", "429", "503"} <= set(responses)
    for status in ("400", "404", "413", "415", "422"):
        name = responses[status]["$ref"].rsplit("/", 1)[1]
        content = spec["components"]["responses"][name]["content"]
        assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")


# Instruments and trading calendars.


def test_a_symbol_instead_of_an_isin(client):
    hourly = make_candles(24 * 40, freq="h", start="2025-01-06 00:00", seed=5)
    request = {
        "symbol": "EURUSD",
        "horizon_days": 1,
        "calendar": "24/5",
        "candles": candle_records(hourly),
        "seed": 3,
        "sample_count": 2,
        "include_path": True,
    }
    body = client.post("/predict", json=request).get_json()
    assert body["symbol"] == "EURUSD" and "isin" not in body
    assert body["metadata"]["calendar"] == {"name": "24/5", "source": "request"}
    for refused, field in (
        ({**request, "isin": "US0378331005"}, "symbol"),
        ({k: v for k, v in request.items() if k != "symbol"}, "isin"),
        ({**request, "symbol": "../etc/passwd"}, "symbol"),
    ):
        assert_problem(client.post("/predict", json=refused), 422, field)


def test_an_fx_forecast_from_a_friday_skips_the_closed_weekend(client):
    hourly = make_candles(24 * 30, freq="h", start="2025-02-03 00:00", seed=6)  # to Sun 03-04 23h
    hourly = hourly[hourly.index < pd.Timestamp("2025-02-28 21:00")]  # ends Fri 15:00 New York
    request = {"symbol": "EURUSD", "horizon_days": 1, "calendar": "24/5", "seed": 1}
    request |= {"candles": candle_records(hourly), "sample_count": 2, "include_path": True}
    body = client.post("/predict", json=request).get_json()
    stamps = pd.DatetimeIndex([bar["timestamp"] for bar in body["path"]]).tz_localize("UTC")
    new_york = stamps.tz_convert("America/New_York")
    closed = (new_york.day_of_week == 5) | ((new_york.day_of_week == 4) & (new_york.hour >= 17))
    closed |= (new_york.day_of_week == 6) & (new_york.hour < 17)
    assert not closed.any()
    assert stamps[0] == pd.Timestamp("2025-02-28 21:00", tz="UTC")  # the rest of Friday
    assert body["predictions"][0]["date"] == "2025-03-03"  # the next session: Monday's


def test_an_isin_takes_its_exchanges_calendar_and_skips_holidays(client):
    daily = make_candles(60)
    daily.index = pd.bdate_range(end="2025-11-26", periods=60, name="timestamp")  # to Wednesday
    body = client.post("/predict", json=with_candles(daily, horizon_days=3, seed=1)).get_json()
    assert body["metadata"]["calendar"] == {"name": "XNYS", "source": "isin"}
    # Thanksgiving (Thursday 27th) is skipped; Friday's early close is still a session.
    dates = [day["date"] for day in body["predictions"]]
    assert dates == ["2025-11-28", "2025-12-01", "2025-12-02"]


def test_history_outside_the_calendars_sessions_is_forecast_with_a_warning(client):
    holiday = make_candles(78, freq="5min", start="2024-01-01 09:30", seed=2)  # New Year's Day
    request = {"symbol": "X", "horizon_days": 1, "calendar": "XNYS", "seed": 1}
    body = client.post("/predict", json={**request, "candles": candle_records(holiday)}).get_json()
    assert body["metadata"]["warnings"] == [
        "78 of the 78 history bars the model saw fall outside the sessions of the calendar XNYS "
        "(holidays, weekends or closed hours): check the timestamps and the calendar"
    ]
    assert PredictResponseSchema().validate(body) == {}
    trading = make_candles(78, freq="5min", start="2024-01-02 09:30", seed=2)
    body = client.post("/predict", json={**request, "candles": candle_records(trading)}).get_json()
    assert body["metadata"]["warnings"] == []


def test_an_unknown_calendar_names_the_field(client):
    request = with_candles(make_candles(60), calendar="XXXX")
    body = assert_problem(client.post("/predict", json=request), 422, "calendar")
    assert body["errors"]["calendar"][0].startswith("unknown 'XXXX'; use an exchange MIC")
    assert "XNYS" in body["errors"]["calendar"][0]
    assert body["detail"].startswith("calendar: unknown 'XXXX'")  # the detail reads alone


MIXED_OFFSETS = candle_records(make_candles(40))
MIXED_OFFSETS[0] = {**MIXED_OFFSETS[0], "timestamp": MIXED_OFFSETS[0]["timestamp"] + "Z"}


@pytest.mark.parametrize(
    ("candles", "message"),
    [
        (MIXED_OFFSETS, "timestamps mix UTC offsets with times that have none"),
        (candle_records(make_candles(5)), "too little history, 5 bars given"),
    ],
)
def test_a_field_message_does_not_repeat_the_fields_name(client, candles, message):
    request = {"isin": SEED_REQUEST["isin"], "horizon_days": 1, "candles": candles}
    body = assert_problem(client.post("/predict", json=request), 422, "candles")
    assert body["errors"]["candles"][0].startswith(message)


def test_a_file_missing_from_the_data_folder_is_a_404_naming_it_in_every_mode(tmp_path):
    make_candles(80).reset_index().to_csv(tmp_path / f"{OTHER_ISIN}.csv", index=False)
    (tmp_path / f"{OTHER_ISIN}.calendar").write_text("XLON\n")
    client = loaded_app(make_settings(mode="simulated", data_dir=tmp_path)).test_client()
    body = client.post("/predict", json=SEED_REQUEST).get_json()
    assert body["status"] == 404
    assert (
        "KRONOS_DATA_DIR/US67066G1040.csv" in body["detail"] and str(tmp_path) not in body["detail"]
    )
    found = client.post("/predict", json={"isin": OTHER_ISIN, "horizon_days": 1}).get_json()
    assert found["metadata"]["calendar"] == {"name": "XLON", "source": "data_dir"}
    allowed = make_settings(mode="simulated", data_dir=tmp_path, allow_synthetic_history=True)
    answer = loaded_app(allowed).test_client().post("/predict", json=SEED_REQUEST).get_json()
    assert answer["metadata"]["history_source"] == "synthetic"


def test_include_history_returns_the_bars_the_model_saw(client):
    request = with_candles(make_candles(120), lookback=50, include_history=True, seed=1)
    body = client.post("/predict", json=request).get_json()
    history = body["history"]
    assert len(history) == body["metadata"]["lookback_periods"] == 50
    assert history[-1]["close"] == body["current_price"]
    assert history[0]["timestamp"] == request["candles"][-50]["timestamp"]
    assert (
        "history"
        not in client.post("/predict", json={**request, "include_history": False}).get_json()
    )


def test_a_lookback_beyond_the_context_window_names_the_limit(client):
    request = with_candles(make_candles(600), lookback=513)
    body = assert_problem(client.post("/predict", json=request), 422, "lookback")
    assert "KRONOS_MAX_CONTEXT=512" in body["errors"]["lookback"][0]
    assert client.post("/predict", json={**request, "lookback": 512}).status_code == 200


def test_an_exchange_whose_holidays_stop_at_a_years_end_forecasts_past_it_and_says_so():
    """An Indian ISIN (XBOM, holidays recorded through 2026) with history ending in December
    2026, 30 sessions ahead: 200 on weekdays past the recorded year, with a warning."""
    days = pd.bdate_range(end="2026-12-18", periods=300)
    candles = [
        {"timestamp": f"{day.date()}", "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5}
        for day in days
    ]
    client = loaded_app(make_settings(mode="simulated")).test_client()
    response = client.post(
        "/predict", json={"isin": "INE002A01018", "horizon_days": 30, "candles": candles}
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["metadata"]["calendar"] == {"name": "XBOM", "source": "isin"}
    last = pd.Timestamp(body["predictions"][-1]["date"])
    assert last.year == 2027 and last.day_of_week < 5
    assert any("recorded through 2026-12-31" in w for w in body["metadata"]["warnings"])
