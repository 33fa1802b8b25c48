"""Start the real service under gunicorn on a free loopback port, for benchmarks and slow tests.

``LiveServer`` runs ``gunicorn -c gunicorn.conf.py wsgi:app`` from the repository root exactly as
``make serve`` does, only bound to ``127.0.0.1:<free port>`` and with the environment the caller
gives, then waits until each worker has answered ``/health/ready`` with 200. ``ProxiedServer``
runs ``make serve-proxied``'s command instead: nginx on the free port in front of gunicorn on a
unix socket. Their output goes to a log file the caller can read afterwards (secret scans, JSON
log checks).
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
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
        self.port = free_port()
        self.log_path = log_path
        self.workers = workers
        self._env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        return [
            str(GUNICORN),
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            *self._args,
            "wsgi:app",
        ]

    def start(self, ready_timeout_s: float = 120.0) -> LiveServer:
        """Start the server and wait until every worker answers ``/health/ready`` with 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=REPO_ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_ready(ready_timeout_s)
        return self

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

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the master (graceful shutdown), wait, and return its exit status."""
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
    """``make serve-proxied`` (``python -m deploy.nginx.proxied``): nginx on the free loopback
    port in front of gunicorn on a unix socket in a short-lived run directory."""

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

    def command(self) -> list[str]:
        return [sys.executable, "-m", "deploy.nginx.proxied", "--run-dir", str(self.run_dir)]

    def gunicorn_pid(self) -> int:
        """The gunicorn master's pid (from its pid file in the run directory)."""
        return int((self.run_dir / "gunicorn.pid").read_text())

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
