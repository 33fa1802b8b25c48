"""A backtest summary for people: a plain-text table, and one self-contained HTML page.

The page says what ran on what (backend, calendar, origins, window, samples), then the scores
per horizon with each model on its own row, coloured against their targets (bands within 4
points of nominal, scores that beat the Gaussian random walk), what each column means, the
confidence ranking, and charts: band coverage against nominal, PIT histograms, reliability of
P(up), and realised error and coverage per confidence decile. Nothing is fetched when the page is
viewed: matplotlib draws each chart, embedded as a base64 PNG; there is no script.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kronos_integration.evaluation.backtest import BANDS, reliability

BAND_TOLERANCE = 0.04
"""A band's coverage counts as on target within this many points of nominal (the issue's ±4)."""
CALENDAR_SOURCES = {
    "request": "as asked for",
    "data_dir": "the data folder's",
    "isin": "the exchange of the ISIN's country",
    "history": "inferred from the bars' times: no holidays",
}
PALETTE = ("#1f77b4", "#9467bd", "#ff7f0e", "#2ca02c", "#8c564b", "#7f7f7f")


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _ratio(value: float) -> str:
    return f"{value:.3f}"


def _no_verdict(value: float) -> None:
    return None


def _near(nominal: float) -> Callable[[float], bool]:
    return lambda value: abs(value - nominal) <= BAND_TOLERANCE


# key, column label, format, verdict (True: good, False: bad, None: no colour).
Column = tuple[str, str, Callable[[float], str], Callable[[float], bool | None]]
COLUMNS: tuple[Column, ...] = (
    *((f"coverage_{band:g}", f"{band:.0%} band", _percent, _near(band)) for band in BANDS),
    ("pinball_vs_baseline", "pinball ÷ GRW", _ratio, lambda v: v <= 1.0),
    ("crps_vs_baseline", "CRPS ÷ GRW", _ratio, lambda v: v <= 1.0),
    ("mape", "MAPE", lambda v: f"{v:.2f} %", _no_verdict),
    ("mase", "MASE", lambda v: f"{v:.2f}", _no_verdict),
    ("direction_hit", "direction hit", _percent, _no_verdict),
    ("brier", "Brier", _ratio, lambda v: v <= 0.25),
    ("date_accuracy", "dates right", _percent, lambda v: v >= 0.99),
)

LEGEND = (
    ("50/80/90 % band", "share of outcomes inside the central band of the forecast; green within "
     "4 points of nominal"),
    ("pinball ÷ GRW, CRPS ÷ GRW", "mean pinball loss (7 quantile levels) and CRPS over the "
     "Gaussian random walk's on the same forecasts; below 1 is better"),
    ("MAPE, MASE", "error of the median: in % of the price, and in units of the window's mean "
     "one-bar move"),
    ("direction hit", "share of forecasts whose median moved the way the price did"),
    ("Brier", "of P(up); a constant 50 % scores 0.250; lower is better"),
    ("dates right", "share of scored days that fell on the trading day the calendar predicted"),
)  # fmt: skip

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222;
  line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.lead{font-size:1.1em;color:#444;margin-top:0}
table{border-collapse:collapse;margin:.8em 0}
td,th{border:1px solid #d0d0d0;padding:4px 10px;text-align:right;font-variant-numeric:tabular-nums;
  white-space:nowrap}th{white-space:normal}
th{background:#f3f3f3;vertical-align:bottom}td:first-child,th:first-child{text-align:left}
table.facts td{border:none;padding:2px 14px 2px 0;text-align:left}
table.facts td:first-child{color:#666}
tr.horizon td{background:#e9eef5;font-weight:bold;text-align:left}
td.good{background:#e3f4e1}td.bad{background:#fde8e1}
td.model{font-weight:600}td.baseline{color:#555;font-weight:normal}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:.92em;color:#333}
dt{font-weight:600}dd{margin:0}
.note{background:#fff6dc;border-left:4px solid #e0b000;padding:.5em .8em}
figure{margin:1em 0}figcaption{color:#555;font-size:.92em;max-width:900px}
img{max-width:100%}
"""


def write_html(summary: dict[str, Any], frame: pd.DataFrame, path: Path, title: str) -> None:
    """Write the report of `summarize(frame)` (with `runner.backtest_backend`'s facts when
    present) to `path`."""
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        _lead(summary),
        _facts(summary),
        _date_note(summary),
        "<h2>Scores per horizon</h2>",
        _table(summary),
        _legend(),
        _confidence_table(summary),
        "<h2>Charts</h2>",
        _figure(
            _coverage_chart(frame),
            "Band coverage per horizon: bars are the share of outcomes inside each band, the "
            "dashed line its nominal level.",
        ),
        _figure(
            _pit_chart(frame),
            "PIT histograms: where each outcome fell among the forecast's samples. Flat at 1 is "
            "calibrated; a U shape means bands too narrow, a hump bands too wide, a slope a bias.",
        ),
        _figure(
            _reliability_chart(frame),
            "Reliability of P(up): each model's forecasts sorted by P(up) and cut into ten equal "
            "groups; on the diagonal, P(up) means what it says. The axes span the data only.",
        ),
        _figure(
            _confidence_chart(frame),
            "Confidence deciles (all horizons): realised volatility-scaled error and 80 % band "
            "coverage from the least to the most confident tenth of forecasts.",
        ),
    ]
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
    path.write_text(page, encoding="utf-8")


def summary_table(summary: dict[str, Any]) -> str:
    """The summary's scores as a plain-text table: one line per model and horizon."""
    names = list(summary["models"])
    width = max(len("model"), *(len(name) for name in names))
    columns = [(key, label, fmt) for key, label, fmt, _ in COLUMNS if key != "mape"]
    widths = [max(len(label), 8) for _, label, _ in columns]
    header = f"{'model':<{width}} {'days':>4} " + " ".join(
        f"{label:>{w}}" for (_, label, _), w in zip(columns, widths, strict=True)
    )
    lines = [header, "-" * len(header)]
    for horizon in summary["models"][names[0]]["horizons"]:
        for model in names:
            scores = summary["models"][model]["horizons"][horizon]
            cells = [
                f"{'—' if scores.get(key) is None else fmt(scores[key]):>{w}}"
                for (key, _, fmt), w in zip(columns, widths, strict=True)
            ]
            lines.append(f"{model:<{width}} {horizon:>4} " + " ".join(cells))
        lines.append("")
    return "\n".join(lines[:-1])


def _lead(summary: dict[str, Any]) -> str:
    backend = summary.get("backend")
    models = [m for m in summary["models"] if m not in _baselines(summary)]
    subject = html.escape(", ".join(models)) if backend is None else html.escape(backend["name"])
    text = (
        f"{subject} against naive baselines: {summary['forecasts_per_model']} scored forecasts "
        f"per model on {html.escape(', '.join(summary['series']))}."
    )
    return f"<p class='lead'>{text}</p>"


def _facts(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    backend = summary.get("backend")
    if backend:
        rows.append(("backend", f"{backend['name']} ({backend['version']})"))
        if backend.get("fallback_reason"):
            rows.append(("auto mode fell back", backend["fallback_reason"]))
    calendar = summary.get("calendar")
    if isinstance(calendar, dict):
        source = CALENDAR_SOURCES.get(calendar["source"], calendar["source"])
        rows.append(("calendar", f"{calendar['name']} ({source})"))
    if "origins" in summary:
        rows.append(
            (
                "origins",
                f"{summary['origins']}, last history bars from {summary['first_origin'][:10]} "
                f"to {summary['last_origin'][:10]}",
            )
        )
        days = ", ".join(str(h) for h in summary["horizon_days"])
        rows.append(("horizons", f"{days} trading days ahead"))
        rows.append(
            (
                "each forecast",
                f"{summary['window']} bars of history, {summary['samples']} sample paths, "
                f"seed {summary['seed']}",
            )
        )
        conformal = summary.get("conformal_origins", 0)
        rows.append(
            (
                "conformal",
                f"calibrated rows: {conformal} inner origins per forecast" if conformal else "off",
            )
        )
        rows.append(("baseline", "GRW: Gaussian random walk fitted on the same window"))
        rows.append(("run time", f"{summary['elapsed_s']:.1f} s"))
    cells = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>" for key, value in rows
    )
    return f"<table class='facts'>{cells}</table>" if rows else ""


def _date_note(summary: dict[str, Any]) -> str:
    worst = min(
        (
            scores["date_accuracy"]
            for entry in summary["models"].values()
            for scores in entry["horizons"].values()
        ),
        default=1.0,
    )
    if worst >= 0.99:
        return ""
    calendar = summary.get("calendar")
    name = calendar["name"] if isinstance(calendar, dict) else "the calendar"
    return (
        f"<p class='note'>Only {_percent(worst)} of the scored days fell on the date {name} "
        "predicted: the calendar does not know this market's holidays or hours. Name the "
        "exchange (<code>--calendar XNYS</code>) to score the days the service would report.</p>"
    )


def _baselines(summary: dict[str, Any]) -> set[str]:
    return {m for m, entry in summary["models"].items() if not entry.get("confidence")}


def _table(summary: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _, _ in COLUMNS)
    baselines = _baselines(summary)
    models = list(summary["models"])

    def _is_own_ratio(model: str, key: str) -> bool:  # the baseline against itself: 1
        return model == summary["baseline"] and key.endswith("_vs_baseline")

    rows = []
    for horizon in summary["models"][models[0]]["horizons"]:
        label = f"{horizon} trading day{'s' if horizon != '1' else ''} ahead"
        rows.append(f"<tr class='horizon'><td colspan='{len(COLUMNS) + 1}'>{label}</td></tr>")
        for model in models:
            scores = summary["models"][model]["horizons"][horizon]
            kind = "model baseline" if model in baselines else "model"
            cells = "".join(
                _cell(scores.get(key), fmt, _no_verdict if _is_own_ratio(model, key) else good)
                for key, _, fmt, good in COLUMNS
            )
            rows.append(f"<tr><td class='{kind}'>{html.escape(model)}</td>{cells}</tr>")
    return f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"


def _cell(
    value: float | None, fmt: Callable[[float], str], verdict: Callable[[float], bool | None]
) -> str:
    if value is None or np.isnan(value):
        return "<td>—</td>"
    good = verdict(value)
    kind = "" if good is None else (" class='good'" if good else " class='bad'")
    return f"<td{kind}>{fmt(value)}</td>"


def _legend() -> str:
    items = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(meaning)}</dd>" for term, meaning in LEGEND
    )
    return (
        f"<dl>{items}</dl><p>Random walk and drift are point forecasts (one path): they have no "
        "band, Brier score or PIT. Prices are scored as ratios to the origin's last close.</p>"
    )


def _confidence_table(summary: dict[str, Any]) -> str:
    rows = []
    for model, entry in summary["models"].items():
        ranking = entry["confidence"]
        if not ranking:
            continue
        top = ranking["top_tenth"]
        quintiles = " → ".join(f"{v:.2f}" for v in ranking["scaled_error_by_quintile"])
        rho = ranking["spearman_vs_scaled_error"]
        rows.append(
            f"<tr><td class='model'>{html.escape(model)}</td>"
            f"<td class='{'good' if rho < 0 else 'bad'}'>{rho:.3f}</td>"
            f"{_cell(top['coverage_0.8'], _percent, lambda v: v >= 0.75)}"
            f"{_cell(top['coverage_0.9'], _percent, lambda v: v >= 0.85)}"
            f"<td>{quintiles}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h2>Confidence</h2><p>Does a higher <code>confidence</code> mean a smaller error? "
        "Spearman correlation of confidence with the volatility-scaled error (negative: yes); "
        "band coverage of the most confident tenth of forecasts (green: at least nominal minus 5 "
        "points); mean scaled error per confidence fifth, least to most confident.</p>"
        "<table><tr><th>model</th><th>Spearman</th><th>top tenth, 80 % band</th>"
        "<th>top tenth, 90 % band</th><th>scaled error by confidence fifth</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _probabilistic(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["ensemble"] > 1]


def _colours(models: list[str]) -> dict[str, str]:
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}


def _coverage_chart(frame: pd.DataFrame) -> plt.Figure:
    data = _probabilistic(frame)
    models = list(dict.fromkeys(data["model"]))
    colours = _colours(models)
    horizons = sorted(set(data["horizon"]))
    figure, axes = plt.subplots(1, len(BANDS), figsize=(4.2 * len(BANDS), 3.7), sharey=True)
    width = 0.8 / max(len(models), 1)
    for axis, band in zip(np.atleast_1d(axes), BANDS, strict=True):
        for i, model in enumerate(models):
            rows = data[data["model"] == model].groupby("horizon")[f"covered_{band:g}"].mean()
            heights = rows.reindex(horizons).to_numpy()
            positions = np.arange(len(horizons)) + i * width
            axis.bar(positions, heights, width, label=model, color=colours[model])
        axis.axhspan(band - BAND_TOLERANCE, band + BAND_TOLERANCE, color="#2ca02c", alpha=0.12)
        axis.axhline(band, color="black", linestyle="--", linewidth=1)
        axis.set_xticks(np.arange(len(horizons)) + width * (len(models) - 1) / 2, horizons)
        axis.set_title(f"{band:.0%} band (nominal {band:.0%}, ±4 points shaded)", fontsize=10)
        axis.set_xlabel("trading days ahead")
        axis.set_ylim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel("share of outcomes inside")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(models), fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend under the panels
    return figure


def _pit_chart(frame: pd.DataFrame) -> plt.Figure:
    data = _probabilistic(frame)
    models = list(dict.fromkeys(data["model"]))
    colours = _colours(models)
    figure, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.0), sharey=True)
    for axis, model in zip(np.atleast_1d(axes), models, strict=True):
        values = data.loc[data["model"] == model, "pit"]
        axis.hist(
            values,
            bins=10,
            range=(0, 1),
            weights=np.full(len(values), 10 / len(values)),
            color=colours[model],
            edgecolor="white",
        )
        axis.axhline(1.0, color="black", linestyle="--", linewidth=1)
        axis.set_title(model, fontsize=10)
        axis.set_xlabel("PIT")
    np.atleast_1d(axes)[0].set_ylabel("density")
    return figure


def _reliability_chart(frame: pd.DataFrame) -> plt.Figure:
    data = _probabilistic(frame)
    colours = _colours(list(dict.fromkeys(data["model"])))
    figure, axis = plt.subplots(figsize=(4.8, 4.4))
    low, high = 0.5, 0.5
    for model, rows in data.groupby("model", sort=False):
        table = pd.DataFrame(reliability(rows))
        axis.plot(
            table["p_up"],
            table["observed"],
            "o",
            label=str(model),
            color=colours[str(model)],
            alpha=0.85,
        )
        low = min(low, table["p_up"].min(), table["observed"].min())
        high = max(high, table["p_up"].max(), table["observed"].max())
    span = (max(0.0, low - 0.05), min(1.0, high + 0.05))
    axis.plot(span, span, color="black", linestyle="--", linewidth=1)
    axis.set_xlim(*span)
    axis.set_ylim(*span)
    axis.set_aspect("equal")
    axis.set_xlabel("forecast P(up), mean of each tenth")
    axis.set_ylabel("observed share up")
    axis.legend(fontsize=8, loc="upper left")
    return figure


def _confidence_chart(frame: pd.DataFrame) -> plt.Figure:
    data = frame.dropna(subset=["confidence"])
    colours = _colours(list(dict.fromkeys(frame["model"])))
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for model, rows in data.groupby("model", sort=False):
        decile = pd.qcut(rows["confidence"].rank(method="first"), 10, labels=False) + 1
        grouped = rows.groupby(decile)
        style = {"marker": "o", "label": str(model), "color": colours[str(model)]}
        left.plot(grouped["scaled_error"].mean(), **style)
        right.plot(grouped["covered_0.8"].mean(), **style)
    left.set_title("volatility-scaled error (lower is better)", fontsize=10)
    right.set_title("80 % band coverage (nominal dashed)", fontsize=10)
    right.axhline(0.8, color="black", linestyle="--", linewidth=1)
    for axis in (left, right):
        axis.set_xlabel("confidence decile (10 = most confident)")
        axis.set_xticks(range(1, 11))
    left.legend(fontsize=8)
    return figure


def _figure(figure: plt.Figure, caption: str) -> str:
    buffer = io.BytesIO()
    if not figure.get_layout_engine():  # the chart did not lay itself out
        figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    label = html.escape(caption)
    return (
        f"<figure><img alt='{label}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption>{label}</figcaption></figure>"
    )
