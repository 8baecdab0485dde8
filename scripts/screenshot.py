"""Screenshot the leaderboard as a reader first sees it, for the README.

    python scripts/screenshot.py                          # published/records -> docs/leaderboard.png
    python scripts/screenshot.py RESULTS... -o shot.png --width 1280 --height 900 [--page index.html]

Builds the site from the records (site/build.py) into a temporary folder, opens the page in
Debian's headless Chromium through Selenium (the setup of tests/test_site_browser.py:
/usr/bin/chromium and chromedriver, or $KCB_CHROMIUM / $KCB_CHROMEDRIVER), and saves a PNG of the
window. ``--full`` captures the whole page height instead of one window.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "site"))
CHROMIUM = os.environ.get("KCB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KCB_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")


def driver(width: int, height: int, profile: Path):
    """A headless Chromium of that window size (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


def shoot(site: Path, out: Path, page: str = "index.html", width: int = 1280, height: int = 900,
          full: bool = False) -> Path:
    with tempfile.TemporaryDirectory() as profile:
        d = driver(width, height, Path(profile))
        try:
            if not (site / page).is_file():
                raise SystemExit(f"{page}: no such page in the built site ({site})")
            d.get((site / page).as_uri())
            if full:
                h = d.execute_script("return document.documentElement.scrollHeight")
                d.set_window_size(width, min(int(h) + 120, 16000))
            out.parent.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(str(out))
        finally:
            d.quit()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", type=Path, default=[REPO / "published" / "records"])
    ap.add_argument("-o", "--out", type=Path, default=REPO / "docs" / "leaderboard.png")
    ap.add_argument("--page", default="index.html", help="page of the site (default index.html)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--full", action="store_true", help="the whole page, not one window")
    args = ap.parse_args(argv)
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            print(f"error: {path} not found: apt-get install -y {pkg}", file=sys.stderr)
            return 2
    import build
    with tempfile.TemporaryDirectory() as tmp:
        code = build.main([*map(str, args.results), "-o", str(Path(tmp) / "site")])
        if code not in (0, build.EXIT_REFUSED):
            return code
        shoot(Path(tmp) / "site", args.out, args.page, args.width, args.height, args.full)
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
