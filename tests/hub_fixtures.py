"""Test helpers for hub loading: a cache folder laid out like huggingface_hub's, and a fake hub.

`build_hub_cache` writes `models--ORG--NAME/{blobs,snapshots/<sha>,refs/<ref>}`, the snapshot
files being relative symlinks into `blobs/`, the way `hf_hub_download` leaves them. `FakeHub` is a
hand-written stand-in for huggingface.co (no test may use the network): a real HTTP server on a
loopback port that answers the model-info endpoint with canned statuses, serves the files of
`FakeHub.files` at `/ORG/NAME/resolve/<revision>/<file>` (HEAD and GET, the way `hf_hub_download`
asks), and records the Authorization headers it saw on model-info requests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import constants


def fake_sha(label: str) -> str:
    """A 40-hex commit id, stable per label."""
    return hashlib.sha1(label.encode()).hexdigest()


def build_hub_cache(
    hub_cache: Path, repo_id: str, checkpoint: Path, sha: str, refs: tuple[str, ...] = ("main",)
) -> Path:
    """Cache `checkpoint` in `hub_cache` as commit `sha` of `repo_id`; returns the snapshot."""
    storage = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / sha
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for source in sorted(checkpoint.iterdir()):
        blob_id = hashlib.sha256(source.read_bytes()).hexdigest()
        shutil.copyfile(source, storage / "blobs" / blob_id)
        (snapshot / source.name).symlink_to(Path("..", "..", "blobs", blob_id))
    (storage / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (storage / "refs" / ref).write_text(sha)
    return snapshot


@dataclass
class FakeHub:
    """Canned answers to `GET /api/models/ORG/NAME/revision/REV`: repo_id -> (status, sha, code)."""

    answers: dict[str, tuple[int, str | None, str | None]]
    files: dict[str, Path] = field(default_factory=dict)
    """repo_id -> checkpoint folder served as the files of that repo's answered sha."""
    authorizations: list[str | None] = field(default_factory=list)
    url: str = ""

    def serve_file(self, handler: BaseHTTPRequestHandler, *, with_body: bool) -> None:
        """`/ORG/NAME/resolve/<rev>/<file>`: the file, with the headers huggingface_hub reads."""
        parts = handler.path.split("?")[0].strip("/").split("/")
        repo_id, filename = "/".join(parts[:2]), parts[-1]
        folder = self.files.get(repo_id)
        if len(parts) != 5 or parts[2] != "resolve" or folder is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", "EntryNotFound")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        payload = (folder / filename).read_bytes()
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", str(self.answers[repo_id][1]))
        handler.send_header("ETag", f'"{hashlib.sha256(payload).hexdigest()}"')
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if with_body:
            handler.wfile.write(payload)

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        self.authorizations.append(handler.headers.get("Authorization"))
        parts = handler.path.split("?")[0].strip("/").split("/")
        repo_id = "/".join(parts[2:4]) if parts[:2] == ["api", "models"] else ""
        status, sha, error_code = self.answers.get(repo_id, (404, None, "RepoNotFound"))
        body = {"id": repo_id, "sha": sha} if status == 200 else {"error": "fake hub refusal"}
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        if error_code:
            handler.send_header("X-Error-Code", error_code)
        handler.end_headers()
        handler.wfile.write(payload)


@contextmanager
def running_fake_hub(
    answers: dict[str, tuple[int, str | None, str | None]], files: dict[str, Path] | None = None
) -> Iterator[FakeHub]:
    hub = FakeHub(answers, files or {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/api/"):
                hub.respond(self)
            else:
                hub.serve_file(self, with_body=True)

        def do_HEAD(self) -> None:
            hub.serve_file(self, with_body=False)

        def log_message(self, format: str, *args: object) -> None:
            """Silence the per-request stderr line."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_loopback_url() -> Iterator[str]:
    """A loopback URL whose port accepts connections (into the backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def closed_loopback_url() -> str:
    """A loopback URL on a port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def point_hub_at(
    monkeypatch: pytest.MonkeyPatch, hf_home: Path, *, offline: bool, endpoint: str | None = None
) -> None:
    """Point huggingface_hub's environment at `hf_home` (and `endpoint`), hiding the outer one."""
    for name in ("HF_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)  # read by huggingface_hub at import
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
