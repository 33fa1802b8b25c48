"""Backpressure, time budget, API keys, metrics and request logs on a minimal Flask app.

The app below has the service's route shapes (``/predict``, ``/health``, ``/models``) with views
that block on an event, so concurrency is controlled by the test, not by timing luck.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask, jsonify, request
from flask.testing import FlaskClient

from app import auth, backpressure, errors, hooks, log_format, metrics, request_log, time_budget
from app.policy import RAN_FORECASTS, public, runs_forecasts
from app.state import EXTENSION_KEY as STATE_KEY
from app.state import WorkerState
from app.time_budget import parse_request_start, run_within_budget
from kronos_integration.backends.gate import ForecastGate
from tests.canaries import API_KEY_CANARIES
from tests.held_backend import HeldBackend
from tests.support import assert_problem, loaded_app, make_settings, state_of, wait_until

BUDGET_S = 0.3
KEYS = API_KEY_CANARIES  # the session's secret scan looks for them in every log and response


class Gate:
    """Blocks ``/predict`` views until the test opens it; counts views that entered."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=5), "the view never started"


def build_app(
    gate: Gate,
    *,
    max_inflight: int = 1,
    api_keys: tuple[str, ...] = (),
    refusal_delay_s: float = 0.0,
) -> Flask:
    app = Flask("hardening-test")
    errors.init_app(app)
    metrics.init_app(app)
    auth.init_app(app, api_keys)
    time_budget.init_app(app, request_timeout_s=BUDGET_S)
    backpressure.init_app(app, max_inflight, retry_after_s=2, refusal_delay_s=refusal_delay_s)
    hooks.init_app(app)
    app.extensions[STATE_KEY] = WorkerState(make_settings(mode="simulated"))  # for the access log
    state_of(app).load()

    @app.post("/predict")
    @runs_forecasts
    def predict():  # type: ignore[no-untyped-def]
        gate.entered.release()

        def work() -> dict[str, str]:
            assert gate.open.wait(timeout=10)
            return {"model": "simulated"}

        return jsonify(run_within_budget(work))

    @app.post("/predict/batch")
    @runs_forecasts
    def predict_batch():  # type: ignore[no-untyped-def]
        quick = run_within_budget(lambda: "first item")
        gate.entered.release()
        return jsonify(items=[quick, run_within_budget(lambda: gate.open.wait(timeout=10))])

    @app.get("/health")
    @public
    def health():  # type: ignore[no-untyped-def]
        return jsonify(status="ok")

    @app.get("/models")
    def models():  # type: ignore[no-untyped-def]
        return jsonify(mode="simulated")

    return app


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open.set()


@pytest.fixture
def client(gate: Gate) -> FlaskClient:
    return build_app(gate).test_client()


def post_in_background(
    client: FlaskClient,
    results: list[int],
    body: dict[str, object] | None = None,
    **kwargs: object,
) -> threading.Thread:
    def send() -> None:
        answer = client.post("/predict", json=body or {"isin": "US0378331005"}, **kwargs)
        results.append(answer.status_code)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def metric_value(client: FlaskClient, sample: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- backpressure ---------------------------------------------------------------------------


def test_excess_prediction_is_refused_at_once_with_retry_after(client, gate):
    results: list[int] = []
    first = post_in_background(client, results)
    gate.wait_entered()
    refused = client.post("/predict", json={"isin": "US0378331005"})
    body = assert_problem(refused, 429)
    assert refused.headers["Retry-After"] == "2"
    assert "1 predictions" in body["detail"]
    assert metric_value(client, "kronos_inflight_predictions") == 1.0
    gate.open.set()
    first.join(timeout=5)
    assert results == [200]
    assert client.post("/predict", json={}).status_code == 200
    assert metric_value(client, "kronos_inflight_predictions") == 0.0
    assert metric_value(client, 'kronos_rejected_requests_total{reason="overloaded"}') == 1.0


@pytest.mark.parametrize("path", ["/health", "/metrics", "/models"])
def test_probes_and_metrics_are_never_refused(client, gate, path):
    results: list[int] = []
    busy = post_in_background(client, results)
    gate.wait_entered()
    assert client.get(path).status_code == 200
    gate.open.set()
    busy.join(timeout=5)


def test_capacity_allows_that_many_predictions_at_once(gate):
    client = build_app(gate, max_inflight=3).test_client()
    results: list[int] = []
    threads = [post_in_background(client, results) for _ in range(3)]
    for _ in threads:
        gate.wait_entered()
    assert client.post("/predict", json={}).status_code == 429
    gate.open.set()
    for thread in threads:
        thread.join(timeout=5)
    assert results == [200, 200, 200]


def test_a_refusal_is_answered_only_after_its_delay(gate):
    client = build_app(gate, refusal_delay_s=2.0).test_client()
    running: list[int] = []
    post_in_background(client, running)
    gate.wait_entered()  # its slot stays taken until the gate opens (504 or not)
    answers: list[int] = []
    refused = post_in_background(client, answers)
    overloaded = 'kronos_rejected_requests_total{reason="overloaded"}'
    wait_until(lambda: metric_value(client, overloaded) == 1)  # refused and counted...
    assert refused.is_alive() and answers == []  # ...but not answered yet: it waits, GIL-free
    refused.join(timeout=10)
    assert answers == [429]


def test_limiter_rejects_a_capacity_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        backpressure.InflightLimiter(0, retry_after_s=1)


# --- time budget ----------------------------------------------------------------------------


def test_overrunning_forecast_gets_504_and_keeps_its_slot_until_it_ends(client, gate):
    overrun = client.post("/predict", json={})
    body = assert_problem(overrun, 504)
    assert f"{BUDGET_S:g} s" in body["detail"]
    # The abandoned forecast still runs, so it still counts against the in-flight bound.
    assert client.post("/predict", json={}).status_code == 429
    gate.open.set()
    deadline = time.monotonic() + 5
    while metric_value(client, "kronos_inflight_predictions") != 0.0:
        assert time.monotonic() < deadline, "the abandoned forecast never gave its slot back"
        time.sleep(0.01)
    assert client.post("/predict", json={}).status_code == 200
    assert metric_value(client, 'kronos_rejected_requests_total{reason="deadline"}') == 1.0


def test_the_slot_stays_with_the_request_between_its_forecasts(client, gate):
    results: list[int] = []

    def send_batch() -> None:
        results.append(client.post("/predict/batch", json={}).status_code)

    batch = threading.Thread(target=send_batch)
    batch.start()
    gate.wait_entered()  # the first item's forecast has finished, the second is running
    assert client.post("/predict", json={}).status_code == 429
    gate.open.set()
    batch.join(timeout=5)
    assert results == [200]


def test_errors_inside_the_budgeted_work_reach_the_caller(gate):
    app = Flask("budget-errors")
    app.testing = True  # let the view's exception reach the test
    metrics.init_app(app)
    auth.init_app(app, ())
    time_budget.init_app(app, request_timeout_s=5)
    hooks.init_app(app)

    @app.get("/fail")
    def fail():  # type: ignore[no-untyped-def]
        def work() -> None:
            raise ValueError("bad candles")

        run_within_budget(work)

    with pytest.raises(ValueError, match="bad candles"):
        app.test_client().get("/fail")


def test_request_that_waited_out_its_budget_in_a_queue_is_refused_before_work(client, gate):
    stamp = f"t={time.time() - 10 * BUDGET_S:.3f}"
    refused = client.post("/predict", json={}, headers={"X-Request-Start": stamp})
    assert_problem(refused, 503)
    assert refused.headers["Retry-After"] == "1"
    assert client.get("/health", headers={"X-Request-Start": stamp}).status_code == 200
    assert metric_value(client, 'kronos_rejected_requests_total{reason="queued_too_long"}') == 1.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("t=1700000000.5", 1700000000.5),
        ("1700000000500", 1700000000.5),
        ("t=1700000000500000", 1700000000.5),
        ("yesterday", None),
        ("t=12", None),
        ("t=nan", None),
    ],
)
def test_request_start_stamps_in_seconds_milliseconds_microseconds(value, expected):
    assert parse_request_start(value, now=1700000001.0) == expected


# --- API keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-key",
        "Basic YWxwaGEta2V5LTEyMzQ=",
        f"Token {KEYS[0]}",
        f"Bearer {KEYS[0]}x",
        f"Bearer {KEYS[0][:-1]}",
        "Bearer ünïcode",
    ],
)
def test_requests_without_a_valid_key_get_one_indistinct_401(gate, authorization):
    client = build_app(gate, api_keys=KEYS).test_client()
    headers = {} if authorization is None else {"Authorization": authorization}
    refused = client.post("/predict", json={}, headers=headers)
    body = assert_problem(refused, 401)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    reference = client.get("/models").get_json(force=True)
    assert (body["title"], body["detail"]) == (reference["title"], reference["detail"])
    assert KEYS[0] not in refused.get_data(as_text=True)


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_is_accepted(gate, key):
    client = build_app(gate, api_keys=KEYS).test_client()
    gate.open.set()
    assert (
        client.post("/predict", json={}, headers={"Authorization": f"bearer {key}"}).status_code
        == 200
    )
    assert client.get("/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_health_stays_open_and_keys_are_off_by_default(gate):
    guarded = build_app(gate, api_keys=KEYS).test_client()
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/metrics").status_code == 401
    assert build_app(gate).test_client().get("/models").status_code == 200


def test_api_keys_never_show_in_their_repr():
    assert KEYS[0] not in repr(auth.ApiKeys(KEYS))


# --- metrics --------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_method_and_status(client, gate):
    gate.open.set()
    client.post("/predict", json={})
    client.post("/predict", json={})
    client.get("/no/such/path")
    for invented in ("BREW", "X1", "X2"):
        client.open("/predict", method=invented)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'kronos_http_requests_total{endpoint="/predict",method="POST",status="200"} 2.0' in text
    assert (
        'kronos_http_requests_total{endpoint="<unmatched>",method="GET",status="404"} 1.0' in text
    )
    assert 'kronos_http_requests_total{endpoint="<unmatched>",method="OTHER",status="405"} 3.0' in (
        text
    ), "made-up methods must not each make a new series"
    assert (
        "kronos_http_request_duration_seconds_count"
        '{endpoint="/predict",method="POST",status="200"} 2.0' in text
    )


def test_forecast_and_model_metrics(client):
    service_metrics = metrics.get_metrics(client.application)
    service_metrics.observe_forecast("kronos", seconds=0.8, sample_count=4, bars=12)
    service_metrics.set_serving_mode("kronos", load_seconds=3.5)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'kronos_inference_duration_seconds_count{mode="kronos"} 1.0' in text
    assert 'kronos_forecast_samples_total{mode="kronos"} 4.0' in text
    assert 'kronos_forecast_bars_total{mode="kronos"} 48.0' in text
    assert 'kronos_serving_mode_workers{mode="kronos"} 1.0' in text
    assert "kronos_model_load_seconds 3.5" in text


# --- logs -----------------------------------------------------------------------------------


def test_one_access_line_per_request_with_the_fields_that_matter(client, gate, caplog):
    gate.open.set()
    candles = [{"timestamp": "2024-01-02", "open": 123.456789, "high": 1, "low": 1, "close": 1}]
    with caplog.at_level(logging.INFO, logger=request_log.ACCESS_LOGGER):
        client.post(
            "/predict", json={"isin": "US0378331005", "horizon_days": 5, "candles": candles}
        )
    (record,) = [r for r in caplog.records if r.name == request_log.ACCESS_LOGGER]
    line = json.loads(log_format.JsonFormatter().format(record))
    assert line["route"] == "/predict" and line["method"] == "POST" and line["status"] == 200
    assert line["isin"] == "US0378331005" and line["horizon_days"] == 5
    assert line["mode"] == "simulated" and line["latency_ms"] >= 0
    assert "request_id" in line
    assert "123.456789" not in json.dumps(line), "candles must never be logged"


def test_a_path_cannot_forge_a_text_log_line(client, caplog):
    with caplog.at_level(logging.INFO, logger=request_log.ACCESS_LOGGER):
        client.get("/x%0A2026-01-01 INFO kronos.access: GET /forged 200%0D")
    (record,) = [r for r in caplog.records if r.name == request_log.ACCESS_LOGGER]
    text = logging.Formatter(log_format.TEXT_FORMAT).format(record)
    assert "\n" not in text and "\r" not in text
    assert "/x\\n2026-01-01" in text  # shown escaped, not dropped


def test_json_formatter_writes_one_parseable_line_with_extras_and_traceback():
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("here",),
            exc_info=sys.exc_info(),
            extra={"request_id": "abc"},
        )
    text = log_format.JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "failed here" and line["request_id"] == "abc"
    assert "RuntimeError" in line["exc"] and line["level"] == "ERROR"


def test_secret_redaction_masks_messages_extra_fields_and_tracebacks():
    secret = "hf_SuperSecretToken123"
    try:
        raise RuntimeError(f"hub refused {secret}")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x",
            logging.WARNING,
            __file__,
            1,
            "token %s rejected",
            (secret,),
            exc_info=sys.exc_info(),
            extra={"request_id": f"id-{secret}", "horizon_days": 5},
        )
    log_format.RedactSecrets([secret, ""]).filter(record)
    line = log_format.JsonFormatter().format(record)
    assert secret not in line
    assert record.getMessage() == "token *** rejected"
    assert json.loads(line)["request_id"] == "id-***"
    assert "hub refused ***" in json.loads(line)["exc"]


def test_logging_config_rejects_an_unknown_format():
    with pytest.raises(ValueError, match="log format"):
        log_format.logging_config("xml")


# --- wiring into the real service ------------------------------------------------------------


def loaded_service_app(**overrides: object) -> Flask:
    return loaded_app(make_settings(mode="simulated", **overrides))


def test_the_service_forecasts_are_counted_by_mode_samples_and_bars():
    client = loaded_service_app().test_client()
    answer = client.post(
        "/predict", json={"isin": "US0378331005", "horizon_days": 3, "sample_count": 5}
    )
    assert answer.status_code == 200
    bars = answer.get_json()["metadata"]["prediction_periods"]
    assert metric_value(client, 'kronos_inference_duration_seconds_count{mode="simulated"}') == 1
    assert metric_value(client, 'kronos_forecast_samples_total{mode="simulated"}') == 5
    assert metric_value(client, 'kronos_forecast_bars_total{mode="simulated"}') == 5 * bars


FORECAST = {"isin": "US0378331005", "horizon_days": 1, "sample_count": 1}


def held_service(**overrides: object) -> tuple[FlaskClient, HeldBackend]:
    """The service serving a `HeldBackend` (forecasts wait for the test), its client."""
    app = loaded_service_app(**overrides)
    held = HeldBackend()
    state_of(app).use(held)
    held.hold()
    return app.test_client(), held


def queued(client: FlaskClient) -> int:
    """Forecasts waiting at the worker's gate."""
    gate = state_of(client.application).forecaster
    assert isinstance(gate, ForecastGate)
    return gate.queued


def test_a_forecast_that_waits_out_the_queue_time_gets_503_with_retry_after():
    client, held = held_service(max_inflight=3, concurrent_forecasts=1, queue_timeout_s=0.05)
    results: list[int] = []
    running = post_in_background(client, results, FORECAST)
    held.wait_started()
    busy = client.post("/predict", json=FORECAST)
    body = assert_problem(busy, 503)
    assert busy.headers["Retry-After"] == "1" and "KRONOS" not in body["detail"]
    assert "1 forecast slots" in body["detail"] and len(held.calls) == 1
    assert metric_value(client, 'kronos_rejected_requests_total{reason="queued_too_long"}') == 1
    held.go.set()
    running.join(timeout=10)
    assert results == [200]


def test_a_forecast_whose_deadline_passes_in_the_queue_gets_504():
    client, held = held_service(
        max_inflight=3, concurrent_forecasts=1, queue_timeout_s=30, request_timeout_s=0.2
    )
    results: list[int] = []
    running = post_in_background(client, results, FORECAST)
    held.wait_started()
    assert_problem(client.post("/predict", json=FORECAST), 504)
    assert len(held.calls) == 1
    held.go.set()
    running.join(timeout=10)


def test_a_forecast_waits_its_turn_and_the_in_flight_bound_counts_it_refusing_at_once():
    client, held = held_service(max_inflight=2, concurrent_forecasts=1, queue_timeout_s=30)
    results: list[int] = []
    running = post_in_background(client, results, FORECAST)
    held.wait_started()
    waiting = post_in_background(client, results, FORECAST)
    wait_until(lambda: queued(client) == 1)
    assert len(held.calls) == 1  # one forecast at a time
    refused = client.post("/predict", data=b"{not json", content_type="application/json")
    assert_problem(refused, 429)  # not the 400 its body earns: the body was never read
    assert refused.headers["Retry-After"] == "1"
    assert client.get("/health/ready").status_code == 200
    held.go.set()
    for thread in (running, waiting):
        thread.join(timeout=10)
    assert results == [200, 200] and len(held.calls) == 2  # the waiting one ran once it could
    assert_problem(client.post("/predict", data=b"{not json", content_type="application/json"), 400)


def test_the_service_forecasts_run_under_the_time_budget():
    client = loaded_service_app(request_timeout_s=1e-6).test_client()
    overrun = client.post("/predict", json={"isin": "US0378331005", "horizon_days": 3})
    body = assert_problem(overrun, 504)
    assert "KRONOS_REQUEST_TIMEOUT_S" in body["detail"]
    batch = client.post(
        "/predict/batch", json={"items": [{"isin": "US0378331005", "horizon_days": 1}] * 2}
    )
    assert [item["status"] for item in batch.get_json()["results"]] == [504, 504]
    assert client.get("/health").status_code == 200


def test_strict_json_names_what_it_refuses():
    client = loaded_service_app().test_client()
    cases = {
        b'{"isin": "US0378331005", "horizon_days": 3, "horizon_days": 4}': "more than once",
        b'{"isin": "US0378331005", "horizon_days": 3, "temperature": NaN}': "NaN",
        b'{"isin": ' + b"[" * 50_000 + b"]" * 50_000 + b"}": "nested too deeply",
        b'{"isin": ' + b"[" * 20_000 + b"]" * 20_000 + b"}": "nested too deeply",  # < 64 KiB
    }
    for payload, reason in cases.items():
        refused = client.post("/predict", data=payload, content_type="application/json")
        assert reason in assert_problem(refused, 400)["detail"]


def test_the_request_deadline_reaches_the_backend_and_its_timeout_is_a_504(monkeypatch):
    app = loaded_service_app(request_timeout_s=30)
    backend = state_of(app).backend
    honest, seen = backend.forecast, []

    def spy(tasks):  # the real backend, remembering the deadline it was handed
        seen.extend(task.deadline for task in tasks)
        return honest(tasks)

    monkeypatch.setattr(backend, "forecast", spy)
    before = time.monotonic()
    answer = app.test_client().post("/predict", json={"isin": "US0378331005", "horizon_days": 3})
    assert answer.status_code == 200
    (deadline,) = seen
    assert before + 29 < deadline <= time.monotonic() + 30

    gated = build_app(Gate())

    @gated.post("/too-late")
    @runs_forecasts
    def too_late():  # type: ignore[no-untyped-def]
        return jsonify(run_within_budget(lambda: (_ for _ in ()).throw(TimeoutError("late"))))

    assert_problem(gated.test_client().post("/too-late"), 504)


def test_a_forecast_that_answered_says_so_in_the_environ_for_the_memory_trim(gate: Gate) -> None:
    """gunicorn's post_request trims memory after a 200 whose environ has RAN_FORECASTS."""
    app = build_app(gate)

    @app.post("/too-late")
    @runs_forecasts
    def too_late():  # type: ignore[no-untyped-def]
        return jsonify(run_within_budget(lambda: (_ for _ in ()).throw(TimeoutError("late"))))

    gate.open.set()

    def marked(method: str, path: str, status: int) -> bool:
        with app.test_client() as client:  # keeps the request's context (and environ) after it
            answer = client.open(path, method=method, json={"isin": "US0378331005"})
            assert answer.status_code == status
            return request.environ.get(RAN_FORECASTS) is True

    assert marked("POST", "/predict", 200)
    assert not marked("POST", "/too-late", 504)
    assert not marked("GET", "/health", 200)


def test_the_log_filter_strips_url_credentials_with_no_secret_configured():
    record = logging.getLogger("x").makeRecord(
        "x", logging.WARNING, __file__, 1, "hub %s down", ("http://u:pa55@127.0.0.1:9",), None
    )
    log_format.RedactSecrets([]).filter(record)
    assert record.getMessage() == "hub http://127.0.0.1:9 down"
