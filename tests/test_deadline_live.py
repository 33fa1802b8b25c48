"""A forecast that runs out of time while it decodes, on a real gunicorn.

One worker serves a Kronos-small-shaped random checkpoint (the real model's cost per bar) with one
in-flight slot and a short `KRONOS_REQUEST_TIMEOUT_S`. A forecast of 300 bars with 64 sample
paths needs many times that budget, so the deadline passes mid-decode: the client gets 504
problem+json at the budget, the decoding thread stops at its next bar (the worker says how far it
got), the slot is free again for the next request, and the worker burns no more CPU on the
abandoned work.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.live_server import LiveServer, request
from tests.checkpoints import make_published_shape_checkpoints
from tests.support import kronos_env

pytestmark = pytest.mark.slow

BUDGET_S = 4.0
BARS = 300  # daily synthetic history: one bar a horizon day
LONG_REQUEST = {"isin": "US67066G1040", "horizon_days": BARS, "sample_count": 64, "seed": 1}
SMALL_REQUEST = {"isin": "US67066G1040", "horizon_days": 1, "sample_count": 1, "lookback": 32}
STOPPED = re.compile(r"stopped \(\w+: forecast passed its deadline after (\d+) of (\d+) bars\)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("deadline")
    env = {
        **kronos_env(*make_published_shape_checkpoints(folder, "Kronos-small")),
        "KRONOS_REQUEST_TIMEOUT_S": str(BUDGET_S),
        "KRONOS_MAX_INFLIGHT": "1",
        "KRONOS_MAX_HORIZON_DAYS": str(BARS),
    }
    with LiveServer(env, folder / "gunicorn.log", workers=1) as live:
        yield live


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads, ended ones included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(port: int, sample: str) -> float:
    exposition = request(port, "GET", "/metrics")[2].decode()
    match = re.search(rf"^{re.escape(sample)} (\S+)$", exposition, flags=re.MULTILINE)
    assert match, f"{sample} missing from /metrics"
    return float(match.group(1))


def test_a_forecast_past_its_budget_mid_decode_is_504_and_stops(server: LiveServer) -> None:
    worker = json.loads(request(server.port, "GET", "/models")[2])["worker_pid"]
    cpu_before = cpu_seconds(worker)
    sent = time.monotonic()
    status, headers, body = request(server.port, "POST", "/predict", LONG_REQUEST, timeout_s=120)
    answered_after_s = time.monotonic() - sent
    cpu_at_504 = cpu_seconds(worker)

    assert status == 504, body[:500]
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 504 and "KRONOS_REQUEST_TIMEOUT_S" in problem["detail"]
    # At the budget, not when the work ends (that is the 120 s gunicorn timeout's job).
    assert BUDGET_S <= answered_after_s < BUDGET_S + 5, answered_after_s

    line = server.wait_for_log(problem["request_id"] + ", answered 504,", timeout_s=120)
    cpu_at_stop = cpu_seconds(worker)
    stopped = STOPPED.search(line)
    assert stopped, line
    decoded, planned = map(int, stopped.groups())
    assert planned == BARS and 1 <= decoded < BARS, "the deadline passed during decoding"
    # Past the 504 the thread decoded at most one more bar: far less CPU than the work done
    # within the budget (load, prefill and the first bars), while the unfinished bars would
    # have needed many times that.
    assert cpu_at_stop - cpu_at_504 < cpu_at_504 - cpu_before

    # The slot is free (one slot: a held one would answer 429) and the worker still serves.
    status, _, body = request(server.port, "POST", "/predict", SMALL_REQUEST, timeout_s=120)
    assert status == 200, body[:500]
    assert json.loads(body)["model"] == "kronos"
    assert metric(server.port, "kronos_inflight_predictions") == 0.0
    assert metric(server.port, 'kronos_rejected_requests_total{reason="deadline"}') == 1.0
