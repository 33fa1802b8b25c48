"""`X-Request-ID` from a client: used only when short and of safe characters, else replaced."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from app import context

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def id_client():  # type: ignore[no-untyped-def]
    app = Flask(__name__)
    app.before_request(context.open_request)
    app.after_request(context.echo_request_id)
    app.add_url_rule("/echo", "echo", lambda: "ok")
    return app.test_client()


@pytest.mark.parametrize(
    "supplied",
    [
        "abc-123",
        "3d252e6246884728b8cf6998ec26005f",  # nginx $request_id
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",  # UUID
        "svc.a:b_c-1",
        "x" * context.REQUEST_ID_MAX_LENGTH,
    ],
)
def test_a_short_safe_id_is_kept_and_echoed(id_client, supplied):
    assert id_client.get("/echo", headers={"X-Request-ID": supplied}).headers["X-Request-ID"] == (
        supplied
    )


@pytest.mark.parametrize(
    "supplied",
    [
        "",
        "x" * (context.REQUEST_ID_MAX_LENGTH + 1),
        "a" * 10_000,
        "bad id\twith spaces",
        "id<script>",
        '"quoted"',
        "Root=1-5759e988",
        "a,b",
        "ünïcode",
        "line\\nbreak",
        "../../etc/passwd",
    ],
)
def test_anything_else_gets_a_fresh_id(id_client, supplied):
    echoed = id_client.get("/echo", headers={"X-Request-ID": supplied}).headers["X-Request-ID"]
    assert echoed != supplied and GENERATED.fullmatch(echoed)


def test_two_requests_without_an_id_get_different_ids(id_client):
    first = id_client.get("/echo").headers["X-Request-ID"]
    second = id_client.get("/echo").headers["X-Request-ID"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second
