"""The built leaderboard in a real browser: Debian's headless Chromium driven by Selenium.

    python -m pytest tests/test_site_browser.py      # screenshots in results/screenshots/

Opens the site from file:// (as a reader who downloaded it would) and checks that no page logs
a console error, that the overview lists every record, that sorting and filtering work, that
every plot and link resolves, and that markup in a model name stays text. Without Chromium the
tests skip locally with the reason; in CI (CI set) they fail instead.
"""
from __future__ import annotations

import os
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.site_records import XSS, write_site_records

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "site"))
import build as site_build  # noqa: E402

CHROMIUM = os.environ.get("KCB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KCB_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
SHOTS = Path(os.environ.get("KCB_SCREENSHOTS", REPO / "results" / "screenshots"))


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
    tmp = tmp_path_factory.mktemp("browser")
    folders = [write_site_records(tmp / "synthetic")]
    folders.append(REPO / "published" / "records")       # real records beside the synthetic ones
    out = site_build.build(folders, tmp / "site").parent
    return out, site_build.merge(folders)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    why = _unavailable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1500,1100", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def _open(driver, path: Path):
    driver.get(path.as_uri())
    return driver


def _console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def _body_rows(driver):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, "#board tbody tr")


def test_overview_lists_every_record_without_console_errors(browser, site):
    from selenium.webdriver.common.by import By
    out, records = site
    _open(browser, out / "index.html")
    _shot(browser, "overview")
    assert _console_errors(browser) == []
    linked = {urlparse(a.get_attribute("href")).path.rsplit("/", 1)[-1][:-5]
              for a in browser.find_elements(By.CSS_SELECTOR, "#board tbody td a[href*='cases/']")}
    assert linked == set(records)
    pairs = {tuple(c.split("__")[:2]) for c in records}
    assert len(_body_rows(browser)) == len(pairs)
    assert browser.find_element(By.ID, "shown").text == f"{len(pairs)} of {len(pairs)} rows"


def test_sorting_by_retention_reorders_rows(browser, site):
    from selenium.webdriver.common.by import By
    out, _ = site
    _open(browser, out / "index.html")
    heads = browser.find_elements(By.CSS_SELECTOR, "#board thead th")
    col = next(i for i, th in enumerate(heads) if th.text.startswith("knowledge\n"))
    before = [r.get_attribute("data-model") + r.find_elements(By.TAG_NAME, "td")[1].text
              for r in _body_rows(browser)]
    heads[col].find_element(By.TAG_NAME, "button").click()
    rows = _body_rows(browser)
    keys = [float(r.find_elements(By.TAG_NAME, "td")[col].get_attribute("data-sort")) for r in rows]
    after = [r.get_attribute("data-model") + r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]
    assert keys == sorted(keys, reverse=True)         # best retention first
    assert after != before and sorted(after) == sorted(before)
    assert heads[col].get_attribute("aria-sort") == "descending"
    _shot(browser, "overview-sorted-by-knowledge-retention")
    heads[col].find_element(By.TAG_NAME, "button").click()
    keys = [float(r.find_elements(By.TAG_NAME, "td")[col].get_attribute("data-sort"))
            for r in _body_rows(browser)]
    assert keys == sorted(keys)


def test_a_filter_hides_rows(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    out, _ = site
    _open(browser, out / "index.html")
    rows = _body_rows(browser)
    Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter='method']")).select_by_value("dynamic-int8")
    shown = [r for r in rows if r.is_displayed()]
    assert 0 < len(shown) < len(rows)
    assert {r.get_attribute("data-method") for r in shown} == {"dynamic-int8"}
    assert browser.find_element(By.ID, "shown").text == f"{len(shown)} of {len(rows)} rows"
    _shot(browser, "overview-filtered-int8")
    Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter='method']")).select_by_value("")
    assert all(r.is_displayed() for r in rows)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.urls.append(a[key])


def test_every_plot_and_link_resolves(browser, site):
    out, _ = site
    missing = []
    for page in out.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        for url in parser.urls:
            parsed = urlparse(url)
            assert not parsed.scheme and not parsed.netloc, f"{page}: external link {url}"
            target = (page.parent / unquote(parsed.path)).resolve() if parsed.path else page
            if not target.is_file():
                missing.append(f"{page.relative_to(out)} -> {url}")
    assert missing == []
    _open(browser, out / "index.html")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
    assert len(images) == 4 and all(ok for _, ok in images), images
    browser.execute_script("document.getElementById('plots').scrollIntoView()")
    _shot(browser, "plots")


def test_other_pages_render_without_console_errors(browser, site):
    from selenium.webdriver.common.by import By
    out, _ = site
    for name, page in [("about", "about.html"), ("model-smollm2", "models/smollm2-135m.html"),
                       ("model-toy", "models/toy.html"),
                       ("case-smollm2-int8", "cases/smollm2-135m__int8-dyn__trex.html"),
                       ("case-failed", "cases/toy__gptq-int4__trex.html")]:
        _open(browser, out / page)
        assert _console_errors(browser) == [], page
        _shot(browser, name)
    # The facts search narrows the table on a case page.
    _open(browser, out / "cases" / "smollm2-135m__int8-dyn__trex.html")
    rows = browser.find_elements(By.CSS_SELECTOR, "#facts-table tbody tr")
    box = browser.find_element(By.ID, "fact-search")
    box.send_keys("P1376")
    shown = [r for r in rows if r.is_displayed()]
    assert 0 < len(shown) < len(rows) and all("P1376" in r.text for r in shown)
    _shot(browser, "case-search")


def test_markup_in_a_model_name_renders_as_text(browser, site):
    from selenium.webdriver.common.by import By
    out, _ = site
    for page in ("index.html", "models/xss.html", "cases/xss__sparse-50__trex.html"):
        _open(browser, out / page)
        assert browser.execute_script("return window.__xss") is None, page
        assert XSS in browser.find_element(By.TAG_NAME, "body").text, page
        assert _console_errors(browser) == [], page
    _open(browser, out / "index.html")
    assert any("<b>sparse</b>-50" in r.text for r in _body_rows(browser))
    assert not browser.find_elements(By.CSS_SELECTOR, "#board b")
