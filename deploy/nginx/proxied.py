"""`make serve-proxied`: the system nginx on ``KRONOS_HOST:KRONOS_PORT`` in front of gunicorn on a
unix socket, for production-like runs on one machine and for tests.

    python -m deploy.nginx.proxied [--run-dir DIR]

The nginx configuration is ``templates/default.conf.template`` (the one docker-compose and
Kubernetes use) with its ``${NGINX_*}`` placeholders filled from the KRONOS_* settings, inside a
small main configuration that keeps pid file, temporary files and the gunicorn socket in the run
directory (a fresh temporary folder unless given), so nothing needs root. gunicorn starts first
(``gunicorn -c gunicorn.conf.py wsgi:app`` as ``make serve``, bound to the socket); nginx once
the socket exists. SIGTERM or SIGINT stops nginx gracefully (it finishes the requests it holds),
then gunicorn (its own graceful stop); if either exits on its own, the other is stopped too.
The exit status is gunicorn's (nginx's if nginx failed).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from app.settings import Settings

logger = logging.getLogger("kronos.proxied")

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).resolve().parent / "templates" / "default.conf.template"
NGINX_INSTALL_HINT = "install nginx (Debian/Ubuntu: apt-get install -y nginx)"
_PLACEHOLDER = re.compile(r"\$\{(NGINX_[A-Z_]+)\}")
_SOCKET_WAIT_S = 300.0  # gunicorn binds its socket only after the master started; loads come later
_STOP_EXTRA_S = 10.0

MAIN_CONFIG = """\
# Written by deploy/nginx/proxied.py; the server block is {server_conf}.
{user}worker_processes 1;
pid {run_dir}/nginx.pid;
error_log stderr warn;
# A stopping worker waits this long for the requests it holds (gunicorn's graceful timeout).
worker_shutdown_timeout {shutdown_timeout}s;

events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {run_dir}/client_body;
    proxy_temp_path {run_dir}/proxy;
    fastcgi_temp_path {run_dir}/fastcgi;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;
    default_type application/octet-stream;
    server_tokens off;
    include {server_conf};
}}
"""


def find_nginx() -> str | None:
    """The nginx binary on PATH or in /usr/sbin (where Debian puts it), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def template_values(settings: Settings, upstream: str, access_log: str) -> dict[str, str]:
    """The ``${NGINX_*}`` values for ``settings``: nginx listens where gunicorn would, takes the
    same body limit, and waits for an answer a few seconds longer than the app's time budget."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return {
        "NGINX_LISTEN": f"{host}:{settings.port}",
        "NGINX_UPSTREAM": upstream,
        "NGINX_CLIENT_MAX_BODY_SIZE": str(settings.max_body_bytes),
        "NGINX_PROXY_READ_TIMEOUT": f"{math.ceil(settings.request_timeout_s) + 5}s",
        "NGINX_ACCESS_LOG": access_log,
    }


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``${NGINX_NAME}`` replaced; nginx's own ``$variables`` are kept.

    Raises KeyError naming a placeholder that ``values`` lacks.
    """
    missing = sorted(set(_PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def write_config(settings: Settings, run_dir: Path) -> Path:
    """Write ``nginx.conf`` and ``kronos.conf`` into ``run_dir``; returns the main file's path."""
    server_conf = run_dir / "kronos.conf"
    values = template_values(settings, f"unix:{run_dir / 'gunicorn.sock'}", "/dev/stdout")
    server_conf.write_text(render(TEMPLATE.read_text(), values))
    # nginx started by root runs its workers as `nobody`, who could not reach the run directory.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    main_conf = run_dir / "nginx.conf"
    main_conf.write_text(
        MAIN_CONFIG.format(
            user=user,
            run_dir=run_dir,
            server_conf=server_conf,
            shutdown_timeout=settings.graceful_timeout_s,
        )
    )
    return main_conf


class Proxied:
    """gunicorn on a unix socket and nginx in front of it, as child processes."""

    def __init__(self, settings: Settings, run_dir: Path, nginx: str) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.nginx_binary = nginx
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None

    def start(self, stop: threading.Event) -> bool:
        """Start gunicorn, wait for its socket, start nginx; False if stopped or one failed."""
        main_conf = write_config(self.settings, self.run_dir)
        socket_path = self.run_dir / "gunicorn.sock"
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.gunicorn = subprocess.Popen(
            [
                str(gunicorn),
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"unix:{socket_path}",
                "--pid",
                str(self.run_dir / "gunicorn.pid"),
                "wsgi:app",
            ],
            cwd=REPO_ROOT,
        )
        deadline = time.monotonic() + _SOCKET_WAIT_S
        while not socket_path.exists():
            if self.gunicorn.poll() is not None or stop.is_set() or time.monotonic() > deadline:
                return False
            stop.wait(0.1)
        self.nginx = subprocess.Popen(
            [
                self.nginx_binary,
                "-p",
                str(self.run_dir),
                "-c",
                str(main_conf),
                "-e",
                "stderr",
                "-g",
                "daemon off;",
            ]
        )
        logger.info(
            "nginx on %s:%d in front of gunicorn on %s",
            self.settings.host,
            self.settings.port,
            socket_path,
        )
        return True

    def wait(self, stop: threading.Event) -> None:
        """Return once ``stop`` is set or either process has exited."""
        while not stop.is_set() and all(p.poll() is None for p in self._processes()):
            stop.wait(0.2)

    def stop(self) -> int:
        """Stop nginx gracefully (SIGQUIT), then gunicorn (SIGTERM); the exit status."""
        graceful_s = self.settings.graceful_timeout_s + _STOP_EXTRA_S
        nginx_failed = self.nginx is not None and self.nginx.poll() not in (None, 0)
        for process, sig in ((self.nginx, signal.SIGQUIT), (self.gunicorn, signal.SIGTERM)):
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(sig)
            try:
                process.wait(timeout=graceful_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if nginx_failed and self.nginx is not None:
            return self.nginx.returncode
        return self.gunicorn.returncode if self.gunicorn is not None else 1

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in (self.gunicorn, self.nginx) if p is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="folder for the rendered configuration, pid files and the socket (default: temporary)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    nginx = find_nginx()
    if nginx is None:
        logger.error("nginx is not installed: %s", NGINX_INSTALL_HINT)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="kronos-proxied-") as scratch:
        run_dir = (args.run_dir or Path(scratch)).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        proxied = Proxied(settings, run_dir, nginx)
        if proxied.start(stop):
            proxied.wait(stop)
        return proxied.stop()


if __name__ == "__main__":
    sys.exit(main())
