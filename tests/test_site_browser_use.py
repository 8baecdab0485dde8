"""The leaderboard in a real browser, as a reader moves through it: sorting follows the sweep,
the address restores sort, search and filters (a shared link), and a 400 px phone never scrolls
sideways while the table's header stays in view. Fixtures: tests/site_browser.py.
"""
from __future__ import annotations

from tests.site_browser import (PHONE, _body_rows, _col, _open, _shot,  # noqa: F401
                                browser, phone, site)


def test_the_address_restores_sort_search_and_filters(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    out, _ = site
    _open(browser, out / "index.html")
    Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter='method']")).select_by_value("global-magnitude")
    col, heads = _col(browser, "knowledge")
    heads[col].find_element(By.TAG_NAME, "button").click()
    heads[col].find_element(By.TAG_NAME, "button").click()          # ascending: worst first
    search = browser.find_element(By.ID, "search")
    search.send_keys("toy")
    url = browser.current_url
    assert "sort=knowledge" in url and "dir=asc" in url and "method=global-magnitude" in url and "q=toy" in url
    expect = [r.text for r in _body_rows(browser) if r.is_displayed()]
    browser.get("about:blank")
    browser.get(url)                                                  # a shared link, reopened
    assert Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter='method']")
                  ).first_selected_option.get_attribute("value") == "global-magnitude"
    assert browser.find_element(By.ID, "search").get_attribute("value") == "toy"
    col, heads = _col(browser, "knowledge")
    assert heads[col].get_attribute("aria-sort") == "ascending"
    shown = [r for r in _body_rows(browser) if r.is_displayed()]
    assert [r.text for r in shown] == expect and 0 < len(shown) < len(_body_rows(browser))
    assert {r.get_attribute("data-method") for r in shown} == {"global-magnitude"}
    _shot(browser, "overview-restored-from-address")

def test_a_phone_never_scrolls_sideways_and_keeps_the_table_header(phone, site):
    from selenium.webdriver.common.by import By
    out, _ = site
    for page in ["index.html", "about.html", "models/toy.html", "models/smollm2-135m.html",
                 "cases/toy__sparse-90__trex.html", "cases/toy__gptq-int4__trex.html"]:
        _open(phone, out / page)
        width = phone.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] == PHONE, (page, width)
        for img in phone.find_elements(By.CSS_SELECTOR, "figure img"):
            assert phone.execute_script("return arguments[0].getBoundingClientRect().right", img) <= width[1]
    _open(phone, out / "index.html")
    _shot(phone, "phone-top")
    wrap = phone.find_element(By.CSS_SELECTOR, ".board-wrap")
    phone.execute_script("arguments[0].scrollIntoView(); arguments[0].scrollTop = 400", wrap)
    head = phone.find_element(By.CSS_SELECTOR, "#board thead th")
    top = phone.execute_script("return [arguments[0].getBoundingClientRect().top, "
                               "arguments[1].getBoundingClientRect().top]", head, wrap)
    assert abs(top[0] - top[1]) < 2                   # the header stuck to the top of its box
    _shot(phone, "phone-table-scrolled")
    phone.execute_script("document.getElementById('plots').scrollIntoView()")
    _shot(phone, "phone-plots")

def test_sorting_by_retention_reorders_rows_and_the_preset_sort_follows_the_sweep(browser, site):
    from selenium.webdriver.common.by import By
    out, _ = site
    _open(browser, out / "index.html")
    col, heads = _col(browser, "knowledge")
    before = [r.get_attribute("data-model") + r.find_elements(By.TAG_NAME, "td")[0].text for r in _body_rows(browser)]
    heads[col].find_element(By.TAG_NAME, "button").click()
    rows = _body_rows(browser)
    keys = [float(r.find_elements(By.CSS_SELECTOR, "th, td")[col].get_attribute("data-sort")) for r in rows]
    after = [r.get_attribute("data-model") + r.find_elements(By.TAG_NAME, "td")[0].text for r in rows]
    assert keys == sorted(keys, reverse=True)         # best retention first
    assert after != before and sorted(after) == sorted(before)
    assert heads[col].get_attribute("aria-sort") == "descending"
    col, heads = _col(browser, "preset")
    heads[col].find_element(By.TAG_NAME, "button").click()
    presets = [r.find_elements(By.TAG_NAME, "td")[0].text.split()[0] for r in _body_rows(browser)]
    assert presets.index("none") < presets.index("sparse-50") < presets.index("sparse-90") < presets.index("int8-dyn")
    ranks = [int(r.find_elements(By.TAG_NAME, "td")[0].get_attribute("data-sort")) for r in _body_rows(browser)]
    assert ranks == sorted(ranks)
