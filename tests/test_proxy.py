"""nginx in front of gunicorn (`make serve-proxied`), with the real nginx binary: slow clients
cannot starve the service, bodies are limited and buffered, request ids pass through.

Every test starts ``python -m deploy.nginx.proxied`` (what ``make serve-proxied`` runs) on a free
loopback port: nginx there, gunicorn behind it on a unix socket. The attacks are the ones that
took a bare gunicorn down (issue 10): sockets sending their headers one byte every 0.5 s, and
uploads that declare 1.5 MB, send 1 KB and stall. While they go on, ``/health`` and ``/predict``
must answer normally. Without nginx these tests skip with how to install it, except where
``KRONOS_REQUIRE_NGINX=1`` (CI's ``.ci/run``), where they fail.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from benchmarks.live_server import ProxiedServer, read_to_end, request
from deploy.nginx.proxied import (
    NGINX_INSTALL_HINT,
    TEMPLATE,
    find_nginx,
    render,
    template_values,
    write_config,
)

SEED_REQUEST = {"isin": "US67066G1040", "horizon_days": 5}
MAX_BODY_BYTES = 2 * 1024 * 1024
PROBE_TIMEOUT_S = 20.0  # a probe that waits this long has hung behind the attack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nginx() -> str:
    binary = find_nginx()
    if binary is None:
        if os.environ.get("KRONOS_REQUIRE_NGINX") == "1":
            pytest.fail(f"nginx is required here (KRONOS_REQUIRE_NGINX=1): {NGINX_INSTALL_HINT}")
        pytest.skip(f"nginx is not installed: {NGINX_INSTALL_HINT}, or run .ci/run")
    return binary


@pytest.fixture(scope="module")
def proxied(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedServer]:
    """One simulated worker with 4 request threads and 2 in-flight slots behind nginx: fewer
    than the 20+ slow sockets and 12 stalled uploads below, so any of them reaching gunicorn
    would show."""
    env = {
        "KRONOS_MODE": "simulated",
        "KRONOS_THREADS": "4",
        "KRONOS_MAX_INFLIGHT": "2",
        "KRONOS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    log_path = tmp_path_factory.mktemp("proxied") / "proxied.log"
    with ProxiedServer(env, log_path, workers=1) as server:
        yield server


class Attack:
    """Client sockets to ``port`` that each send ``head`` then ``trickle`` one byte every
    ``interval_s`` until stopped (or the server closes them)."""

    def __init__(
        self, port: int, count: int, head: bytes, trickle: bytes, interval_s: float
    ) -> None:
        self.sockets = [
            socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)
        ]
        self.head, self.trickle, self.interval_s = head, trickle, interval_s
        self.stop = threading.Event()
        self.sent = [0] * count
        self.closed_by_server = [False] * count
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)
        ]

    def _run(self, index: int) -> None:
        sock = self.sockets[index]
        try:
            sock.sendall(self.head)
            for byte in self.trickle:
                if self.stop.wait(self.interval_s):
                    return
                sock.sendall(bytes([byte]))
                self.sent[index] += 1
        except OSError:
            self.closed_by_server[index] = True

    def __enter__(self) -> Attack:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()

    def wait_sent(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait (bounded) until every socket has trickled ``count`` bytes."""
        deadline = time.monotonic() + timeout_s
        while min(self.sent) < count:
            assert not any(self.closed_by_server), "a slow socket was closed early"
            assert time.monotonic() < deadline, f"the attack did not get going: {self.sent}"
            time.sleep(0.1)

    def still_open(self) -> list[bool]:
        """Per socket: the server has not closed it (no EOF or reset waiting to be read)."""
        states = []
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                states.append(sock.recv(1, socket.MSG_PEEK) != b"")
            except BlockingIOError:
                states.append(True)
            except OSError:
                states.append(False)
            finally:
                sock.setblocking(True)
        return states


def probe(port: int, rounds: int) -> list[tuple[int, int]]:
    """(``/health`` status, ``/predict`` status), ``rounds`` times, each on a new connection."""
    statuses = []
    for _ in range(rounds):
        health = request(port, "GET", "/health", timeout_s=PROBE_TIMEOUT_S)[0]
        predict = request(port, "POST", "/predict", SEED_REQUEST, timeout_s=PROBE_TIMEOUT_S)[0]
        statuses.append((health, predict))
    return statuses


def test_slowloris_headers_do_not_starve_health_or_predict(proxied: ProxiedServer) -> None:
    head = b"POST /predict HTTP/1.1\r\n"
    trickle = b"Host: 127.0.0.1\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 200
    with Attack(proxied.port, 24, head, trickle, interval_s=0.5) as attack:
        attack.wait_sent(2)
        statuses = probe(proxied.port, 5)
        open_during_probes = attack.still_open()
    assert statuses == [(200, 200)] * 5
    assert all(open_during_probes), "the slow sockets were dropped before the probes ended"


def test_stalled_uploads_do_not_hold_threads_or_in_flight_slots(proxied: ProxiedServer) -> None:
    declared = 1_500_000  # under the 2 MB limit
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(declared).encode() + b"\r\n\r\n" + b"[" * 1024
    )
    with Attack(proxied.port, 12, head, b"", interval_s=0.5) as attack:
        statuses = probe(proxied.port, 5)
        assert all(attack.still_open()), "the stalled uploads must still be pending"
        # nginx, not gunicorn, gives up on them: client_body_timeout (10 s) without a byte.
        deadline = time.monotonic() + 60
        while any(attack.still_open()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(attack.still_open()), "nginx must drop stalled uploads"
    assert statuses == [(200, 200)] * 5
    lines = [json.loads(line) for line in proxied.log_text().splitlines() if '"ts"' in line]
    timed_out = [
        line for line in lines if line["logger"] == "nginx.access" and line["status"] == 408
    ]
    assert len(timed_out) >= 12, "nginx logs each timed-out body as a 408"
    app_lines = [line for line in lines if line["logger"] == "kronos.access"]
    assert all(line["status"] == 200 for line in app_lines), "gunicorn never saw a stalled body"


def test_a_slow_but_steady_body_is_answered(proxied: ProxiedServer) -> None:
    body = json.dumps({**SEED_REQUEST, "quantiles": [0.05, 0.25, 0.5, 0.75, 0.95]}).encode()
    connection = socket.create_connection(("127.0.0.1", proxied.port), timeout=30)
    try:
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        for start in range(0, len(body), 8):  # 8 bytes every 0.2 s: well within 10 s a read
            connection.sendall(body[start : start + 8])
            time.sleep(0.2)
            assert request(proxied.port, "GET", "/health", timeout_s=PROBE_TIMEOUT_S)[0] == 200
        answer = read_to_end(connection)
    finally:
        connection.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"predictions"' in answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_a_413_problem_with_the_request_id(
    proxied: ProxiedServer, chunked: bool
) -> None:
    payload = b'{"isin": "' + b"U" * (MAX_BODY_BYTES + 10) + b'"}'
    connection = socket.create_connection(("127.0.0.1", proxied.port), timeout=30)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(payload)
    try:
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Request-ID: upload-413\r\nConnection: close\r\n" + framing + b"\r\n\r\n"
        )
        try:
            if chunked:
                for start in range(0, len(payload), 65536):
                    part = payload[start : start + 65536]
                    connection.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                connection.sendall(b"0\r\n\r\n")
            else:
                connection.sendall(payload)
        except OSError:
            pass  # nginx may answer and close before the whole body is sent
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    finally:
        connection.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"Content-Type: application/problem+json" in head
    assert b"X-Request-ID: upload-413" in head
    problem = json.loads(body)
    assert problem["status"] == 413 and problem["request_id"] == "upload-413"
    assert f"{MAX_BODY_BYTES}-byte limit (KRONOS_MAX_BODY_BYTES)" in problem["detail"]


def _raw_exchange(port: int, sent: bytes) -> tuple[bytes, bytes]:
    """(head, body) of the answer to the bytes `sent` on a fresh connection."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(sent)
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n", 431),
        (  # five 7 KB header lines: each fits nginx's 8 KiB buffer, not all in its 32 KiB
            b"GET /health HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-Many-%d: %s\r\n" % (i, b"c" * 7000) for i in range(5))
            + b"\r\n",
            431,
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
    ids=["uri-9000", "header-20k", "headers-over-32k", "garbage"],
)
def test_nginx_s_own_refusals_are_problems_with_a_request_id(
    proxied: ProxiedServer, sent: bytes, status: int
) -> None:
    """What nginx refuses before reading a request whole (the app never sees it) is a
    problem+json with an X-Request-ID as well, not nginx's HTML page."""
    head, body = _raw_exchange(proxied.port, sent)
    assert head.startswith(b"HTTP/1.1 %d" % status), head[:300]
    assert b"Content-Type: application/problem+json" in head
    request_id = re.search(rb"X-Request-ID: ([0-9a-f]{32})(?:\r|$)", head)
    assert request_id, head
    problem = json.loads(body)
    assert problem["status"] == status and problem["request_id"] == request_id[1].decode()


def test_a_gzip_body_reaches_the_app_as_sent_and_is_a_415(proxied: ProxiedServer) -> None:
    """nginx does not decompress request bodies (no module here does): the app refuses the
    content coding by name, not as a body that is not UTF-8."""
    payload = gzip.compress(json.dumps(SEED_REQUEST).encode())
    head, body = _raw_exchange(
        proxied.port,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
        % (len(payload), payload),
    )
    assert head.startswith(b"HTTP/1.1 415"), head[:300]
    assert b"Content-Type: application/problem+json" in head
    assert "content encoding 'gzip' is not supported" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("client-trace-1", True), ("not safe <id>", False), ("x" * 65, False)],
    ids=["safe", "unsafe", "too-long"],
)
def test_request_ids_pass_through_nginx_as_the_app_accepts_them(
    proxied: ProxiedServer, sent: str, kept: bool
) -> None:
    status, headers, _ = request(
        proxied.port, "POST", "/predict", SEED_REQUEST, headers={"X-Request-ID": sent}
    )
    assert status == 200
    echoed = headers["X-Request-ID"]
    assert (echoed == sent) is kept
    if not kept:
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    lines = [json.loads(line) for line in proxied.log_text().splitlines() if echoed in line]
    assert any(line.get("logger") == "kronos.access" for line in lines), (
        "the app logged the id the client got back"
    )


def test_nginx_stamps_x_request_start_over_the_clients(proxied: ProxiedServer) -> None:
    """The app refuses (503) a request stamped as having queued an hour; sent straight to
    gunicorn's socket it is refused, through nginx the stamp is nginx's own and it is served."""
    body = json.dumps(SEED_REQUEST).encode()
    stale = f"t={time.time() - 3600:.3f}"
    raw = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Request-Start: {stale}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as direct:
        direct.settimeout(PROBE_TIMEOUT_S)
        direct.connect(str(proxied.run_dir / "gunicorn.sock"))
        direct.sendall(raw)
        answer = read_to_end(direct)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    status, _, _ = request(
        proxied.port, "POST", "/predict", SEED_REQUEST, headers={"X-Request-Start": stale}
    )
    assert status == 200


# --------------------------------------------------------------------------- configuration
def test_the_template_is_filled_from_the_settings_and_nginx_accepts_it(
    nginx: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"KRONOS_PORT": "5123", "KRONOS_HOST": "::1", "KRONOS_MAX_BODY_BYTES": "12345"}
    )
    values = template_values(settings, "unix:/run/kronos.sock", "/dev/stdout")
    assert values["NGINX_LISTEN"] == "[::1]:5123"
    assert values["NGINX_CLIENT_MAX_BODY_SIZE"] == "12345"
    rendered = render(TEMPLATE.read_text(), values)
    assert "${NGINX_" not in rendered and "client_max_body_size 12345;" in rendered
    assert "$kronos_request_id" in rendered and "$msec" in rendered, "nginx variables stay"
    with pytest.raises(KeyError, match="NGINX_UPSTREAM"):
        render(TEMPLATE.read_text(), {k: v for k, v in values.items() if k != "NGINX_UPSTREAM"})
    local = Settings.from_env({"KRONOS_HOST": "127.0.0.1", "KRONOS_PORT": "5124"})
    main_conf = write_config(local, tmp_path)
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(main_conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
