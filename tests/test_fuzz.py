"""Property-based fuzzing of /openapi.json with schemathesis, plus a catalogue of hostile inputs.

Schemathesis generates requests from the app's own OpenAPI document (valid and deliberately invalid
ones) and sends them in-process to the WSGI app in simulated mode. Every answer must be a non-5xx
that the document allows, with a body that matches the documented schema; schema-invalid requests
must be refused with 4xx (in a batch: each invalid item with its own 4xx, never a 5xx item).
``KRONOS_FUZZ_EXAMPLES`` caps the examples per operation (default 1000: about 2,400 requests, a
minute on two cores; the long run is ``KRONOS_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py``).
"""

from __future__ import annotations

import json
import logging
import os

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import loaded_app, make_settings

FUZZ_EXAMPLES = int(os.environ.get("KRONOS_FUZZ_EXAMPLES", "1000"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
VALID = {"isin": "US0378331005", "horizon_days": 3}


def simulated_app() -> Flask:
    return loaded_app(make_settings(mode="simulated", max_sample_count=16, max_horizon_days=10))


# Built at collection: schemathesis turns each documented operation into its own test item.
FUZZED_APP = simulated_app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", FUZZED_APP)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_generated_request_gets_a_documented_non_5xx_answer(case):
    response = case.call()
    if case.path != "/predict/batch":
        case.validate_response(response, checks=CHECKS)
        return
    # A batch answers 200 with a status per item, so an invalid item is refused inside the
    # answer, not by it: check that instead of schemathesis' whole-request rejection.
    case.validate_response(response, checks=[c for c in CHECKS if c is not negative_data_rejection])
    if case.method == "POST" and response.status_code == 200:
        statuses = [result["status"] for result in response.json()["results"]]
        assert all(status < 500 for status in statuses), statuses


# --- hostile inputs, written by hand ---------------------------------------------------------


def candle(day: int, price: float) -> dict[str, object]:
    return {
        "timestamp": f"2024-01-{day:02d}" if day <= 31 else f"2024-02-{day - 31:02d}",
        "open": price,
        "high": price,
        "low": price,
        "close": price,
    }


def candles(price: float, count: int = 40) -> list[dict[str, object]]:
    return [candle(day, price) for day in range(1, count + 1)]


def nested(depth: int) -> str:
    return '{"isin": ' + "[" * depth + "]" * depth + ', "horizon_days": 1}'


HOSTILE_JSON: dict[str, object] = {
    "huge integer horizon": {**VALID, "horizon_days": 10**40},
    "float horizon 1e308": {**VALID, "horizon_days": 1e308},
    "negative horizon": {**VALID, "horizon_days": -5},
    "boolean horizon": {**VALID, "horizon_days": True},
    "string horizon": {**VALID, "horizon_days": "5; DROP TABLE"},
    "prices of 1e308": {**VALID, "candles": candles(1e308)},
    "zero prices": {**VALID, "candles": candles(0.0)},
    "high below low": {
        **VALID,
        "candles": [{**c, "high": 1.0, "low": 2.0} for c in candles(1.5)],
    },
    "unicode lookalike ISIN": {**VALID, "isin": "US037833100５"},
    "ISIN with accented letters": {**VALID, "isin": "ÜS0378331005"},
    "ISIN with NUL byte": {**VALID, "isin": "US03783\x0031005"},
    "ISIN of a megabyte": {**VALID, "isin": "U" * 1_000_000},
    "ISIN as a list": {**VALID, "isin": ["US0378331005"]},
    "sample_count huge": {**VALID, "sample_count": 10**12},
    "seed beyond 64 bits": {**VALID, "seed": 2**200},
    "quantile of 1e308": {**VALID, "quantiles": [1e308]},
    "quantile of 0 and 1": {**VALID, "quantiles": [0.0, 1.0]},
    "temperature zero": {**VALID, "temperature": 0},
    "top_p above one": {**VALID, "top_p": 7.5},
    "unknown field": {**VALID, "__proto__": {"admin": True}},
    "timestamp year 0": {
        **VALID,
        "candles": [{**c, "timestamp": "0000-00-00"} for c in candles(1)],
    },
    "duplicate timestamps": {**VALID, "candles": [candle(1, 10.0)] * 40},
    "batch of one thousand": {"items": [VALID] * 1000},
    "batch that is not a list": {"items": {"0": VALID}},
    "top-level list": [VALID],
    "top-level string": "US0378331005",
    "top-level null": None,
}

HOSTILE_RAW: dict[str, tuple[bytes, str]] = {
    "empty body": (b"", "application/json"),
    "whitespace body": (b"   \n", "application/json"),
    "truncated JSON": (b'{"isin": "US0378331005", "horizon', "application/json"),
    "NaN literal": (b'{"isin": "US0378331005", "horizon_days": NaN}', "application/json"),
    "Infinity price": (
        json.dumps({**VALID, "candles": candles(1.0)}).replace("1.0", "Infinity", 1).encode(),
        "application/json",
    ),
    "duplicate keys": (
        b'{"isin": "US0378331005", "horizon_days": 3, "horizon_days": 4}',
        "application/json",
    ),
    "deeply nested arrays": (nested(100_000).encode(), "application/json"),
    # json.loads raises a bare ValueError beyond sys.get_int_max_str_digits() (4,300 digits).
    "integer of 5,000 digits": (
        b'{"isin": "US0378331005", "horizon_days": ' + b"7" * 5000 + b"}",
        "application/json",
    ),
    "integer of 5,000 digits in a batch item": (
        b'{"items": [{"isin": "US0378331005", "horizon_days": 3, "seed": -' + b"9" * 5000 + b"}]}",
        "application/json",
    ),
    "invalid UTF-8": (b'{"isin": "\xff\xfe\xfd", "horizon_days": 3}', "application/json"),
    "UTF-16 body": (json.dumps(VALID).encode("utf-16"), "application/json"),
    "form-encoded body": (b"isin=US0378331005&horizon_days=3", "application/x-www-form-urlencoded"),
    "plain text content type": (json.dumps(VALID).encode(), "text/plain"),
    "XML body": (b"<predict><isin>US0378331005</isin></predict>", "application/xml"),
    "a million candles": (
        json.dumps({**VALID, "candles": [candle(1, 1.0)] * 1_000_000}).encode(),
        "application/json",
    ),
}


@pytest.fixture(scope="module")
def hostile_client():  # type: ignore[no-untyped-def]
    return simulated_app().test_client()


def assert_refused_as_problem(response) -> None:  # type: ignore[no-untyped-def]
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == response.status_code and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_hostile_json_is_refused_with_a_problem(hostile_client, name, path):
    body = HOSTILE_JSON[name]
    if path == "/predict/batch" and isinstance(body, dict) and "items" not in body:
        body = {"items": [body], "extra": 1}  # the batch envelope itself is hostile too
    response = hostile_client.post(path, json=body)
    assert_refused_as_problem(response)


@pytest.mark.parametrize("name", sorted(HOSTILE_RAW))
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_hostile_bytes_are_refused_with_a_problem(hostile_client, name, path):
    payload, content_type = HOSTILE_RAW[name]
    response = hostile_client.post(path, data=payload, content_type=content_type)
    assert_refused_as_problem(response)
    assert response.get_json(force=True)["request_id"] == response.headers["X-Request-ID"]


def test_an_overlong_integer_is_a_400_that_is_logged_and_counted(caplog):
    app = simulated_app()
    payload = b'{"isin": "US0378331005", "horizon_days": ' + b"1" * 5000 + b"}"
    with caplog.at_level(logging.INFO, logger="kronos.access"):
        response = app.test_client().post("/predict", data=payload, content_type="application/json")
    assert_refused_as_problem(response)
    assert response.status_code == 400
    assert "5000 digits" in response.get_json(force=True)["detail"]
    request_id = response.headers["X-Request-ID"]
    (line,) = [r for r in caplog.records if r.name == "kronos.access"]
    assert line.request_id == request_id and line.status == 400  # type: ignore[attr-defined]
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    counted = 'kronos_http_requests_total{endpoint="/predict",method="POST",status="400"} 1.0'
    assert counted in metrics


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/predict"), ("PUT", "/predict"), ("DELETE", "/models"), ("POST", "/health")],
)
def test_wrong_methods_are_405_problems(hostile_client, method, path):
    response = hostile_client.open(path, method=method)
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_hostile_batch_items_each_get_their_own_4xx(hostile_client):
    items = [VALID, {**VALID, "isin": "US037833100５"}, {**VALID, "candles": candles(1e308)}]
    response = hostile_client.post("/predict/batch", json={"items": items})
    assert response.status_code == 200
    statuses = [result["status"] for result in response.get_json()["results"]]
    assert statuses[0] == 200
    assert all(400 <= status < 500 for status in statuses[1:]), statuses
