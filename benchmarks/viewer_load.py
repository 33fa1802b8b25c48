"""Time from navigation to the forecast page's first chart, measured in headless Chromium.

Starts the service (simulated mode, one worker) and loads each deep link N times, each time in a
fresh browser profile (cold cache) and then again in the same browser (warm: plotly.js from the
HTTP cache). The links: the seed's daily forecast (synthetic history), an hourly EUR/USD forecast
on the 24/5 calendar (real bars from the `backtesting` package, written to a temporary data
folder; its chart has range breaks for the weekends), and the backtest view of the seed's ISIN
(30 origins, horizons 1, 5 and 20, 16 samples). The page marks `kronos:forecast-received` and
`kronos:first-chart-drawn` (`kronos:backtest-received` and `kronos:first-backtest-chart-drawn` for
the backtest; `performance.mark`, milliseconds since navigation start); resource timing adds when
the plotly.js bundle arrived. Prints a table of medians and one JSON line;
`--screenshots DIR` saves each link's page at 1280x800.

    python -m benchmarks.viewer_load [--runs 5] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.browser import chromium
from benchmarks.live_server import LiveServer
from benchmarks.real_series import SeriesUnavailableError, eurusd_hourly

logger = logging.getLogger(__name__)
DEEP_LINKS = {
    "daily": "/?isin=US67066G1040&horizon_days=5&seed=7",
    "fx-hourly": "/?symbol=EURUSD&calendar=24/5&horizon_days=2&seed=7",
    "backtest": "/?isin=US67066G1040&backtest=1&backtest_origins=30",
}
# The page's marks for a link's answer and its first chart.
MARKS = {
    "forecast": ("kronos:forecast-received", "kronos:first-chart-drawn"),
    "backtest": ("kronos:backtest-received", "kronos:first-backtest-chart-drawn"),
}
TIMINGS_JS = """
const [received, drawn] = arguments[0];
const mark = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
const done = (part) => performance.getEntriesByType('resource')
  .find((e) => e.name.includes(part))?.responseEnd ?? null;
return {
  dom_content_loaded: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
  plotly_received: done('plotly.min.js'),
  answer_received: mark(received),
  first_chart_drawn: mark(drawn),
};
"""


def load_once(driver: Any, url: str) -> dict[str, float]:
    """Navigate to `url`, wait for its first chart, return the page's timings in ms."""
    from selenium.webdriver.support.ui import WebDriverWait

    marks = MARKS["backtest" if "backtest=1" in url else "forecast"]
    driver.get(url)
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "return performance.getEntriesByName(arguments[0]).length", marks[1]
        )
    )
    timings: dict[str, float] = driver.execute_script(TIMINGS_JS, marks)
    return timings


def data_folder(folder: Path) -> dict[str, str]:
    """The deep links this machine can serve: EUR/USD needs the `backtesting` package's file."""
    folder.mkdir()
    try:
        eurusd_hourly().to_csv(folder / "EURUSD.csv")
    except SeriesUnavailableError as error:
        logger.warning("skipping fx-hourly: %s", error)
        return {name: link for name, link in DEEP_LINKS.items() if name != "fx-hourly"}
    return dict(DEEP_LINKS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screenshots", type=Path, help="save each link's page here (PNG)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        links = data_folder(folder / "data")
        env = {"KRONOS_MODE": "simulated", "KRONOS_DATA_DIR": str(folder / "data")}
        env["KRONOS_ALLOW_SYNTHETIC_HISTORY"] = "1"  # the seed's ISIN is not in the folder
        runs: dict[str, list[dict[str, float]]] = {}
        with LiveServer(env, folder / "gunicorn.log", workers=1) as server:
            for run in range(args.runs):
                for name, link in links.items():
                    url = f"http://127.0.0.1:{server.port}{link}"
                    with chromium(folder / f"profile-{name}-{run}") as driver:
                        runs.setdefault(f"{name} cold", []).append(load_once(driver, url))
                        runs.setdefault(f"{name} warm", []).append(load_once(driver, url))
                        if args.screenshots and run == 0:
                            args.screenshots.mkdir(parents=True, exist_ok=True)
                            driver.save_screenshot(str(args.screenshots / f"viewer-{name}.png"))
    medians = {
        case: {key: round(statistics.median(r[key] for r in results), 1) for key in results[0]}
        for case, results in runs.items()
    }
    columns = next(iter(medians.values()))
    print(f"forecast page, {args.runs} runs, median ms since navigation start")
    print(f"{'link, cache':<16}" + "".join(f"{key:>20}" for key in columns))
    for case, row in medians.items():
        print(f"{case:<16}" + "".join(f"{value:>20}" for value in row.values()))
    print(json.dumps({"benchmark": "viewer_load", "runs": args.runs, "median_ms": medians}))


if __name__ == "__main__":
    main()
