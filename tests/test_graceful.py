"""Graceful edges against a real gunicorn (and through nginx): what kept-alive clients see when a
worker stops or dies.

- SIGTERM: an idle kept-alive connection is closed by the server (EOF, not a hang until the
  client's own timeout), and a request sent on a kept-alive connection after the signal is
  answered with ``Connection: close``; gunicorn then exits 0. Through nginx (`make
  serve-proxied`), the same for the client's connection to nginx.
- kill -9 of a worker: its clients reconnect to the survivor; because a connection is closed
  after ``KEEPALIVE_MAX_REQUESTS`` requests (gunicorn.conf.py), kept-alive clients come back to
  the replacement worker once it is ready instead of staying on the survivor.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from benchmarks.live_server import LiveServer, ProxiedServer, read_to_end
from tests.test_faults import worker_pids
from tests.test_proxy import nginx  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

SIMULATED = {"KRONOS_MODE": "simulated"}


def kept_alive(port: int) -> http.client.HTTPConnection:
    """A connection that has had one answer and was kept open by the server."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    assert response.status == 200 and response.getheader("Connection") != "close"
    return connection


def closed_by_server(connection: http.client.HTTPConnection, timeout_s: float = 20.0) -> bool:
    """Whether the server closes ``connection`` (EOF) within ``timeout_s``."""
    assert connection.sock is not None
    connection.sock.settimeout(timeout_s)
    try:
        return connection.sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def answer_until_close(connection: http.client.HTTPConnection, tries: int) -> list[tuple[int, str]]:
    """GET /health on ``connection`` every 0.1 s until an answer says ``Connection: close``;
    the (status, Connection header) of each answer."""
    answers = []
    for _ in range(tries):
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        answers.append((response.status, str(response.getheader("Connection"))))
        if response.getheader("Connection") == "close":
            break
        time.sleep(0.1)
    return answers


def test_sigterm_closes_idle_kept_alive_connections_and_answers_new_requests_with_close(
    tmp_path: Path,
) -> None:
    server = LiveServer(SIMULATED, tmp_path / "gunicorn.log", workers=1).start()
    assert server.process is not None
    idle, used = kept_alive(server.port), kept_alive(server.port)
    try:
        server.process.send_signal(signal.SIGTERM)
        answers = answer_until_close(used, tries=10)
        assert answers[-1] == (200, "close"), answers
        assert closed_by_server(idle), "an idle kept-alive connection must not hang"
    finally:
        idle.close()
        used.close()
    assert server.process.wait(timeout=30) == 0


def test_sigterm_through_nginx_finishes_the_request_in_flight_and_closes_idle_connections(
    nginx: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = ProxiedServer(SIMULATED, tmp_path / "proxied.log", workers=1).start()
    assert server.process is not None
    idle = kept_alive(server.port)
    body = json.dumps({"isin": "US67066G1040", "horizon_days": 5}).encode()
    in_flight = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        in_flight.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
        )
        time.sleep(0.5)  # nginx is reading the body
        server.process.send_signal(signal.SIGTERM)
        assert closed_by_server(idle), "nginx closes idle client connections when it stops"
        in_flight.sendall(body[10:])
        answer = read_to_end(in_flight)
    finally:
        idle.close()
        in_flight.close()
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"Connection: close" in head
    assert server.process.wait(timeout=60) == 0


def test_kept_alive_clients_come_back_to_a_replaced_worker(tmp_path: Path) -> None:
    with LiveServer(SIMULATED, tmp_path / "gunicorn.log", workers=2) as server:
        assert server.process is not None
        master = server.process.pid
        before = worker_pids(master)
        victim = min(before)
        clients = [
            http.client.HTTPConnection("127.0.0.1", server.port, timeout=20) for _ in range(4)
        ]

        def ask(client: http.client.HTTPConnection) -> int:
            """GET /health/ready on ``client`` (reconnecting if the server dropped it): the pid
            of the worker that answered."""
            try:
                client.request("GET", "/health/ready")
                response = client.getresponse()
            except (http.client.HTTPException, OSError):
                client.close()  # a connection to the killed worker; http.client reconnects
                client.request("GET", "/health/ready")
                response = client.getresponse()
            return int(json.loads(response.read())["worker_pid"])

        for client in clients:
            ask(client)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(worker_pids(master) - before) < 1 or victim in worker_pids(master):
            assert time.monotonic() < deadline, server.log_tail()
            for client in clients:
                ask(client)  # the survivor takes the killed worker's clients meanwhile
            time.sleep(0.05)
        (newcomer,) = worker_pids(master) - before
        while f"worker {newcomer} ready" not in server.log_text():
            assert time.monotonic() < deadline, server.log_tail()
            for client in clients:
                ask(client)
            time.sleep(0.05)
        answered_by: set[int] = set()
        for _ in range(100):
            answered_by |= {ask(client) for client in clients}
            if newcomer in answered_by:
                break
        for client in clients:
            client.close()
    assert newcomer in answered_by, f"kept-alive clients stayed on {answered_by}"
