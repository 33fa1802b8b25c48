"""A PNG of a forecast: the recent close history, the median close path and a quantile band.

Bars are drawn at equal spacing (x = bar number, labelled with timestamps), so intraday bars are
not squeezed between nights and weekends. Labels show dates for daily bars, dates and times of day
for intraday bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kronos_integration.forecast import CANDLE_COLUMNS, Forecast, sample_quantiles
from kronos_integration.grid import infer_bar_interval

CLOSE = CANDLE_COLUMNS.index("close")
MIN_HISTORY_SHOWN = 60
TICK_COUNT = 8


def plot_forecast(history: pd.DataFrame, forecast: Forecast, path: Path, *, title: str) -> None:
    """Write `path` (PNG): the last bars of `history.close`, the median close path, and the band
    between the lowest and highest of `forecast.quantile_levels` (over sample paths, per bar)."""
    pred_len = len(forecast.timestamps)
    shown = history["close"].iloc[-max(MIN_HISTORY_SHOWN, 3 * pred_len) :]
    closes = forecast.paths[:, :, CLOSE]  # (S, L)
    low_level, high_level = min(forecast.quantile_levels), max(forecast.quantile_levels)
    low, median, high = sample_quantiles(closes, [low_level, 0.5, high_level])  # each (L,)
    history_x = np.arange(-len(shown), 0)
    future_x = np.arange(pred_len)

    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.subplots()
    axes.plot(history_x, shown.to_numpy(), color="black", linewidth=1.0, label="history close")
    axes.plot(future_x, median, color="tab:blue", linewidth=1.5, label="median forecast")
    axes.fill_between(
        future_x,
        low,
        high,
        color="tab:blue",
        alpha=0.25,
        label=f"{low_level:g}–{high_level:g} quantiles of {forecast.sample_count} paths",
    )
    axes.axvline(-0.5, color="grey", linestyle=":", linewidth=1.0)
    stamps = pd.DatetimeIndex(shown.index).append(pd.DatetimeIndex(forecast.timestamps))
    positions = np.linspace(0, len(stamps) - 1, num=min(TICK_COUNT, len(stamps))).astype(int)
    axes.set_xticks(positions - len(shown))
    daily = infer_bar_interval(pd.DatetimeIndex(stamps)) >= pd.Timedelta(days=1)
    label = "%Y-%m-%d" if daily else "%Y-%m-%d\n%H:%M"
    axes.set_xticklabels([stamps[p].strftime(label) for p in positions], fontsize=8)
    axes.set_title(title)
    axes.set_ylabel("close")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    figure.savefig(path, format="png", dpi=110)
