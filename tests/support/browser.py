"""Headless Chromium from the distribution's packages, driven by Selenium with the distribution's
chromedriver: never a downloaded browser, a fresh profile each time, nothing that reaches the network.

Screenshots go to the test's directory, and to ``docs/console/`` (the README shows them) when
GRCTL_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
IMPLICIT_WAIT = 15.0  # s; how long finding an element waits for it to appear
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1000",
         "--force-device-scale-factor=1", "--lang=en-US")


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: apt-get install -y chromium chromium-driver "
                               "(.ci/run does)")
    profile = tempfile.mkdtemp(prefix="grctl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(IMPLICIT_WAIT)  # a page a click opens may still be loading
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def absent(driver: webdriver.Chrome, css: str) -> bool:
    """No element matches ``css`` on the page as it is (without waiting for one to appear)."""
    driver.implicitly_wait(0)
    try:
        return not driver.find_elements("css selector", css)
    finally:
        driver.implicitly_wait(IMPLICIT_WAIT)


def screenshot(driver: webdriver.Chrome, directory: Path, name: str, height: int | None = None) -> Path:
    """The whole page (up to ``height`` pixels) as ``name``.png."""
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(full, height or full) + 90)  # the window's frame is not page
    path = directory / f"{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("GRCTL_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / path.name)
    driver.set_window_size(1280, 1000)
    return path
