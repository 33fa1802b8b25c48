"""GET /: a page that asks the public JSON API for a forecast and draws it (issue 11).

The page carries no data: it is HTML, CSS and JavaScript that call ``POST /predict`` from the
browser, same origin, with the caller's API key when one is typed in. Its chart library is the
vendored plotly.js finance bundle (``app/vendor/plotly.js/``, MIT, origin in its ORIGIN.md), served
by this blueprint, so the page needs no network beyond this service. A Content-Security-Policy keeps
every fetch and script on this origin.

The form is generated from ``FORM_FIELDS``: each entry is one request field of ``/predict``, its
input, its query parameter in a deep link (``/?isin=...&horizon_days=5``,
``/?symbol=EURUSD&calendar=24/5&horizon_days=1``, ``&calibrate=1``) and the place its API error is
shown. A new request field is one more entry. ``isin`` and ``symbol`` are alternatives
(``one_of``): neither is required alone, the API says which one is wrong.

The backtest view asks ``POST /backtest`` for the form's instrument, calendar and history, with the
limits of ``BACKTEST_FIELDS`` (horizons, origins, samples; query parameters ``backtest=1``,
``backtest_origins=30``, ...). Its origins are capped at ``PAGE_MAX_BACKTEST_ORIGINS`` or the
service's ``KRONOS_MAX_BACKTEST_ORIGINS``, whichever is lower, so a click stays cheap.

Routes (all `policy.public`: they carry no data, so no API key is needed to load the page):
``viewer.page`` (``GET /``), ``viewer.asset`` (the page's CSS and JavaScript from
``app/static/viewer/``) and ``viewer.plotly_bundle``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, request, send_file

from app.policy import public
from app.settings import Settings, current_settings
from kronos_integration.calendars import HISTORY, calendar_names

blp = Blueprint("viewer", __name__)
ASSETS = Path(__file__).resolve().parents[1] / "static" / "viewer"
SCRIPTS = ("viewer.js", "common.js", "backtest.js")  # viewer.js imports the other two
ASSET_TYPES = {"viewer.css": "text/css", **dict.fromkeys(SCRIPTS, "text/javascript")}

PLOTLY_BUNDLE = (
    Path(__file__).resolve().parents[1] / "vendor" / "plotly.js" / "plotly-finance.min.js"
)
PLOTLY_VERSION = "4.1.0"  # the bundle's header says it; tests/test_viewer.py checks
ONE_YEAR_S = 365 * 24 * 3600
# Scripts, styles, images and fetches from this origin only. plotly.js sets inline styles on the
# elements it draws and adds a <style> element, hence 'unsafe-inline' for styles (not scripts).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


@dataclass(frozen=True)
class FormField:
    """One ``/predict`` request field as the page shows it.

    ``kind`` says how the input's text becomes JSON: ``string``, ``integer``, ``number``,
    ``numbers`` (a comma-separated list) or ``boolean`` (a checkbox). ``group`` is the fieldset it
    appears in. Fields that share a ``one_of`` name are alternatives: a deep link runs when one of
    them is given. ``suggestions`` are offered in a datalist; any other text may still be typed.
    ``default`` is the input's initial text.
    """

    name: str
    label: str
    kind: str
    group: str
    hint: str = ""
    placeholder: str = ""
    required: bool = False
    one_of: str = ""
    suggestions: tuple[str, ...] = ()
    default: str = ""


GROUPS = {
    "instrument": "Instrument",
    "sampling": "Sampling",
    "advanced": "Advanced sampling and history",
}

FORM_FIELDS = (
    FormField(
        "isin",
        "ISIN",
        "string",
        "instrument",
        "12 characters; or leave it empty and give a symbol",
        "e.g. US67066G1040",
        one_of="instrument",
    ),
    FormField(
        "symbol",
        "Symbol",
        "string",
        "instrument",
        "An instrument without an ISIN (FX pair, crypto, index)",
        "e.g. EURUSD",
        one_of="instrument",
    ),
    FormField(
        "horizon_days",
        "Horizon (trading days)",
        "integer",
        "instrument",
        "",
        "e.g. 5",
        required=True,
    ),
    FormField(
        "calendar",
        "Trading calendar",
        "string",
        "instrument",
        "An exchange MIC (XNYS, XLON, ...), 24/5, 24/7 or history. Empty: the data folder's, "
        "else the ISIN's exchange, else inferred from the bars",
        "default",
        suggestions=(*calendar_names(), HISTORY),
    ),
    FormField("sample_count", "Sample paths", "integer", "sampling", "Server default when empty"),
    FormField(
        "quantiles",
        "Quantile levels",
        "numbers",
        "sampling",
        "Comma-separated, between 0 and 1",
        "0.1, 0.5, 0.9",
    ),
    FormField("seed", "Seed", "integer", "sampling", "Same seed, same forecast", "random"),
    FormField(
        "calibrate",
        "Calibrate the bands",
        "boolean",
        "sampling",
        "Rescale the bands by a backtest on this history's last {calibration_origins} origins "
        "(that many more forecasts)",
    ),
    FormField("temperature", "Temperature", "number", "advanced", "", "1.0"),
    FormField("top_p", "Top-p", "number", "advanced", "Kronos only", "0.9"),
    FormField("top_k", "Top-k", "integer", "advanced", "Kronos only; 0 is off", "0"),
    FormField("lookback", "Lookback (bars)", "integer", "advanced", "Server default when empty"),
)

PAGE_MAX_BACKTEST_ORIGINS = 50
"""The page asks for at most this many backtest origins (the API may allow more)."""

BACKTEST_FIELDS = (
    FormField(
        "backtest_horizons",
        "Horizons (trading days)",
        "numbers",
        "backtest",
        "Comma-separated, at most 5; the longest ones are dropped when the history is too short",
        default="1, 5, 20",
    ),
    FormField(
        "backtest_origins",
        "Origins",
        "integer",
        "backtest",
        "Past points forecast and scored, at most {max_origins}",
        default="30",
    ),
    FormField(
        "backtest_samples",
        "Sample paths per forecast",
        "integer",
        "backtest",
        "At most {max_samples}",
        default="16",
    ),
)


def page_limits(settings: Settings) -> dict[str, int]:
    """The service's limits the page states and plans with."""
    return {
        "max_origins": min(PAGE_MAX_BACKTEST_ORIGINS, settings.max_backtest_origins),
        "api_max_origins": settings.max_backtest_origins,
        "max_samples": settings.forecast.max_sample_count,
        "max_horizon_days": settings.max_horizon_days,
        "lookback": settings.forecast.lookback,
        "calibration_origins": settings.forecast.calibration_origins,
    }


def _with_limits(fields: tuple[FormField, ...], limits: dict[str, int]) -> list[FormField]:
    return [replace(field, hint=field.hint.format(**limits)) for field in fields]


@blp.route("/", methods=["GET"])
@public
def page() -> Response:
    """The forecast viewer page; its deep-link query parameters are read by the page itself."""
    settings = current_settings()
    limits = page_limits(settings)
    html = render_template(
        "viewer/index.html",
        groups=GROUPS,
        fields=_with_limits(FORM_FIELDS, limits),
        backtest_fields=_with_limits(BACKTEST_FIELDS, limits),
        limits=limits,
        checked_by_default={"calibrate": settings.forecast.calibrate},
        plotly_version=PLOTLY_VERSION,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@blp.route("/viewer/assets/<name>", methods=["GET"])
@public
def asset(name: str) -> Response:
    """The page's own stylesheet and script."""
    if name not in ASSET_TYPES:
        abort(404)
    response = send_file(ASSETS / name, mimetype=ASSET_TYPES[name], conditional=True, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blp.route("/viewer/plotly.min.js", methods=["GET"])
@public
def plotly_bundle() -> Response:
    """The vendored plotly.js bundle; cached for a year when asked for by its version."""
    versioned = request.args.get("v") == PLOTLY_VERSION
    response = send_file(
        PLOTLY_BUNDLE,
        mimetype="text/javascript",
        conditional=True,
        max_age=ONE_YEAR_S if versioned else 0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
