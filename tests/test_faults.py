"""Faults against a real gunicorn: overload, killed worker, graceful stop, unreachable hub, corrupt
checkpoint.

Every test starts the service as ``make serve`` does (``gunicorn -c gunicorn.conf.py wsgi:app``)
on a free loopback port, with tiny checkpoints saved by ``tests/checkpoints.py`` where a model is
needed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.live_server import (
    REPO_ROOT,
    LiveServer,
    gunicorn_command,
    listening_socket,
    read_to_end,
    refusing_port,
    request,
)
from tests.canaries import HUB_PASSWORD_CANARY
from tests.support import SEED_REQUEST, assert_redacted, kronos_env

pytestmark = pytest.mark.slow


def worker_pids(master_pid: int) -> set[int]:
    """Live child processes of the gunicorn master, read from /proc."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == master_pid and fields[0] != "Z":
            children.add(int(entry.name))
    return children


def accepted(connection: socket.socket) -> bool:
    """Whether the server has accept()ed the client `connection`: the server's end of it has an
    inode in /proc/net/tcp (0 while it waits in the listen backlog)."""
    client_port, server_port = connection.getsockname()[1], connection.getpeername()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, inode = (line.split()[i] for i in (1, 2, 9))
        ports = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
        if ports == (server_port, client_port):
            return inode != "0"
    return False


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, server: LiveServer
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s} s:\n{server.log_tail()}")
        time.sleep(0.1)


LOAD_CLIENTS = 3


class Load:
    """Client threads posting the seed's request until stopped: each answer's arrival time,
    status and answering worker, in arrival order."""

    def __init__(self, port: int, clients: int = LOAD_CLIENTS) -> None:
        self.port = port
        self.outcomes: list[tuple[float, int | str, int | None]] = []
        self._answered = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        while not self._stop.is_set():
            worker = None
            try:
                status: int | str
                status, _, body = request(self.port, "POST", "/predict", SEED_REQUEST)
                if status == 200:
                    worker = json.loads(body)["metadata"]["worker_pid"]
            except OSError as error:
                status = type(error).__name__
            with self._answered:
                self.outcomes.append((time.monotonic(), status, worker))
                self._answered.notify_all()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_until(self, what: str, condition: Callable[[], bool], timeout_s: float) -> None:
        """Block until `condition()` holds, checked after each answer; fail after `timeout_s`."""
        with self._answered:
            if not self._answered.wait_for(condition, timeout=timeout_s):
                pytest.fail(f"no {what} within {timeout_s} s: {self.since(0)}")

    def since(self, moment: float) -> Counter[int | str]:
        with self._answered:
            return Counter(status for at, status, _ in self.outcomes if at >= moment)

    def workers_since(self, moment: float) -> set[int]:
        """Workers that answered 200 since `moment`."""
        with self._answered:
            return {worker for at, _, worker in self.outcomes if at >= moment and worker}


def test_killed_worker_is_respawned_reloads_its_model_and_service_keeps_answering(
    tmp_path, tiny_checkpoints
):
    # The survivor alone takes every client meanwhile: its in-flight bound holds them all (no 429).
    env = {**kronos_env(*tiny_checkpoints), "KRONOS_MAX_INFLIGHT": str(LOAD_CLIENTS)}
    with LiveServer(env, tmp_path / "gunicorn.log", workers=2) as server:
        assert server.process is not None
        master = server.process.pid
        before = worker_pids(master)
        assert len(before) == 2
        victim = min(before)
        with Load(server.port) as load:
            load.wait_until("answers before the kill", lambda: load.since(0)[200] >= 3, 60)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for(
                lambda: (
                    len(worker_pids(master) - before) == 1 and victim not in worker_pids(master)
                ),
                60,
                "a replacement worker",
                server,
            )
            (newcomer,) = worker_pids(master) - before
            wait_for(
                lambda: f"worker {newcomer} ready: serving kronos" in server.log_text(),
                120,
                "the new worker loading its model",
                server,
            )
            respawned_at = time.monotonic()
            load.wait_until(
                "answer from the new worker",
                lambda: newcomer in load.workers_since(respawned_at),
                60,
            )
        during = load.since(killed_at)
        after = load.since(respawned_at)
        assert set(after) == {200}, after
        assert load.workers_since(respawned_at) <= (before - {victim}) | {newcomer}
        assert during[200] > 0, during
        lost = sum(count for status, count in during.items() if status != 200)
        assert lost <= 3, f"only requests on the killed worker may fail: {during}"
        models = json.loads(request(server.port, "GET", "/models")[2])
        assert models["mode"] == "kronos"
        metrics = request(server.port, "GET", "/metrics")[2].decode()
        assert 'kronos_serving_mode_workers{mode="kronos"} 2.0' in metrics, (
            "child_exit must drop the dead worker from live gauges"
        )


def test_overload_is_refused_at_once_with_retry_after_while_probes_answer(tmp_path):
    env = {"KRONOS_MODE": "simulated", "KRONOS_MAX_INFLIGHT": "1", "KRONOS_THREADS": "8"}
    with LiveServer(env, tmp_path / "gunicorn.log", workers=1) as server:
        started = time.monotonic()
        with Load(server.port, clients=12) as load:
            refused_headers = None
            probes = []
            deadline = time.monotonic() + 30
            while (refused_headers is None or len(probes) < 20) and time.monotonic() < deadline:
                probes.append(request(server.port, "GET", "/health/ready")[0])
                status, headers, _ = request(server.port, "POST", "/predict", SEED_REQUEST)
                if status == 429:
                    refused_headers = headers
        seen = load.since(started)
    assert refused_headers is not None, f"no 429 under 12 clients against 1 slot: {seen}"
    assert refused_headers["Retry-After"] == "1"
    assert refused_headers["Content-Type"] == "application/problem+json"
    assert set(probes) == {200}, "probes are never refused"
    assert seen[200] > 0 and set(seen) <= {200, 429}, seen


def test_sigterm_lets_an_in_flight_request_finish_before_exit(tmp_path):
    env = {"KRONOS_MODE": "simulated"}
    server = LiveServer(env, tmp_path / "gunicorn.log", workers=1).start()
    assert server.process is not None
    body = json.dumps(SEED_REQUEST).encode()
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        connection.sendall(head + body[:10])
        wait_for(lambda: accepted(connection), 30, "the worker accepting the request", server)
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_log("Handling signal: term", timeout_s=30)
        assert server.process.poll() is None, "gunicorn quit with a request in flight"
        connection.sendall(body[10:])
        answer = read_to_end(connection)
    finally:
        connection.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"model"' in answer
    assert server.process.wait(timeout=30) == 0
    with pytest.raises(OSError):
        request(server.port, "GET", "/health", timeout_s=2)


def test_unreachable_hub_in_auto_mode_falls_back_within_bounded_time(tmp_path):
    """...and the hub URL's password appears in no log line and no answer (the log names the hub
    as http://127.0.0.1:PORT)."""
    with refusing_port() as closed_port:  # connections are refused at once
        env = {
            "KRONOS_MODE": "auto",
            "HF_ENDPOINT": f"http://kronos:{HUB_PASSWORD_CANARY}@127.0.0.1:{closed_port}",
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_OFFLINE": "0",
            "KRONOS_HUB_TIMEOUT_S": "2",
        }
        started = time.monotonic()
        with LiveServer(env, tmp_path / "gunicorn.log", workers=1) as server:
            ready_after_s = time.monotonic() - started
            status, _, body = request(server.port, "POST", "/predict", SEED_REQUEST)
            models = json.loads(request(server.port, "GET", "/models")[2])
    assert ready_after_s < 90, "the fallback must not wait on the hub without bound"
    assert status == 200
    answer = json.loads(body)
    assert answer["model"] == "simulated"
    reason = assert_redacted(answer["metadata"]["fallback_reason"], str(tmp_path))
    assert models["fallback_reason"] == reason and "NeoQuasar/Kronos-small" in reason
    log = (tmp_path / "gunicorn.log").read_text()
    assert f"hub http://127.0.0.1:{closed_port} unreachable" in log
    assert HUB_PASSWORD_CANARY not in log + body.decode() + json.dumps(models)


@pytest.mark.parametrize("mode", ["kronos", "auto"])
def test_corrupt_checkpoint_is_a_clear_start_up_error(tmp_path, tiny_checkpoints, mode):
    model_dir, tokenizer_dir = tiny_checkpoints
    model = tmp_path / "corrupt-model"
    shutil.copytree(model_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    env = {**kronos_env(model, tokenizer_dir), "KRONOS_MODE": mode}
    log_path = tmp_path / "gunicorn.log"
    if mode == "kronos":
        with listening_socket() as listener, log_path.open("wb") as log:
            finished = subprocess.run(
                gunicorn_command(listener, 1),
                cwd=REPO_ROOT,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                pass_fds=(listener.fileno(),),
            )
        assert finished.returncode != 0
        entries = [json.loads(line) for line in log_path.read_text().splitlines() if line]
        critical = [e["message"] for e in entries if e["level"] == "CRITICAL"]
        assert len(critical) == 1, entries
        assert "cannot serve KRONOS_MODE=kronos" in critical[0]
        assert str(model) in critical[0] and "unusable" in critical[0]
        assert not any("Traceback" in json.dumps(e) for e in entries), "one clear line, no trace"
    else:
        with LiveServer(env, log_path, workers=1) as server:
            models = json.loads(request(server.port, "GET", "/models")[2])
            answer = json.loads(request(server.port, "POST", "/predict", SEED_REQUEST)[2])
        assert answer["model"] == "simulated"
        reason = assert_redacted(models["fallback_reason"], str(tmp_path))
        assert "'<path>'" in reason and "unusable" in reason
        assert str(model) in log_path.read_text()  # the log has it whole
