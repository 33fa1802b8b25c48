"""The service under a real gunicorn (2 workers, free loopback port), as `make serve` runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from benchmarks.live_server import (
    GUNICORN,
    REPO_ROOT,
    LiveServer,
    gunicorn_command,
    listening_socket,
    refusing_port,
    request,
)
from tests.checkpoints import tiny_parameter_counts
from tests.support import QUIET_TORCH, SEED_REQUEST, assert_redacted, kronos_env

pytestmark = pytest.mark.slow


def answers_by_pid(port: int, path: str, workers: int, rounds: int = 20) -> dict[int, dict]:
    """GET `path` of each worker: bursts of concurrent connections until every worker answered
    (an idle worker that accepts quickly would otherwise take every sequential request)."""
    seen: dict[int, dict] = {}

    def ask() -> None:
        status, _, body = request(port, "GET", path)
        assert status == 200
        info = json.loads(body)
        seen[info["worker_pid"]] = info

    for _ in range(rounds):
        with ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(ask) for _ in range(16)]:
                future.result()
        if len(seen) == workers:
            break
    return seen


@pytest.fixture
def black_hole_hub() -> Iterator[str]:
    """A hub URL that accepts connections and never answers: loading must wait out its timeout."""
    with listening_socket(backlog=64) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("mode", ["kronos", "auto"])
def test_each_worker_loads_its_own_model(tmp_path, tiny_checkpoints, mode):
    """`auto` with a checkpoint that loads serves Kronos exactly as `kronos` mode does: no
    fallback anywhere (/models, /health/ready, the answer, the serving-mode gauge)."""
    model_dir, tokenizer_dir = tiny_checkpoints
    env = {**kronos_env(model_dir, tokenizer_dir), "KRONOS_MODE": mode}
    with LiveServer(env, tmp_path / "gunicorn.log", workers=2) as server:
        workers = answers_by_pid(server.port, "/models", 2)
        ready = answers_by_pid(server.port, "/health/ready", 2)
        status, _, body = request(
            server.port, "POST", "/predict", {**SEED_REQUEST, "sample_count": 2}
        )
        metrics = request(server.port, "GET", "/metrics")[2].decode()
        assert server.process is not None
        master_pid = server.process.pid
    assert len(workers) == 2, workers
    assert master_pid not in workers  # the model is loaded in the workers, never in the master
    assert set(ready) == set(workers)
    for pid, info in workers.items():
        assert info["mode"] == mode and info["ready"]
        assert info["serving"] == "kronos" and info["fallback_reason"] is None
        assert info["model"]["id"] == str(model_dir)
        parameters = (info["model"]["parameters"], info["tokenizer"]["parameters"])
        assert parameters == tiny_parameter_counts()
        assert info["load_seconds"] > 0  # measured, so any positive duration
        # KRONOS_TORCH_THREADS, applied in the worker after the fork
        assert info["torch_threads"] == 1
        assert ready[pid] == {key: info[key] for key in ready[pid]}  # the two agree
        assert ready[pid]["status"] == "ready"
    loaded_at = {info["loaded_at"] for info in workers.values()}
    assert len(loaded_at) == 2  # two separate loads
    assert 'kronos_serving_mode_workers{mode="kronos"} 2.0' in metrics
    assert 'mode="simulated"' not in metrics
    assert status == 200
    answer = json.loads(body)
    assert answer["model"] == "kronos" and answer["metadata"]["worker_pid"] in workers
    assert answer["metadata"]["fallback_reason"] is None


def test_ready_only_after_a_long_load_and_auto_fallback_says_why(tmp_path, black_hole_hub):
    env = {
        "KRONOS_MODE": "auto",
        "KRONOS_TORCH_THREADS": "1",
        "HF_ENDPOINT": black_hole_hub,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_OFFLINE": "0",
        "KRONOS_HUB_TIMEOUT_S": "3",
        # Loading (>= 3 s against the silent hub) outlasts gunicorn's worker timeout: the loading
        # worker's heartbeat must keep the master from killing it.
        "KRONOS_TIMEOUT": "2",
        "KRONOS_REQUEST_TIMEOUT_S": "1",
    }
    server = LiveServer(env, tmp_path / "gunicorn.log", workers=2)
    answers: list[tuple[float, int, dict]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                status, _, body = request(server.port, "GET", "/health/ready", timeout_s=0.5)
            except OSError:  # unanswered (waiting in the backlog) until a worker has loaded
                time.sleep(0.05)
                continue
            answers.append((time.time(), status, json.loads(body)))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with server.start(ready_timeout_s=90):
            stop.set()
            poller.join()
            workers = answers_by_pid(server.port, "/models", 2)
            status, _, body = request(server.port, "POST", "/predict", SEED_REQUEST)
    finally:
        stop.set()
        poller.join()
    with pytest.raises(OSError):  # leaving the block stopped the one and only master
        request(server.port, "GET", "/health", timeout_s=2)
    assert answers, "the poller never got an answer"
    assert all(code == 200 and ready["ready"] for _, code, ready in answers), answers[:3]
    for answered_at, _, ready in answers:
        loaded_at = datetime.fromisoformat(workers[ready["worker_pid"]]["loaded_at"]).timestamp()
        assert answered_at >= loaded_at  # no worker answered before its load finished
    for info in workers.values():
        assert info["serving"] == "simulated"
        assert "NeoQuasar/Kronos-small" in assert_redacted(info["fallback_reason"], str(tmp_path))
        assert info["load_seconds"] >= 3  # it waited out the silent hub, then fell back
    assert "WORKER TIMEOUT" not in server.log_text()
    assert status == 200
    answer = json.loads(body)
    assert answer["model"] == "simulated"
    assert answer["metadata"]["fallback_reason"] == info["fallback_reason"]
    assert all("fallback_reason" not in ready for _, _, ready in answers)


def test_kronos_mode_with_a_missing_model_stops_gunicorn(tmp_path):
    missing = tmp_path / "no-such-model"
    env = {**os.environ, **QUIET_TORCH, "KRONOS_MODE": "kronos", "KRONOS_MODEL_ID": str(missing)}
    with listening_socket() as listener:
        finished = subprocess.run(
            gunicorn_command(listener, 2),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            pass_fds=(listener.fileno(),),
        )
    log = finished.stdout + finished.stderr
    # 3 is gunicorn's "worker failed to boot"; when both workers fail at the same moment, the
    # arbiter's own halt meets the second failure and ends with status 1 and a traceback instead.
    assert finished.returncode in (1, 3), log
    assert "cannot serve KRONOS_MODE=kronos" in log and str(missing) in log


@pytest.mark.parametrize(
    ("variable", "value"), [("KRONOS_MAX_CONTEXT", "lots"), ("KRONOS_MODE", "bogus")]
)
def test_a_bad_variable_stops_start_up_with_one_line_naming_it(variable, value):
    """One line on stderr, no traceback, exit status 2 (as the `kronos` command)."""
    finished = subprocess.run(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=REPO_ROOT,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2, finished.stderr
    assert finished.stdout == ""
    assert finished.stderr.startswith(f"error: {variable}={value!r} is invalid: expected ")
    assert len(finished.stderr.splitlines()) == 1, finished.stderr


def test_test_api_script_posts_the_seed_request(tmp_path):
    env = {"KRONOS_MODE": "simulated"}
    with LiveServer(env, tmp_path / "gunicorn.log", workers=1) as server:
        finished = subprocess.run(
            ["bash", str(REPO_ROOT / "test-api.sh")],
            env={**os.environ, "PORT": str(server.port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode == 0, finished.stderr
    answer = json.loads(finished.stdout[finished.stdout.index("{") :])
    assert answer["isin"] == "US67066G1040" and len(answer["predictions"]) == 5
    assert Path(REPO_ROOT / "test-api.sh").stat().st_mode & 0o111


def test_test_api_script_says_when_no_service_answers():
    with refusing_port() as port:
        finished = subprocess.run(
            ["bash", str(REPO_ROOT / "test-api.sh")],
            env={**os.environ, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode != 0 and finished.stdout == ""
    assert "Failed to connect" in finished.stderr
    assert "Expecting value" not in finished.stderr  # no JSON parse error of an empty answer


def test_make_serve_binds_loopback_unless_told_otherwise():
    """`make serve`'s command with no KRONOS_HOST: gunicorn listens on 127.0.0.1 only (API keys
    are off by default); the containers set KRONOS_HOST=0.0.0.0 (tests/test_deploy_files.py)."""
    with refusing_port() as port:  # a free port number; released when gunicorn starts
        pass
    env = {k: v for k, v in os.environ.items() if k != "KRONOS_HOST"}
    env |= {"KRONOS_MODE": "simulated", "KRONOS_PORT": str(port), "KRONOS_WORKERS": "1"}
    with subprocess.Popen(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            listening = next(line for line in server.stdout if "Listening at" in line)
            next(line for line in server.stdout if "ready: serving simulated" in line)
        finally:
            server.send_signal(signal.SIGINT)  # quick shutdown
            server.communicate(timeout=60)
    assert f"Listening at: http://127.0.0.1:{port} " in listening
