"""The forecast page in headless Chromium against a real gunicorn in simulated mode.

The page is loaded from a deep link, drawn by the real plotly.js bundle, and compared with the
answer the test gets from the same request (same seed) over HTTP: the chart's traces and the
table's cells must show those numbers; the same for the backtest view against ``POST /backtest``
(coverage chart, reliability diagram, scores table) and for a calibrated forecast's
``metadata.calibration``. Every URL the browser asked for is read from its DevTools
log and must be on the service's own origin. Screenshots and the page's performance marks (time to
the first chart drawn) are saved under pytest's tmp dir and, when set, ``KRONOS_ARTIFACTS_DIR``.
Accessibility: axe-core (vendored for these tests only, ``tests/vendor/axe-core/``) audits the
page in six states, and a keyboard pass checks the tab order and the skip link.

Needs Debian's ``chromium`` and ``chromium-driver``; without them these tests skip and say how to
install them (``.ci/run`` installs them, so CI always runs them).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from benchmarks.browser import INSTALL_HINT, chromium, chromium_paths, requests, set_viewport
from benchmarks.live_server import LiveServer
from benchmarks.live_server import request as http_request
from tests.canaries import API_KEY_CANARIES
from tests.candles import make_candles
from tests.support import assert_redacted

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_paths() is None, reason=f"Chromium and chromedriver not installed: {INSTALL_HINT}"
    ),
]

DEEP_LINK = {
    "isin": "US67066G1040",
    "horizon_days": "5",
    "seed": "7",
    "sample_count": "16",
    "quantiles": "0.1,0.25,0.5,0.75,0.9",
}
DATA_DIR_ISIN = "US0378331005"
FX_SYMBOL = "EURUSD"
WAIT_S = 60


def fx_week_hours(first_day: str, days: int) -> pd.DataFrame:
    """Hourly candles in the spot FX week (UTC, winter): Sunday 22:00 to Friday 22:00."""
    index = pd.date_range(first_day, periods=days * 24, freq="h", name="timestamp")
    closed = ((index.day_of_week == 4) & (index.hour >= 22)) | (index.day_of_week == 5)
    closed |= (index.day_of_week == 6) & (index.hour < 22)
    return on_index(index[~closed], seed=13, last_close=1.0850, volatility=0.001)


def xnys_half_hours(first_day: str, last_day: str) -> pd.DataFrame:
    """Half-hourly candles in New York Stock Exchange sessions, 09:30 to 15:30 (bar start)."""
    index = pd.date_range(first_day, last_day, freq="30min", name="timestamp")
    minutes = index.hour * 60 + index.minute
    open_ = (index.day_of_week < 5) & (minutes >= 9 * 60 + 30) & (minutes < 16 * 60)
    return on_index(index[open_], seed=17, last_close=187.0, volatility=0.003)


def on_index(index: pd.DatetimeIndex, **walk: Any) -> pd.DataFrame:
    frame = make_candles(len(index), **walk)
    frame.index = index
    return frame


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One gunicorn worker in simulated mode, with one instrument in its data folder and synthetic
    history for the others."""
    folder = tmp_path_factory.mktemp("viewer-server")
    data_dir = folder / "data"
    data_dir.mkdir()
    make_candles(80, seed=3, last_close=190.0).to_csv(data_dir / f"{DATA_DIR_ISIN}.csv")
    fx_week_hours("2024-01-07", 21).to_csv(data_dir / f"{FX_SYMBOL}.csv")
    env = {"KRONOS_MODE": "simulated", "KRONOS_DATA_DIR": str(data_dir)}
    env["KRONOS_ALLOW_SYNTHETIC_HISTORY"] = "1"  # the seed's ISIN is not in the folder
    with LiveServer(env, folder / "gunicorn.log", workers=1) as live:
        yield live


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    """The browser at 1280×800 with its request log emptied; back there after the test."""
    set_viewport(browser, 1280, 800)
    requests(browser)
    yield browser
    set_viewport(browser, 1280, 800)


def origin(server: LiveServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def wait_for_state(driver: Any, *states: str) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(d: Any) -> str | None:
        state = d.execute_script("return document.body && document.body.dataset.state")
        return state if state in states else None

    state: str = WebDriverWait(driver, WAIT_S).until(settled)
    return state


def open_page(
    driver: Any, server: LiveServer, query: str, state: str = "ready", backtest: str | None = None
) -> None:
    """Load `/?query` and wait for the forecast's `state` and, when given, the backtest's."""
    driver.get(f"{origin(server)}/?{query}")
    assert wait_for_state(driver, "ready", "error", "idle") == state, status_text(driver)
    if backtest is not None:
        assert wait_for_backtest(driver) == backtest, backtest_status(driver)


def wait_for_backtest(driver: Any) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(d: Any) -> str | None:
        state = d.execute_script("return document.body.dataset.backtestState")
        return state if state in ("ready", "error") else None

    state: str = WebDriverWait(driver, WAIT_S).until(settled)
    return state


def backtest_status(driver: Any) -> str:
    return str(
        driver.execute_script("return document.getElementById('backtest-status').textContent")
    )


def submit_and_wait(driver: Any, state: str) -> None:
    """Press Enter in the horizon field (keyboard submission) and wait for the answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("document.body.dataset.state = 'submitted'")
    driver.find_element(By.ID, "f-horizon_days").send_keys(Keys.ENTER)
    assert wait_for_state(driver, "ready", "error") == state, status_text(driver)


def status_text(driver: Any) -> str:
    return str(driver.execute_script("return document.getElementById('status').textContent"))


def fill(driver: Any, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(text)


def api_answer(
    server: LiveServer, body: dict[str, Any], path: str = "/predict", status: int = 200
) -> dict[str, Any]:
    got, _, raw = http_request(server.port, "POST", path, body)
    answer: dict[str, Any] = json.loads(raw)
    assert got == status, answer
    return answer


def deep_link_request(query: dict[str, str]) -> dict[str, Any]:
    """The JSON body the page builds from these query parameters."""
    return {
        "isin": query["isin"],
        "horizon_days": int(query["horizon_days"]),
        "seed": int(query["seed"]),
        "sample_count": int(query["sample_count"]),
        "quantiles": [float(level) for level in query["quantiles"].split(",")],
    }


def chart_traces(driver: Any) -> list[dict[str, Any]]:
    return list(
        driver.execute_script(
            "return document.getElementById('chart').data.map(t => ({name: t.name, "
            "type: t.type, meta: t.meta || {}, x: Array.from(t.x || []), y: Array.from(t.y || []),"
            " open: Array.from(t.open || []), close: Array.from(t.close || [])}))"
        )
    )


def facts(driver: Any, box: str = "facts") -> dict[str, str]:
    """The answer's facts as shown (`backtest-facts`: the backtest's): term -> value."""
    return dict(
        driver.execute_script(
            "return Array.from(document.querySelectorAll(`#${arguments[0]} div`)).map(d =>"
            " [d.querySelector('dt').textContent, d.querySelector('dd').textContent])",
            box,
        )
    )


def table_rows(driver: Any) -> list[dict[str, tuple[str, str]]]:
    """Each body row of the table: column -> (text shown, data-value)."""
    return list(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('#forecast-table tbody tr')).map(tr =>"
            " Object.fromEntries(Array.from(tr.cells).map(td =>"
            " [td.dataset.column, [td.textContent, td.dataset.value]])))"
        )
    )


def plot_date(timestamp: str) -> str:
    """The page draws wall-clock dates (plotly.js reads no UTC offset)."""
    return timestamp.removesuffix("Z").split("+")[0]


def shows(text: str, value: float) -> bool:
    """`text` is `value` rounded to the decimals it shows."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - value) <= 0.5 * 10**-decimals + 1e-12


def foreign_requests(driver: Any, server: LiveServer) -> list[str]:
    """URLs the page asked for that are not on the service's origin (data: URLs are local)."""
    asked = requests(driver)
    resources = driver.execute_script(
        "return ['navigation', 'resource'].flatMap(t => performance.getEntriesByType(t))"
        ".map(e => e.name)"
    )
    return [
        url
        for url in [*asked, *resources]
        if not url.startswith((origin(server) + "/", "data:", "blob:"))
    ]


def save_artifact(driver: Any, tmp_path: Path, name: str, full_page: bool = False) -> Path:
    """A PNG of the viewport (or the whole page) in tmp_path and KRONOS_ARTIFACTS_DIR if set."""
    import base64

    target = tmp_path / name
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        width = driver.execute_script("return window.innerWidth")
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        target.write_bytes(base64.b64decode(shot["data"]))
    else:
        driver.save_screenshot(str(target))
    copy_artifact(target)
    return target


def copy_artifact(path: Path) -> None:
    folder = os.environ.get("KRONOS_ARTIFACTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def test_a_deep_link_draws_the_forecast_the_api_returns(page, server, tmp_path):
    query = "&".join(f"{key}={value}" for key, value in DEEP_LINK.items())
    open_page(page, server, query)
    expected = api_answer(server, {**deep_link_request(DEEP_LINK), "include_path": True})
    days = expected["predictions"]
    assert len(days) == 5

    traces = chart_traces(page)
    by_key = {t["meta"]["key"]: t for t in traces if t["meta"].get("role") == "quantile"}
    assert set(by_key) == set(days[0]["quantiles"]) == {"0.1", "0.25", "0.5", "0.75", "0.9"}
    for key, trace in by_key.items():
        drawn = dict(zip(trace["x"], trace["y"], strict=True))
        assert [drawn[plot_date(day["timestamp"])] for day in days] == [
            day["quantiles"][key] for day in days
        ]
    mean = next(t for t in traces if t["meta"].get("role") == "mean")
    assert mean["y"] == [day["predicted_price"] for day in days]
    assert mean["x"] == [plot_date(day["timestamp"]) for day in days]
    assert next(t for t in traces if t["name"] == "median")["meta"]["key"] == "0.5"
    bands = [t for t in traces if t["name"] in ("P10–P90", "P25–P75")]
    assert len(bands) == 2  # two filled bands: the fan
    start = page.execute_script("return document.getElementById('chart').layout.shapes[0].x0")
    assert start <= plot_date(days[0]["timestamp"])  # the forecast-start line

    rows = table_rows(page)
    assert [row["date"][0] for row in rows] == [day["date"] for day in days]
    for row, day in zip(rows, days, strict=True):
        assert float(row["predicted_price"][1]) == day["predicted_price"]
        assert shows(row["predicted_price"][0], day["predicted_price"])
        for key, value in day["quantiles"].items():
            assert float(row[f"q{key}"][1]) == value and shows(row[f"q{key}"][0], value)
        assert float(row["probability_up"][1]) == day["probability_up"]
        assert shows(row["probability_up"][0].removesuffix(" %"), day["probability_up"] * 100)
        assert float(row["confidence"][1]) == day["confidence"]
        assert shows(row["confidence"][0], day["confidence"])

    shown = facts(page)
    assert shown["Mode"] == "simulated" and shown["Model"] == expected["model_version"]
    assert shown["Seed"] == "7" and shown["Samples"] == "16"
    assert expected["metadata"]["calendar"] == {"name": "XNYS", "source": "isin"}
    assert shown["Calendar"] == "XNYS (the ISIN country's exchange)"
    assert shown["Calibration"] == "off" and not expected["metadata"]["calibration"]["requested"]
    assert page.execute_script("return document.getElementById('calibration-note').hidden")
    fallback_hidden = page.execute_script("return document.getElementById('fallback').hidden")
    assert fallback_hidden and expected["metadata"]["fallback_reason"] is None

    assert foreign_requests(page, server) == []
    marks = page.execute_script(
        "return Object.fromEntries(performance.getEntriesByType('mark')"
        ".map(m => [m.name, m.startTime]))"
    )
    assert marks["kronos:first-chart-drawn"] >= marks["kronos:forecast-received"] > 0
    timings = tmp_path / "viewer-timings.json"
    timings.write_text(json.dumps(marks, indent=1))
    copy_artifact(timings)
    save_artifact(page, tmp_path, "viewer-1280x800.png")
    save_artifact(page, tmp_path, "viewer-1280x800-full.png", full_page=True)


def test_history_from_the_data_folder_is_used_and_shown(page, server):
    open_page(page, server, f"isin={DATA_DIR_ISIN}&horizon_days=3&seed=1")
    assert facts(page)["History"] == "data_dir, 80 bars (lookback 80)"
    answer = api_answer(
        server, {"isin": DATA_DIR_ISIN, "horizon_days": 3, "seed": 1, "include_history": True}
    )
    assert answer["current_price"] == pytest.approx(190.0)
    candles = next(t for t in chart_traces(page) if t["type"] == "candlestick")
    shown = answer["history"][-len(candles["close"]) :]
    assert candles["close"] == [bar["close"] for bar in shown]
    assert candles["x"][-1] == plot_date(shown[-1]["timestamp"])
    assert foreign_requests(page, server) == []


def test_an_uploaded_csv_is_the_history_drawn_and_forecast(page, server, tmp_path):
    open_page(page, server, "", state="idle")
    candles = make_candles(60, seed=11, last_close=42.0)
    csv_file = tmp_path / "candles.csv"
    candles.to_csv(csv_file)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element(By.CSS_SELECTOR, "input[name=history][value=csv]").click()
    page.find_element(By.ID, "f-candles-file").send_keys(str(csv_file))
    WebDriverWait(page, WAIT_S).until(
        lambda d: d.execute_script("return document.getElementById('f-candles').value")
    )
    fill(page, "f-isin", "DE0007164600")
    fill(page, "f-horizon_days", "4")
    fill(page, "f-seed", "5")
    submit_and_wait(page, "ready")

    query = parse_qs(urlsplit(page.current_url).query)
    assert query == {
        "isin": ["DE0007164600"],
        "horizon_days": ["4"],
        "seed": ["5"],
        "history": ["csv"],
    }
    assert facts(page)["History"] == "request, 60 bars (lookback 60)"
    drawn = next(t for t in chart_traces(page) if t["type"] == "candlestick")
    assert drawn["close"] == pytest.approx(candles["close"].to_numpy()[-len(drawn["close"]) :])
    assert drawn["x"][-1] == str(candles.index[-1].date())  # as the CSV spells it
    assert foreign_requests(page, server) == []


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("horizon_days", "999", "KRONOS_MAX_HORIZON_DAYS"),
        ("isin", "US67066G1041", "check digit"),
        ("quantiles", "0.5, 1.5", "quantiles[1]"),
        ("isin", "", "exactly one of 'isin' and 'symbol'"),  # neither given: the API names isin
        ("symbol", FX_SYMBOL, "exactly one of 'isin' and 'symbol'"),  # both: it names symbol
        ("calendar", "XXXX", "unknown 'XXXX'"),
    ],
)
def test_a_bad_input_shows_the_apis_message_next_to_its_field(page, server, field, text, message):
    open_page(page, server, "isin=US67066G1040&horizon_days=2&seed=3")
    fill(page, f"f-{field}", text)
    submit_and_wait(page, "error")
    shown = page.execute_script(
        "const input = document.getElementById(arguments[0]);"
        "const slot = document.getElementById(arguments[1]);"
        "return {error: slot.textContent, invalid: input.getAttribute('aria-invalid'),"
        " described: input.getAttribute('aria-describedby'),"
        " sameBox: input.closest('.field') === slot.closest('.field'),"
        " focused: document.activeElement === input}",
        f"f-{field}",
        f"e-{field}",
    )
    assert message.lower() in shown["error"].lower(), shown
    assert shown["invalid"] == "true" and f"e-{field}" in shown["described"]
    assert shown["sameBox"] and shown["focused"]
    assert page.execute_script("return document.getElementById('answer').hidden")


def test_bad_candles_show_the_apis_message_next_to_the_csv(page, server):
    open_page(page, server, "history=csv&isin=US67066G1040&horizon_days=2", state="idle")
    rows = make_candles(40, seed=2).reset_index()
    rows.loc[7, "high"] = rows.loc[7, "low"] / 2  # high below low
    page.execute_script(
        "document.getElementById('f-candles').value = arguments[0]", rows.to_csv(index=False)
    )
    submit_and_wait(page, "error")
    error = page.execute_script("return document.getElementById('e-candles').textContent")
    assert "candles[7]" in error and "high is below low" in error
    assert page.execute_script(
        "return document.getElementById('f-candles').getAttribute('aria-invalid')"
    )


def test_a_phone_width_screen_shows_the_page_without_sideways_scrolling(page, server, tmp_path):
    set_viewport(page, 390, 844)
    open_page(page, server, "isin=US67066G1040&horizon_days=10&seed=7")
    widths = page.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " document.getElementById('chart').getBoundingClientRect().width]"
    )
    assert widths[0] <= widths[1] and 0 < widths[2] <= widths[1]
    assert len(table_rows(page)) == 10
    save_artifact(page, tmp_path, "viewer-390x844.png")


def test_a_fallback_reason_is_shown(page, tmp_path):
    env = {
        "KRONOS_MODE": "auto",
        "KRONOS_MODEL_ID": str(tmp_path / "no-such-model"),
        "HF_HUB_OFFLINE": "1",
    }
    with LiveServer(env, tmp_path / "gunicorn.log", workers=1) as auto:
        open_page(page, auto, "isin=US67066G1040&horizon_days=2&seed=1")
        reason = api_answer(auto, {"isin": "US67066G1040", "horizon_days": 1})["metadata"][
            "fallback_reason"
        ]
        shown = page.execute_script(
            "const box = document.getElementById('fallback'); return [box.hidden, box.textContent]"
        )
    assert assert_redacted(reason, str(tmp_path)) == (
        "ModelLoadError: cannot load '<path>': no such local folder"
    )
    assert shown[0] is False and reason in shown[1]


def test_with_api_keys_on_the_page_sends_the_typed_key_and_keeps_it_nowhere(page, tmp_path):
    """The page loads without a key (it is public); forecasts carry only the key typed in."""

    key = API_KEY_CANARIES[0]
    env = {"KRONOS_MODE": "simulated", "KRONOS_API_KEYS": ",".join(API_KEY_CANARIES)}
    with LiveServer(env, tmp_path / "gunicorn.log", workers=1) as keyed:
        open_page(page, keyed, "", state="idle")
        fill(page, "f-isin", "US67066G1040")
        fill(page, "f-horizon_days", "2")
        submit_and_wait(page, "error")
        # No key typed: the 401 is shown at the key field, whose closed section is opened.
        refused = page.execute_script("return document.getElementById('e-api_key').textContent")
        assert "API key" in refused
        fill(page, "f-api-key", "not-a-key")
        submit_and_wait(page, "error")
        assert page.execute_script("return document.activeElement.id") == "f-api-key"
        fill(page, "f-api-key", key)
        submit_and_wait(page, "ready")
        from selenium.webdriver.common.by import By

        page.find_element(By.ID, "backtest-submit").click()  # the backtest sends the key too
        assert wait_for_backtest(page) == "ready", backtest_status(page)
        stored = page.execute_script(
            "return [location.href, JSON.stringify(localStorage), JSON.stringify(sessionStorage),"
            " document.cookie, document.getElementById('permalink').href]"
        )
    assert len(table_rows(page)) == 2
    assert not any(key in text for text in stored), stored


def test_submitting_updates_the_address_and_back_shows_the_earlier_forecast(page, server):
    open_page(page, server, "isin=US67066G1040&horizon_days=2&seed=4")
    fill(page, "f-horizon_days", "3")
    submit_and_wait(page, "ready")
    assert parse_qs(urlsplit(page.current_url).query)["horizon_days"] == ["3"]
    assert len(table_rows(page)) == 3
    page.execute_script("document.body.dataset.state = 'submitted'")
    page.back()
    assert wait_for_state(page, "ready", "error") == "ready"
    assert page.execute_script("return document.getElementById('f-horizon_days').value") == "2"
    assert len(table_rows(page)) == 2


def test_the_answers_warnings_are_shown(page, server):
    open_page(page, server, "isin=US67066G1040&horizon_days=1&seed=1")
    assert page.execute_script("return document.getElementById('answer-warnings').hidden")
    # The FX week's round-the-clock hours, forecast on the NYSE's calendar: most bars lie outside.
    open_page(page, server, f"symbol={FX_SYMBOL}&calendar=XNYS&horizon_days=1&seed=1")
    request = {"symbol": FX_SYMBOL, "calendar": "XNYS", "horizon_days": 1}
    (warning,) = api_answer(server, request)["metadata"]["warnings"]
    shown = page.execute_script(
        "const box = document.getElementById('answer-warnings');"
        "return [box.hidden, box.textContent]"
    )
    assert shown == [False, f"Warning: {warning}."]


def test_the_bar_interval_is_shown_in_words(page, server):
    open_page(page, server, "isin=US67066G1040&horizon_days=1&seed=1")
    assert facts(page)["Bar interval"] == "1 day"
    sent = ["P1DT0H0M0S", "P0DT0H5M0S", "P0DT1H30M0S", "P2DT0H0M0S", "P0DT0H0M0.5S", "PT1H"]
    shown = page.execute_async_script(
        "const [sent, done] = arguments;"
        "const url = document.querySelector('link[rel=modulepreload]').href;"
        "import(url).then(m => done(sent.map(m.durationText)));",
        sent,
    )
    assert shown == ["1 day", "5 minutes", "1 hour 30 minutes", "2 days", "0.5 seconds", "PT1H"]


def bar_pixels(driver: Any) -> list[float]:
    """Where the chart draws each bar (history candles, then the median path), in pixels from
    the plot's left edge, left to right."""
    return list(
        driver.execute_script(
            "const chart = document.getElementById('chart');"
            "const axis = chart._fullLayout.xaxis;"
            "const xs = chart.data.flatMap(t => t.meta.role === 'history' || t.name === 'median'"
            " ? Array.from(t.x) : []);"
            "return [...new Set(xs)].map(x => axis.d2p(x)).sort((a, b) => a - b);"
        )
    )


def assert_evenly_spaced(pixels: list[float]) -> None:
    """No stretch wider than one bar: closed hours and days are cut from the axis."""
    steps = [right - left for left, right in itertools.pairwise(pixels)]
    assert len(steps) > 20 and min(steps) > 0
    assert max(steps) - min(steps) < 1.0, (min(steps), max(steps))


def test_a_symbol_deep_link_with_the_fx_calendar_draws_hours_without_the_weekend(
    page, server, tmp_path
):
    open_page(page, server, f"symbol={FX_SYMBOL}&calendar=24/5&horizon_days=1&seed=2")
    body = {"symbol": FX_SYMBOL, "calendar": "24/5", "horizon_days": 1, "seed": 2}
    expected = api_answer(server, {**body, "include_path": True})
    assert expected["metadata"]["calendar"] == {"name": "24/5", "source": "request"}
    shown = facts(page)
    assert expected["metadata"]["bar_interval"] == "P0DT1H0M0S"  # the API keeps ISO 8601
    assert shown["Calendar"] == "24/5 (as asked)" and shown["Bar interval"] == "1 hour"
    assert status_text(page) == f"Forecast of {FX_SYMBOL} for 1 trading day."
    assert [row["date"][0] for row in table_rows(page)] == [expected["predictions"][0]["date"]]
    values = page.execute_script(
        "return ['symbol', 'calendar', 'isin'].map(n => document.getElementById('f-' + n).value)"
    )
    assert values == [FX_SYMBOL, "24/5", ""]
    permalink = page.execute_script("return document.getElementById('permalink').href")
    assert parse_qs(urlsplit(permalink).query) == {
        "symbol": [FX_SYMBOL],
        "calendar": ["24/5"],
        "horizon_days": ["1"],
        "seed": ["2"],
    }

    candles = next(t for t in chart_traces(page) if t["type"] == "candlestick")
    median = next(t for t in chart_traces(page) if t["name"] == "median")
    assert median["x"][1:] == [plot_date(bar["timestamp"]) for bar in expected["path"]]
    # The history ends on Friday 21:00, the forecast starts on Sunday 22:00: a weekend in view.
    assert pd.Timestamp(candles["x"][-1]) == pd.Timestamp("2024-01-26 21:00")
    assert pd.Timestamp(median["x"][1]) == pd.Timestamp("2024-01-28 22:00")
    assert_evenly_spaced(bar_pixels(page))
    save_artifact(page, tmp_path, "viewer-fx-24-5-hourly-1280x800.png")


def test_pasted_intraday_candles_on_the_xnys_calendar_skip_nights_and_say_the_link_lacks_them(
    page, server, tmp_path
):
    candles = xnys_half_hours("2024-02-20", "2024-03-01")
    csv_text = candles.to_csv()
    open_page(page, server, "history=csv", state="idle")
    assert "cannot carry" in status_text(page)
    page.execute_script("document.getElementById('f-candles').value = arguments[0]", csv_text)
    fill(page, "f-isin", DATA_DIR_ISIN)
    fill(page, "f-calendar", "XNYS")
    fill(page, "f-horizon_days", "2")
    submit_and_wait(page, "ready")

    assert facts(page)["Calendar"] == "XNYS (as asked)"
    assert len(table_rows(page)) == 2
    assert_evenly_spaced(bar_pixels(page))
    median = next(t for t in chart_traces(page) if t["name"] == "median")
    future = pd.DatetimeIndex(median["x"][1:])
    assert future.min() > candles.index[-1] and len(future) == 2 * 13
    assert ((future.hour * 60 + future.minute) >= 9 * 60 + 30).all()

    note = page.execute_script(
        "const note = document.getElementById('link-note');"
        "return [note.hidden, note.textContent, document.getElementById('permalink').textContent]"
    )
    assert note[0] is False and "cannot carry the candles" in note[1]
    assert note[2] == "these settings (not the candles)"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element(By.ID, "candles-download").click()
    saved = downloads / f"{DATA_DIR_ISIN}.csv"
    WebDriverWait(page, WAIT_S).until(lambda _: saved.is_file() and saved.stat().st_size > 0)
    assert saved.read_text() == csv_text
    save_artifact(page, tmp_path, "viewer-xnys-intraday-1280x800.png")
    set_viewport(page, 390, 844)  # a window made narrow: the chart is drawn again to fit
    WebDriverWait(page, WAIT_S).until(
        lambda d: d.execute_script(
            "return document.getElementById('chart')._fullLayout.width <= 390"
            " && document.documentElement.scrollWidth <= 390"
        )
    )
    save_artifact(page, tmp_path, "viewer-xnys-intraday-390x844-full.png", full_page=True)
    assert foreign_requests(page, server) == []


# --- calibration and the backtest view ---------------------------------------------------------

BACKTEST_LINK = "isin=US67066G1040&backtest=1&backtest_origins=20"
# The body the page posts for BACKTEST_LINK: its default horizons and samples (no forecast has told
# it the history's length, so no window of its own).
BACKTEST_BODY = {"isin": "US67066G1040", "horizon_days": [1, 5, 20], "origins": 20, "samples": 16}
BANDS = ("0.5", "0.8", "0.9")


def test_a_calibrated_forecast_shows_its_calibration(page, server):
    open_page(page, server, "isin=US67066G1040&horizon_days=5&seed=7&calibrate=1")
    body = {"isin": "US67066G1040", "horizon_days": 5, "seed": 7, "calibrate": True}
    calibration = api_answer(server, body)["metadata"]["calibration"]
    assert calibration["calibrated"] and calibration["origins"] == 30
    first, last = calibration["factor_first_step"], calibration["factor_last_step"]
    assert facts(page)["Calibration"] == f"calibrated ×{first:.2f} … ×{last:.2f}"
    note = page.execute_script(
        "const n = document.getElementById('calibration-note'); return [n.hidden, n.textContent]"
    )
    assert note[0] is False
    assert f"on {calibration['origins']} origins" in note[1]
    assert f"{calibration['checked_steps']} bars ahead" in note[1]
    for band, held in calibration["coverage_before"].items():
        assert f"the {float(band) * 100:.0f} % band held {held * 100:.1f} %" in note[1]
    state = page.execute_script(
        "return [document.getElementById('f-calibrate').checked,"
        " document.getElementById('permalink').href]"
    )
    assert state[0] is True and parse_qs(urlsplit(state[1]).query)["calibrate"] == ["1"]
    assert foreign_requests(page, server) == []


def backtest_rows(driver: Any) -> dict[tuple[str, str], dict[str, str]]:
    """The scores table: (model, horizon) -> column -> data-value."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#backtest-table tbody tr')).map(tr =>"
        " [tr.dataset.model, tr.dataset.horizon, Object.fromEntries(Array.from(tr.cells)"
        ".map(td => [td.dataset.column, td.dataset.value]))])"
    )
    return {(model, horizon): cells for model, horizon, cells in rows}


def traces_of(driver: Any, chart: str) -> list[dict[str, Any]]:
    return list(
        driver.execute_script(
            "return document.getElementById(arguments[0]).data.map(t => ({name: t.name,"
            " type: t.type, meta: t.meta || {}, x: Array.from(t.x || []).map(v => Array.isArray(v)"
            " ? Array.from(v) : v), y: Array.from(t.y || [])}))",
            chart,
        )
    )


def value(text: str) -> float | None:
    return None if text == "" else float(text)


def test_a_backtest_deep_link_shows_the_scores_the_api_returns(page, server, tmp_path):
    open_page(page, server, BACKTEST_LINK, state="idle", backtest="ready")
    expected = api_answer(server, BACKTEST_BODY, "/backtest")
    models = expected["models"]
    assert set(models) == {"simulated", "random_walk", "drift", "gaussian_random_walk"}

    coverage = {
        t["meta"]["model"]: t
        for t in traces_of(page, "coverage-chart")
        if t["meta"].get("role") == "coverage"
    }
    assert set(coverage) == {"simulated", "gaussian_random_walk"}
    horizons = [str(h) for h in expected["horizon_days"]]
    for model, trace in coverage.items():
        assert trace["type"] == "bar"
        assert trace["y"] == [
            models[model]["horizons"][h][f"coverage_{b}"] for b in BANDS for h in horizons
        ]
        assert trace["x"][0] == [f"{float(b) * 100:.0f} % band" for b in BANDS for _ in horizons]
        assert trace["x"][1] == [f"{h} d" for _ in BANDS for h in horizons]
    nominal = [t for t in traces_of(page, "coverage-chart") if t["meta"].get("role") == "nominal"]
    assert [t["y"][0] for t in nominal] == [0.5, 0.8, 0.9]

    reliability = traces_of(page, "reliability-chart")
    for trace in (t for t in reliability if t["meta"].get("role") == "reliability"):
        bins = models[trace["meta"]["model"]]["reliability"]
        assert trace["x"] == [b["p_up"] for b in bins] and trace["y"] == [
            b["observed"] for b in bins
        ]
    assert {t["meta"].get("model") for t in reliability} >= {"simulated", "gaussian_random_walk"}
    diagonal = next(t for t in reliability if t["meta"].get("role") == "diagonal")
    assert diagonal["x"] == diagonal["y"] and len(diagonal["x"]) == 2
    drawn = page.execute_script(
        "return ['coverage-chart', 'reliability-chart'].map(id =>"
        " document.querySelectorAll(`#${id} .main-svg .point, #${id} .main-svg .trace`).length)"
    )
    assert all(count > 0 for count in drawn), drawn  # plotly.js drew them

    rows = backtest_rows(page)
    assert len(rows) == len(models) * len(horizons)
    for (model, horizon), cells in rows.items():
        scores = models[model]["horizons"][horizon]
        for band in BANDS:
            assert value(cells[f"coverage_{band}"]) == scores[f"coverage_{band}"]
        for key in ("pinball_vs_baseline", "crps_vs_baseline", "brier", "direction_hit", "n"):
            assert value(cells[key]) == scores[key], (model, horizon, key)
    # the baseline's own ratio (a mean over the same rows divided by itself, up to rounding)
    assert float(rows[("gaussian_random_walk", "5")]["pinball_vs_baseline"]) == pytest.approx(1.0)

    shown = facts(page, "backtest-facts")
    assert shown["Backend"] == f"simulated ({expected['backend']['version']})"
    assert shown["Calendar"] == "XNYS (the ISIN country's exchange)"
    first, last = expected["first_origin"][:10], expected["last_origin"][:10]
    assert shown["Origins"] == f"{expected['origins']}, {first} to {last}"
    assert shown["Window"] == "400 bars" and shown["Samples"] == "16" and shown["Seed"] == "0"
    assert re.fullmatch(r"[\d.]+ s on the service, \d+\.\d\d s in all", shown["Run time"])
    assert status_text(page) == "Choose an instrument and a horizon, then press Forecast."
    assert backtest_status(page) == (
        f"Backtest of US67066G1040: {expected['origins']} origins, 1, 5, 20 trading days ahead."
    )
    assert foreign_requests(page, server) == []
    marks = page.execute_script(
        "return Object.fromEntries(performance.getEntriesByType('mark')"
        ".map(m => [m.name, m.startTime]))"
    )
    assert marks["kronos:first-backtest-chart-drawn"] >= marks["kronos:backtest-received"] > 0
    save_artifact(page, tmp_path, "viewer-backtest-1280x800-full.png", full_page=True)

    set_viewport(page, 390, 844)  # a phone: the charts shrink, nothing scrolls sideways
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(page, WAIT_S).until(
        lambda d: d.execute_script(
            "return document.getElementById('coverage-chart')._fullLayout.width <= 390"
            " && document.documentElement.scrollWidth <= 390"
        )
    )
    save_artifact(page, tmp_path, "viewer-backtest-390x844-full.png", full_page=True)


def test_a_backtest_after_a_forecast_fits_its_limits_to_the_short_history(page, server):
    """80 bars in the data folder: the page leaves out 20 days and shortens the window so that
    30 origins fit, where the API's defaults would be refused."""
    open_page(
        page,
        server,
        f"isin={DATA_DIR_ISIN}&horizon_days=3&seed=1&backtest=1&backtest_origins=30",
        backtest="ready",
    )
    body = {"isin": DATA_DIR_ISIN, "origins": 30, "samples": 16}
    refused = api_answer(server, {**body, "horizon_days": [1, 5, 20]}, "/backtest", status=422)
    assert "no origin" in " ".join(refused["errors"]["isin"])  # the stored history's instrument
    expected = api_answer(server, {**body, "horizon_days": [1, 5], "window": 44}, "/backtest")
    assert expected["origins"] == 30
    rows = backtest_rows(page)
    assert {horizon for _, horizon in rows} == {"1", "5"}
    simulated = expected["models"]["simulated"]["horizons"]
    for horizon in ("1", "5"):
        assert (
            value(rows[("simulated", horizon)]["coverage_0.8"])
            == simulated[horizon]["coverage_0.8"]
        )
    assert facts(page, "backtest-facts")["Window"] == "44 bars"
    note = page.execute_script("return document.getElementById('backtest-plan').textContent")
    assert "too short for 20 trading days" in note and "shortened to 44 bars" in note
    assert foreign_requests(page, server) == []


@pytest.mark.parametrize(
    ("origins", "message", "asked"),
    [
        ("0", "greater than or equal to 1", True),  # the API's message
        ("many", "Not a valid integer", True),
        ("60", "at most 50 (on this page", False),  # the page's cap: nothing is sent
    ],
)
def test_a_bad_backtest_origins_value_shows_the_error_next_to_the_field(
    page, server, origins, message, asked
):
    open_page(page, server, BACKTEST_LINK, state="idle", backtest="ready")
    requests(page)
    fill(page, "f-backtest_origins", origins)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page.execute_script("document.body.dataset.backtestState = 'submitted'")
    page.find_element(By.ID, "f-backtest_origins").send_keys(Keys.ENTER)
    assert wait_for_backtest(page) == "error"
    shown = page.execute_script(
        "const input = document.getElementById('f-backtest_origins');"
        "const slot = document.getElementById('e-backtest_origins');"
        "return {error: slot.textContent, invalid: input.getAttribute('aria-invalid'),"
        " described: input.getAttribute('aria-describedby'),"
        " sameBox: input.closest('.field') === slot.closest('.field'),"
        " focused: document.activeElement === input,"
        " hidden: document.getElementById('backtest-answer').hidden}"
    )
    assert message.lower() in shown["error"].lower(), shown
    assert shown["invalid"] == "true" and "e-backtest_origins" in shown["described"]
    assert shown["sameBox"] and shown["focused"] and shown["hidden"]
    assert any(url.endswith("/backtest") for url in requests(page)) is asked
    assert parse_qs(urlsplit(page.current_url).query)["backtest_origins"] == [origins]


# --- accessibility: axe-core (tests/vendor/axe-core, MPL-2.0) run in the page ----------------

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
AXE_RUN_JS = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))
  .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), targets: []}]));
"""


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA and best-practice violations on the page as it is now (injected
    through the driver, which a Content-Security-Policy does not stop; never served by the app)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text())
    driver.set_script_timeout(WAIT_S)
    return list(driver.execute_async_script(AXE_RUN_JS, AXE_TAGS))


def test_the_vendored_axe_core_is_the_one_its_origin_names():
    import hashlib

    assert hashlib.sha256(AXE.read_bytes()).hexdigest() == AXE_SHA256
    origin_note = (AXE.parent / "ORIGIN.md").read_text()
    assert AXE_SHA256 in origin_note and "4.14.1" in origin_note
    assert AXE.read_text()[:40].startswith("/*! axe v4.14.1")
    assert (AXE.parent / "LICENSE").read_text().startswith("Mozilla Public License")


BACKTEST_AND_CALIBRATED = f"{BACKTEST_LINK}&horizon_days=5&seed=7&calibrate=1"


@pytest.mark.parametrize(
    ("name", "query", "state", "width"),
    [
        ("backtest", BACKTEST_AND_CALIBRATED, "ready", 1280),
        ("phone-backtest", BACKTEST_AND_CALIBRATED, "ready", 390),
        ("form", "history=csv", "idle", 1280),
        ("fx-forecast", f"symbol={FX_SYMBOL}&calendar=24/5&horizon_days=2&seed=1", "ready", 1280),
        (
            "field-errors",
            "isin=US67066G1041&symbol=X&calendar=XX&horizon_days=1",
            "error",
            1280,
        ),
        ("phone-forecast", "isin=US67066G1040&horizon_days=5&seed=7", "ready", 390),
    ],
)
def test_axe_finds_no_accessibility_violations(page, server, tmp_path, name, query, state, width):
    set_viewport(page, width, 844 if width < 600 else 800)
    open_page(page, server, query, state=state, backtest="ready" if "backtest=1" in query else None)
    page.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    violations = axe_violations(page)
    save_artifact(page, tmp_path, f"viewer-axe-{name}-{width}.png", full_page=True)
    assert violations == [], json.dumps(violations, indent=1)


def test_the_keyboard_reaches_the_fields_in_order_and_the_skip_link_jumps_to_the_forecast(
    page, server
):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(page, server, "isin=US67066G1040&horizon_days=2&seed=1")
    page.execute_script("document.activeElement.blur()")
    stops = []
    for _ in range(26):
        ActionChains(page).send_keys(Keys.TAB).perform()
        stops.append(
            page.execute_script(
                "const e = document.activeElement; const box = e.getBoundingClientRect();"
                "return [e.id || e.tagName.toLowerCase() + ':' + (e.getAttribute('data-title')"
                " || e.textContent.trim()),"
                " getComputedStyle(e).outlineStyle, box.left >= 0 && box.width > 0]"
            )
        )
    order = [stop[0] for stop in stops]
    assert order == [
        "skip",
        "f-isin",
        "f-symbol",
        "f-horizon_days",
        "f-calendar",
        "history-server",  # the checked radio of the group
        "f-sample_count",
        "f-quantiles",
        "f-seed",
        "f-calibrate",
        "summary:Advanced sampling and history",
        "summary:API key",
        "submit",
        "permalink",
        *(  # plotly.js's mode bar, without its "Share chart..." (an upload to Plotly Cloud)
            f"button:{title}"
            for title in (
                "Download plot as a PNG",
                "Zoom",
                "Pan",
                "Zoom in",
                "Zoom out",
                "Autoscale",
                "Reset axes",
            )
        ),
        "table-wrap",
        "f-backtest_horizons",
        "f-backtest_origins",
        "f-backtest_samples",
        "backtest-submit",
    ], order
    assert all(outline != "none" and visible for _, outline, visible in stops), stops
    page.execute_script("document.getElementById('skip').focus()")
    ActionChains(page).send_keys(Keys.ENTER).perform()
    assert page.execute_script("return document.activeElement.id") == "results"
