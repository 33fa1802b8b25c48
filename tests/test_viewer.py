"""GET / (the forecast page) and its assets, through the Flask test client.

The page itself is proved in a real browser by `tests/test_viewer_browser.py`; these tests check
what the server sends: the form built from `FORM_FIELDS`, same-origin assets only, a
Content-Security-Policy that keeps every fetch on this origin, the vendored plotly.js bundle, the
form's instrument fields (ISIN or symbol) and calendar names, the calibrate checkbox, and the
backtest view's fields with the service's limits.
"""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser

from app import create_app
from app.api.viewer import (
    ASSET_TYPES,
    BACKTEST_FIELDS,
    FORM_FIELDS,
    PAGE_MAX_BACKTEST_ORIGINS,
    PLOTLY_BUNDLE,
    PLOTLY_VERSION,
)
from tests.canaries import API_KEY_CANARIES
from tests.support import make_settings


class _Collector(HTMLParser):
    """The page's elements as (tag, attributes) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def page_elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = _Collector()
    collector.feed(html)
    return collector.elements


def test_the_page_is_html_with_a_same_origin_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["connect-src"] == "'self'"  # fetch() reaches this origin only
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_every_request_field_has_a_labelled_input_and_an_error_slot(client):
    elements = page_elements(client.get("/").get_data(as_text=True))
    labels = {attrs.get("for") for tag, attrs in elements if tag == "label"}
    inputs = {attrs["id"]: attrs for tag, attrs in elements if attrs.get("id") and tag != "label"}
    error_slots = {attrs.get("data-error-for") for _, attrs in elements}
    for field in (*FORM_FIELDS, *BACKTEST_FIELDS):
        element = inputs[f"f-{field.name}"]
        assert element["data-field"] == field.name and element["data-kind"] == field.kind
        assert f"f-{field.name}" in labels
        assert field.name in error_slots and f"e-{field.name}" in element["aria-describedby"]
    for other in ("f-candles", "f-candles-file", "f-api-key"):
        assert other in inputs and other in labels
    radios = [attrs for tag, attrs in elements if tag == "input" and attrs.get("type") == "radio"]
    assert {radio["value"] for radio in radios} == {"server", "csv"}
    assert {"candles", "api_key", "_form"} <= error_slots


def test_the_page_loads_only_same_origin_assets(client):
    elements = page_elements(client.get("/").get_data(as_text=True))
    urls = [attrs[name] for _, attrs in elements for name in ("src", "href") if attrs.get(name)]
    assert any("plotly" in url for url in urls)
    for url in urls:
        assert url.startswith("/") or url.startswith(("#", "?", "data:")), url
        assert not url.startswith("//"), url
        status = client.get(url).status_code if url.startswith("/") else 200
        assert status == 200, url


def test_the_plotly_bundle_is_the_vendored_one_with_its_licence_and_version():
    header = PLOTLY_BUNDLE.read_text()[:200]
    assert f"plotly.js (finance - minified) v{PLOTLY_VERSION}" in header
    licence = (PLOTLY_BUNDLE.parent / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Plotly" in licence
    origin = (PLOTLY_BUNDLE.parent / "ORIGIN.md").read_text()
    assert hashlib.sha256(PLOTLY_BUNDLE.read_bytes()).hexdigest() in origin


def test_the_plotly_bundle_is_served_and_cached_by_version(client):
    version = PLOTLY_VERSION
    response = client.get(f"/viewer/plotly.min.js?v={version}")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.get_data() == PLOTLY_BUNDLE.read_bytes()
    assert "max-age=31536000" in response.headers["Cache-Control"]
    again = client.get(
        f"/viewer/plotly.min.js?v={version}", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304
    unversioned = client.get("/viewer/plotly.min.js")
    assert "max-age=31536000" not in unversioned.headers.get("Cache-Control", "")


def test_the_page_and_its_scripts_name_no_other_origin(client):
    for path in ("/", *(f"/viewer/assets/{name}" for name in ASSET_TYPES)):
        text = client.get(path).get_data(as_text=True)
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path


def test_the_page_is_not_part_of_the_api_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/" not in paths and not any(path.startswith("/viewer") for path in paths)


def test_other_methods_on_the_page_get_a_problem_document(client):
    response = client.post("/")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_with_api_keys_on_the_page_still_loads_but_predict_needs_a_key():
    settings = make_settings(mode="simulated", api_keys=API_KEY_CANARIES)
    client = create_app(settings).test_client()
    assert (
        client.post("/predict", json={"isin": "US67066G1040", "horizon_days": 1}).status_code == 401
    )
    for path in ("/", "/viewer/assets/viewer.js", "/viewer/plotly.min.js"):
        assert client.get(path).status_code == 200, path


def test_isin_and_symbol_are_alternatives_and_the_calendar_offers_its_names(client):
    elements = page_elements(client.get("/").get_data(as_text=True))
    inputs = {attrs.get("id"): attrs for tag, attrs in elements if tag == "input"}
    for name in ("isin", "symbol"):
        assert inputs[f"f-{name}"]["data-one-of"] == "instrument"
        assert "aria-required" not in inputs[f"f-{name}"]  # the API says which one is wrong
    assert inputs["f-horizon_days"]["aria-required"] == "true"
    assert inputs["f-calendar"]["list"] == "l-calendar"
    start = next(i for i, (_, attrs) in enumerate(elements) if attrs.get("id") == "l-calendar")
    options = [attrs["value"] for tag, attrs in elements[start + 1 :] if tag == "option"]
    assert {"XNYS", "XLON", "XETR", "24/5", "24/7", "history"} <= set(options)


def test_the_scripts_are_modules_served_as_javascript(client):
    elements = page_elements(client.get("/").get_data(as_text=True))
    modules = [attrs["src"] for tag, attrs in elements if attrs.get("type") == "module"]
    preloaded = [attrs["href"] for tag, attrs in elements if attrs.get("rel") == "modulepreload"]
    assert modules == ["/viewer/assets/viewer.js"]
    assert preloaded == ["/viewer/assets/common.js", "/viewer/assets/backtest.js"]
    viewer = client.get("/viewer/assets/viewer.js").get_data(as_text=True)
    for path in (*modules, *preloaded):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/javascript", path
        assert path == modules[0] or f'from "./{path.rsplit("/", 1)[1]}"' in viewer
    assert client.get("/viewer/assets/report.js").status_code == 404


def _inputs(client) -> dict[str | None, dict[str, str | None]]:
    elements = page_elements(client.get("/").get_data(as_text=True))
    return {attrs.get("id"): attrs for tag, attrs in elements if tag in ("input", "body")}


def test_the_calibrate_checkbox_starts_as_the_service_default():
    for calibrate in (False, True):
        settings = make_settings(mode="simulated", calibrate=calibrate, calibration_origins=12)
        page = create_app(settings).test_client().get("/").get_data(as_text=True)
        box = next(attrs for _, attrs in page_elements(page) if attrs.get("id") == "f-calibrate")
        assert box["type"] == "checkbox" and box["data-kind"] == "boolean"
        assert ("checked" in box) is calibrate
        assert "last 12 origins" in page  # the hint names KRONOS_CALIBRATION_ORIGINS


def test_the_backtest_view_names_its_url_defaults_and_the_services_limits():
    settings = make_settings(mode="simulated", max_backtest_origins=20, lookback=300)
    client = create_app(settings).test_client()
    inputs = _inputs(client)
    body = next(attrs for key, attrs in inputs.items() if key is None)
    assert body["data-backtest-url"] == "/backtest"
    assert json.loads(body["data-limits"] or "") == {
        "max_origins": 20,  # below the page's own cap
        "api_max_origins": 20,
        "max_samples": 64,
        "max_horizon_days": 30,
        "lookback": 300,
        "calibration_origins": 30,
    }
    values = {
        name: inputs[f"f-{name}"]["value"] for name in ("backtest_horizons", "backtest_origins")
    }
    assert values == {"backtest_horizons": "1, 5, 20", "backtest_origins": "30"}
    assert "at most 20" in client.get("/").get_data(as_text=True)
    default = create_app(make_settings(mode="simulated")).test_client()
    limits = json.loads(
        next(a for k, a in _inputs(default).items() if k is None)["data-limits"] or ""
    )
    assert limits["max_origins"] == PAGE_MAX_BACKTEST_ORIGINS < limits["api_max_origins"] == 100
