"""Fixtures and helpers of the browser tests (tests/test_site_browser*.py): the site built from
tests/site_records.py plus published/records (KCB_PUBLISHED_RECORDS names another folder of real
records), the published records alone, and Debian's headless Chromium driven by Selenium
(scripts/screenshot.py's setup). Screenshots go to results/screenshots/ ($KCB_SCREENSHOTS).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.site_records import write_site_records

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "site"))
sys.path.insert(0, str(REPO / "scripts"))
import build as site_build  # noqa: E402

CHROMIUM = os.environ.get("KCB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KCB_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
SHOTS = Path(os.environ.get("KCB_SCREENSHOTS", REPO / "results" / "screenshots"))
PUBLISHED = Path(os.environ.get("KCB_PUBLISHED_RECORDS", REPO / "published" / "records"))
PHONE = 400


def _unavailable():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (bash scripts/setup.sh installs it)"
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"{path} not found: apt-get install -y {pkg}"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Synthetic records of every shape beside the published real ones."""
    tmp = tmp_path_factory.mktemp("browser")
    folders = [write_site_records(tmp / "synthetic"), PUBLISHED]
    out = site_build.build(folders, tmp / "site").parent
    return out, site_build.merge(folders)


@pytest.fixture(scope="module")
def published_site(tmp_path_factory):
    """The published records alone, as the Pages workflow builds them."""
    tmp = tmp_path_factory.mktemp("published")
    assert site_build.main([str(PUBLISHED), "-o", str(tmp / "site"), "--strict"]) == 0
    return tmp / "site", site_build.merge([PUBLISHED])


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    why = _unavailable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {why}")
        pytest.skip(why)
    import screenshot
    driver = screenshot.driver(1500, 1100, tmp_path_factory.mktemp("profile"))
    yield driver
    driver.quit()


@pytest.fixture
def phone(browser):
    """A 400 px wide phone viewport (a desktop window cannot be narrower than 500 px)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": PHONE, "height": 860, "deviceScaleFactor": 1, "mobile": True})
    yield browser
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _open(driver, path: Path, fragment: str = ""):
    driver.get(path.as_uri() + fragment)
    return driver


def _console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _shot(driver, name, full=False):
    SHOTS.mkdir(parents=True, exist_ok=True)
    if full:
        w = driver.execute_script("return window.outerWidth")
        h = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(w, min(int(h) + 140, 12000))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def _body_rows(driver):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, "#board tbody tr")


def _col(driver, key):
    from selenium.webdriver.common.by import By
    heads = driver.find_elements(By.CSS_SELECTOR, "#board thead th")
    return next(i for i, th in enumerate(heads) if th.get_attribute("data-key") == key), heads
