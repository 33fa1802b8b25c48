"""Headless Chromium through selenium, for the viewer's browser tests and its load benchmark.

Uses Debian's ``chromium`` and ``chromium-driver`` packages (``apt-get install -y chromium
chromium-driver``) at the paths given, never a downloaded browser or driver: selenium is handed
both paths, so Selenium Manager has nothing to fetch. Each browser gets a fresh profile folder and
the switches that stop Chromium's own background traffic (updates, sync, QUIC), so the only
requests it makes are the page's. The DevTools performance log is on: ``requests(driver)`` lists
every URL the page asked for, including any a Content-Security-Policy blocked.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INSTALL_HINT = "apt-get update && apt-get install -y chromium chromium-driver"
CHROMIUM_SWITCHES = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) executables: ``KRONOS_CHROMIUM`` / ``KRONOS_CHROMEDRIVER`` or PATH's
    ``chromium`` and ``chromedriver``; None when either is missing."""
    browser = os.environ.get("KRONOS_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("KRONOS_CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(profile_dir: Path, width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A selenium ``WebDriver`` for headless Chromium with a ``width`` × ``height`` window and a
    fresh profile in ``profile_dir``; quit on exit. Raises ``RuntimeError`` with the install
    command when Chromium or its driver is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError(f"Chromium and chromedriver are needed: {INSTALL_HINT}")
    browser, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for switch in CHROMIUM_SWITCHES:
        options.add_argument(switch)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        set_viewport(driver, width, height)
        yield driver
    finally:
        driver.quit()


def requests(driver: Any) -> list[str]:
    """Every URL the browser asked for since the last call (DevTools ``requestWillBeSent``)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def set_viewport(driver: Any, width: int, height: int) -> None:
    """Make the page's viewport exactly ``width`` × ``height`` CSS pixels (a phone below 600)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
