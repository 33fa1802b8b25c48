"""Time from navigation to the forecast page's first chart, measured in headless Chromium.

Starts the service (simulated mode, one worker) and loads the seed's deep link N times, each in a
fresh browser profile (cold cache) and then again in the same browser (warm: plotly.js from the
HTTP cache). The page marks ``kronos:forecast-received`` and ``kronos:first-chart-drawn``
(``performance.mark``, milliseconds since navigation start); resource timing adds when the
plotly.js bundle and the forecast arrived. Prints a table of medians and one JSON line.

    python -m benchmarks.viewer_load [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.browser import chromium
from benchmarks.live_server import LiveServer

DEEP_LINK = "/?isin=US67066G1040&horizon_days=5&seed=7"
TIMINGS_JS = """
const mark = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
const done = (part) => performance.getEntriesByType('resource')
  .find((e) => e.name.includes(part))?.responseEnd ?? null;
return {
  dom_content_loaded: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
  plotly_received: done('plotly.min.js'),
  forecast_received: mark('kronos:forecast-received'),
  first_chart_drawn: mark('kronos:first-chart-drawn'),
};
"""


def load_once(driver: Any, url: str) -> dict[str, float]:
    """Navigate to `url`, wait for the first chart, return the page's timings in ms."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "return performance.getEntriesByName('kronos:first-chart-drawn').length"
        )
    )
    timings: dict[str, float] = driver.execute_script(TIMINGS_JS)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with LiveServer({"KRONOS_MODE": "simulated"}, folder / "gunicorn.log", workers=1) as server:
            url = f"http://127.0.0.1:{server.port}{DEEP_LINK}"
            for run in range(args.runs):
                with chromium(folder / f"profile-{run}") as driver:
                    runs["cold"].append(load_once(driver, url))
                    runs["warm"].append(load_once(driver, url))
    medians = {
        cache: {key: round(statistics.median(r[key] for r in results), 1) for key in results[0]}
        for cache, results in runs.items()
    }
    print(f"forecast page, {args.runs} runs, median ms since navigation start")
    print(f"{'cache':<6}" + "".join(f"{key:>20}" for key in medians["cold"]))
    for cache, row in medians.items():
        print(f"{cache:<6}" + "".join(f"{value:>20}" for value in row.values()))
    print(json.dumps({"benchmark": "viewer_load", "runs": args.runs, "median_ms": medians}))


if __name__ == "__main__":
    main()
