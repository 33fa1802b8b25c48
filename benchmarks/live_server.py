"""Start the real service under gunicorn on a free loopback port, for benchmarks and slow tests.

``LiveServer`` runs ``gunicorn -c gunicorn.conf.py wsgi:app`` from the repository root exactly as
``make serve`` does, only on a loopback port and with the environment the caller gives, then waits
until each worker has answered ``/health/ready`` with 200. ``ProxiedServer`` runs
``make serve-proxied``'s command instead: nginx on the loopback port in front of gunicorn on a unix
socket. Their output goes to a log file the caller can read afterwards (secret scans, JSON log
checks).

No port is picked, released and bound again later (another process could take it in between): the
listening socket is made here, on a port the kernel chooses, and handed to gunicorn as an inherited
file descriptor (``--bind fd://N``), so the port is the server's from the start. nginx cannot take
a socket that way, so ``ProxiedServer`` releases it just before nginx binds the same port.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def listening_socket(backlog: int = 256) -> socket.socket:
    """A TCP socket listening on a port of 127.0.0.1 that the kernel chose; inheritable."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    listener.set_inheritable(True)
    return listener


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses every connection while the block runs: bound but never
    listening, so no other process can take it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def gunicorn_command(listener: socket.socket, workers: int, *extra_args: str) -> list[str]:
    """``make serve``'s command serving on `listener` (pass its fd to the child: ``pass_fds``)."""
    return [
        str(GUNICORN),
        "-c",
        "gunicorn.conf.py",
        "--bind",
        f"fd://{listener.fileno()}",
        "--workers",
        str(workers),
        *extra_args,
        "wsgi:app",
    ]


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection: (status, headers, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        payload = None if body is None else json.dumps(body).encode()
        sent_headers = {"Content-Type": "application/json"} if payload is not None else {}
        sent_headers.update(headers or {})
        connection.request(method, path, body=payload, headers=sent_headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def metric_sum(port: int, sample: str) -> float:
    """The sum over workers and labels of one sample of /metrics."""
    _, _, body = request(port, "GET", "/metrics")
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        total += sum(s.value for s in family.samples if s.name == sample)
    return total


def wait_idle(port: int, timeout_s: float = 300.0, settle_s: float = 0.0) -> None:
    """Wait until no prediction is in flight on any worker (abandoned ones included), at most
    `timeout_s`, then `settle_s` more."""
    deadline = time.monotonic() + timeout_s
    while metric_sum(port, "kronos_inflight_predictions") > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(settle_s)


def read_to_end(connection: socket.socket) -> bytes:
    """Everything `connection` receives until the other side closes it (a raw HTTP answer)."""
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


class LiveServer:
    """A gunicorn master with its workers; a context manager that stops it on exit."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        workers: int = 2,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._listener: socket.socket | None = listening_socket()
        self.port: int = self._listener.getsockname()[1]
        self.log_path = log_path
        self.workers = workers
        self._env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, listener: socket.socket) -> list[str]:
        """The command line that starts the server on `listener` (inherited by the child)."""
        return gunicorn_command(listener, self.workers, *self._args)

    def start(self, ready_timeout_s: float = 120.0) -> LiveServer:
        """Start the server and wait until every worker answers ``/health/ready`` with 200.

        Connections made before gunicorn accepts wait in the socket's backlog (not refused).
        """
        listener = self._listener
        if listener is None:
            raise RuntimeError("a LiveServer starts once; make a new one")
        command, inherited = self.command(listener), self.inherited_fds(listener)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=inherited,
            )
        self._close_listener()  # the child holds it now: the port closes when the master exits
        self.wait_ready(ready_timeout_s)
        return self

    def inherited_fds(self, listener: socket.socket) -> tuple[int, ...]:
        """File descriptors the child inherits: the listening socket."""
        return (listener.fileno(),)

    def wait_ready(self, timeout_s: float) -> None:
        """Poll ``/health/ready`` until every worker (told apart by ``worker_pid``) answered 200.

        Raises with the log's tail if gunicorn exits or ``timeout_s`` passes first.
        """
        deadline = time.monotonic() + timeout_s
        ready_pids: set[int] = set()
        while len(ready_pids) < self.workers:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"gunicorn exited with {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"service not ready after {timeout_s} s:\n{self.log_tail()}")
            try:
                status, _, body = request(self.port, "GET", "/health/ready", timeout_s=5)
            except OSError:
                status, body = 0, b""
            if status == 200:
                ready_pids.add(int(json.loads(body)["worker_pid"]))
            else:
                time.sleep(0.1)

    def log_text(self) -> str:
        """Everything gunicorn and its workers wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout_s: float) -> str:
        """The first log line containing `text`, once gunicorn or a worker has written it.

        Raises with the log's tail if `timeout_s` passes first.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.log_text().splitlines():
                if text in line:
                    return line
            if time.monotonic() > deadline:
                tail = self.log_tail()
                raise TimeoutError(f"no log line with {text!r} in {timeout_s} s:\n{tail}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the master (graceful shutdown), wait, and return its exit status."""
        self._close_listener()
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> LiveServer:
        """Start gunicorn unless `start()` already did (`with server.start(timeout):`)."""
        return self if self.process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ProxiedServer(LiveServer):
    """``make serve-proxied`` (``python -m deploy.nginx.proxied``): nginx on the loopback port in
    front of gunicorn on a unix socket in a short-lived run directory."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, workers: int = 2) -> None:
        super().__init__(env, log_path, workers=workers)
        # A short path: a unix socket's path may not exceed 107 bytes.
        self.run_dir = Path(tempfile.mkdtemp(prefix="kronos-px-"))
        self._env.update(
            {
                "KRONOS_HOST": "127.0.0.1",
                "KRONOS_PORT": str(self.port),
                "KRONOS_WORKERS": str(workers),
            }
        )

    def command(self, listener: socket.socket) -> list[str]:
        return [sys.executable, "-m", "deploy.nginx.proxied", "--run-dir", str(self.run_dir)]

    def inherited_fds(self, listener: socket.socket) -> tuple[int, ...]:
        """None: nginx binds the port itself, so it is released here just before (the one
        moment another process could take it)."""
        self._close_listener()
        return ()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the supervisor (nginx, then gunicorn, stop gracefully) and clean up; a master
        still running after ``timeout_s`` (its pid file is still there) is killed."""
        try:
            return super().stop(timeout_s)
        finally:
            for pid_file in ("nginx.pid", "gunicorn.pid"):
                with contextlib.suppress(OSError, ValueError):  # gone: it removed its pid file
                    os.kill(int((self.run_dir / pid_file).read_text()), signal.SIGKILL)
            shutil.rmtree(self.run_dir, ignore_errors=True)
