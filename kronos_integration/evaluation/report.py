"""A backtest summary as one self-contained HTML page (tables, and charts inlined as PNG).

Nothing is fetched when the page is viewed: matplotlib draws each chart, which is embedded as
base64. Charts: band coverage against nominal per horizon, PIT histograms, reliability of
P(up), and realised volatility-scaled error and coverage per confidence decile.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kronos_integration.evaluation.backtest import BANDS

COLUMNS: tuple[tuple[str, str], ...] = (
    ("coverage_0.8", "80 % band"),
    ("coverage_0.9", "90 % band"),
    ("pinball_vs_baseline", "pinball ÷ GRW"),
    ("crps_vs_baseline", "CRPS ÷ GRW"),
    ("mape", "MAPE %"),
    ("mase", "MASE"),
    ("direction_hit", "direction hit"),
    ("brier", "Brier"),
    ("date_accuracy", "dates right"),
)


def write_html(summary: dict[str, Any], frame: pd.DataFrame, path: Path, title: str) -> None:
    """Write the report of `summarize(frame)` to `path`."""
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p>Series: "
        + html.escape(", ".join(summary["series"]))
        + f"; {summary['forecasts_per_model']} scored forecasts per model (origins × horizons). "
        "Prices are scored as ratios to the origin's last close; GRW is a Gaussian random walk "
        "fitted on the same window. Point forecasts (one path) have no band, Brier or PIT.</p>",
        _table(summary),
        _confidence_table(summary),
        _figure(_coverage_chart(frame), "Band coverage against nominal"),
        _figure(_pit_chart(frame), "PIT histograms (flat = calibrated)"),
        _figure(_reliability_chart(frame), "Reliability of P(up)"),
        _figure(_confidence_chart(frame), "Confidence deciles"),
    ]
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}"
        "img{max-width:100%}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
    path.write_text(page, encoding="utf-8")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _table(summary: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    rows = []
    for model, entry in summary["models"].items():
        for horizon, scores in entry["horizons"].items():
            cells = "".join(f"<td>{_cell(scores.get(key))}</td>" for key, _ in COLUMNS)
            rows.append(f"<tr><td>{html.escape(model)}</td><td>{horizon}</td>{cells}</tr>")
    return (
        f"<h2>Scores per horizon (sessions)</h2><table><tr><th>model</th><th>days</th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def _confidence_table(summary: dict[str, Any]) -> str:
    rows = []
    for model, entry in summary["models"].items():
        ranking = entry["confidence"]
        if not ranking:
            continue
        top = ranking["top_tenth"]
        quintiles = ", ".join(f"{v:.2f}" for v in ranking["scaled_error_by_quintile"])
        rows.append(
            f"<tr><td>{html.escape(model)}</td><td>{ranking['spearman_vs_scaled_error']:.3f}</td>"
            f"<td>{top['coverage_0.8']:.3f}</td><td>{top['coverage_0.9']:.3f}</td>"
            f"<td>{quintiles}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h2>Confidence</h2><p>Spearman correlation of confidence with the volatility-scaled "
        "error (negative: more confident, smaller error); coverage of the most confident tenth; "
        "mean scaled error per confidence quintile, least to most confident.</p>"
        "<table><tr><th>model</th><th>Spearman</th><th>top tenth, 80 %</th>"
        "<th>top tenth, 90 %</th><th>scaled error by quintile</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _probabilistic(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["ensemble"] > 1]


def _coverage_chart(frame: pd.DataFrame) -> plt.Figure:
    data = _probabilistic(frame)
    models = list(dict.fromkeys(data["model"]))
    horizons = sorted(set(data["horizon"]))
    figure, axes = plt.subplots(1, len(BANDS), figsize=(4 * len(BANDS), 3.2), sharey=True)
    width = 0.8 / max(len(models), 1)
    for axis, band in zip(np.atleast_1d(axes), BANDS, strict=True):
        for i, model in enumerate(models):
            rows = data[data["model"] == model].groupby("horizon")[f"covered_{band:g}"].mean()
            positions = np.arange(len(horizons)) + i * width
            axis.bar(positions, rows.reindex(horizons).to_numpy(), width, label=model)
        axis.axhline(band, color="black", linestyle="--", linewidth=1)
        axis.set_xticks(np.arange(len(horizons)) + width * (len(models) - 1) / 2, horizons)
        axis.set_title(f"{band:.0%} band")
        axis.set_xlabel("horizon (sessions)")
        axis.set_ylim(0, 1)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return figure


def _pit_chart(frame: pd.DataFrame) -> plt.Figure:
    data = _probabilistic(frame)
    models = list(dict.fromkeys(data["model"]))
    figure, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 2.8), sharey=True)
    for axis, model in zip(np.atleast_1d(axes), models, strict=True):
        values = data.loc[data["model"] == model, "pit"]
        axis.hist(values, bins=10, range=(0, 1), weights=np.full(len(values), 10 / len(values)))
        axis.axhline(1.0, color="black", linestyle="--", linewidth=1)
        axis.set_title(model, fontsize=9)
    return figure


def _reliability_chart(frame: pd.DataFrame) -> plt.Figure:
    data = _probabilistic(frame)
    figure, axis = plt.subplots(figsize=(4, 3.6))
    for model, rows in data.groupby("model", sort=False):
        tenth = np.minimum((rows["p_up"].to_numpy() * 10).astype(int), 9)  # P(up) bins of 0.1
        table = rows.groupby(tenth).agg(p=("p_up", "mean"), up=("up", "mean"))
        axis.plot(table["p"], table["up"], marker="o", label=str(model))
    axis.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1)
    axis.set_xlabel("forecast P(up)")
    axis.set_ylabel("observed share up")
    axis.legend(fontsize=7)
    return figure


def _confidence_chart(frame: pd.DataFrame) -> plt.Figure:
    data = frame.dropna(subset=["confidence"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for model, rows in data.groupby("model", sort=False):
        decile = pd.qcut(rows["confidence"].rank(method="first"), 10, labels=False) + 1
        grouped = rows.groupby(decile)
        left.plot(grouped["scaled_error"].mean(), marker="o", label=str(model))
        right.plot(grouped["covered_0.8"].mean(), marker="o", label=str(model))
    left.set_title("volatility-scaled error")
    right.set_title("80 % band coverage")
    right.axhline(0.8, color="black", linestyle="--", linewidth=1)
    for axis in (left, right):
        axis.set_xlabel("confidence decile (10 = most confident)")
    left.legend(fontsize=7)
    return figure


def _figure(figure: plt.Figure, caption: str) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    label = html.escape(caption)
    return f"<h2>{label}</h2><img alt='{label}' src='data:image/png;base64,{encoded}'>"
