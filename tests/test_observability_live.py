"""Metrics, JSON logs and the secret scan against a real gunicorn with two workers.

The service runs in auto mode with the hub unreachable (``HF_ENDPOINT`` at a closed loopback port),
an ``HF_TOKEN`` and API keys set to recognisable canaries, so every path that could leak them
(load failure, fallback reason, 401s, /models, error pages, gunicorn's own lines) is exercised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks.live_server import LiveServer, refusing_port, request
from kronos_integration.config import ForecastSettings
from tests.canaries import API_KEY_CANARIES, HF_TOKEN_CANARY, SECRETS
from tests.support import SEED_REQUEST

pytestmark = pytest.mark.slow

PREDICTIONS = 24


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    scratch = tmp_path_factory.mktemp("observability")
    with refusing_port() as closed_port:
        env = {
            "KRONOS_MODE": "auto",
            "HF_TOKEN": HF_TOKEN_CANARY,
            "HF_ENDPOINT": f"http://127.0.0.1:{closed_port}",
            "HF_HOME": str(scratch / "hf-home"),
            "HF_HUB_OFFLINE": "0",
            "KRONOS_HUB_TIMEOUT_S": "2",
            "KRONOS_API_KEYS": ",".join(API_KEY_CANARIES),
            "KRONOS_LOG_FORMAT": "json",
            "KRONOS_WORKERS": "2",
        }
        with LiveServer(env, scratch / "gunicorn.log", workers=2) as live:
            yield live


def authorised(key: str = API_KEY_CANARIES[0]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sample_value(exposition: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", exposition, flags=re.MULTILINE)
    assert match, f"{sample} missing from /metrics"
    return float(match.group(1))


def test_metrics_add_up_over_both_workers(server):
    before = request(server.port, "GET", "/metrics", headers=authorised())[2].decode()
    paths = ForecastSettings.default_sample_count  # the seed request asks for the default
    per_answer = {  # what each answered seed request (5 daily bars) adds
        'kronos_http_requests_total{endpoint="/predict",method="POST",status="200"}': 1,
        'kronos_inference_duration_seconds_count{mode="simulated"}': 1,
        'kronos_forecast_samples_total{mode="simulated"}': paths,
        'kronos_forecast_bars_total{mode="simulated"}': paths * 5,
    }
    start = {
        sample: sample_value(before, sample) if sample in before else 0.0 for sample in per_answer
    }

    def predict(_: int) -> tuple[int, bytes]:
        status, _, body = request(
            server.port, "POST", "/predict", SEED_REQUEST, headers=authorised()
        )
        return status, body

    # Concurrent bursts until both workers have answered (sequential requests may all land on
    # one); 429s are allowed, and only the 200s must show up in the merged counter.
    answered, pids = 0, set()
    for _ in range(20):
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(predict, range(PREDICTIONS)))
        for status, body in outcomes:
            assert status in (200, 429), body
            if status == 200:
                answered += 1
                pids.add(json.loads(body)["metadata"]["worker_pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2, "one worker answered every prediction"
    after = request(server.port, "GET", "/metrics", headers=authorised())[2].decode()
    for sample, each in per_answer.items():
        assert sample_value(after, sample) - start[sample] == each * answered, sample
    assert sample_value(after, 'kronos_serving_mode_workers{mode="simulated"}') == 2.0
    assert sample_value(after, "kronos_inflight_predictions") == 0.0


def test_every_log_line_is_json_and_each_request_has_an_access_line(server):
    request_id = "trace-4f1c2a"
    headers = {**authorised(), "X-Request-ID": request_id}
    status, answer_headers, _ = request(
        server.port, "POST", "/predict", SEED_REQUEST, headers=headers
    )
    assert status == 200 and answer_headers["X-Request-ID"] == request_id
    lines = [line for line in server.log_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    (access,) = [e for e in entries if e.get("request_id") == request_id and "route" in e]
    assert access["logger"] == "kronos.access"
    assert access["route"] == "/predict" and access["status"] == 200
    assert access["isin"] == SEED_REQUEST["isin"] and access["horizon_days"] == 5
    assert access["mode"] == "simulated" and access["latency_ms"] > 0
    assert any("NeoQuasar/Kronos-small" in e["message"] for e in entries if e["level"] == "WARNING")


def test_secrets_never_leave_the_service(server):
    """Exercise every answer shape, then scan all responses and the whole log for the canaries."""
    seen: list[str] = []
    key = authorised()
    calls = [
        ("GET", "/health", None, {}),
        ("GET", "/health/ready", None, {}),
        ("GET", "/models", None, key),
        ("GET", "/openapi.json", None, key),
        ("GET", "/metrics", None, key),
        ("POST", "/predict", SEED_REQUEST, key),
        ("POST", "/predict/batch", {"items": [SEED_REQUEST, {"isin": "bad"}]}, key),
        ("POST", "/predict", {"isin": "US67066G1040", "horizon_days": -1}, key),
        ("POST", "/predict", SEED_REQUEST, {}),
        ("POST", "/predict", SEED_REQUEST, {"Authorization": f"Bearer {HF_TOKEN_CANARY}"}),
        ("POST", "/predict", SEED_REQUEST, {"Authorization": f"Basic {API_KEY_CANARIES[1]}"}),
        ("GET", "/no/such/path", None, key),
        ("DELETE", "/predict", None, key),
    ]
    for method, path, body, headers in calls:
        status, answer_headers, payload = request(server.port, method, path, body, headers=headers)
        seen.append(
            f"{method} {path} -> {status} {answer_headers} {payload.decode(errors='replace')}"
        )
    # A client that sends a key as its request id or ISIN gets its own input back in the answer;
    # the log must still not keep it.
    for smuggled in ({"X-Request-ID": API_KEY_CANARIES[0]}, {}):
        body = {"isin": API_KEY_CANARIES[1], "horizon_days": 1} if not smuggled else SEED_REQUEST
        request(server.port, "POST", "/predict", body, headers={**key, **smuggled})
    transcript = "\n".join(seen)
    log = server.log_text()
    for secret in SECRETS:
        assert secret not in transcript, f"a response carries the secret {secret[:8]}..."
        assert secret not in log, f"the log carries the secret {secret[:8]}..."
    assert "-> 401" in transcript and "-> 200" in transcript
