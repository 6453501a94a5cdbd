"""The report as an analyst sees it: built from a real poll run, opened in headless Chromium.

Needs Debian's `chromium` (/usr/bin/chromium; `.ci/run` installs it) driven by the playwright package
(no browser download). Without Chromium these tests skip, except under CI where they fail.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from newsmon.config import Settings, WarehouseSettings, load_settings
from newsmon.demo.server import SiteServer, demo_site_root
from newsmon.report import build_report
from newsmon.tagging import default_watchlist
from tests.conftest import RouteServer, write_config
from tests.report_week import fill_week

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT_ENV = "NEWSMON_REPORT_SCREENSHOT"  # set to a path (docs/report.png) to keep the screenshot

HOSTILE_TITLE = "Azerbaijan and Russia agree gas deal <script>window.__pwned = 1</script>"
HOSTILE_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Wire</title><link>{base}/</link><description>wire</description>
<item><title>Azerbaijan and Russia agree gas deal
&amp;lt;script&amp;gt;window.__pwned = 1&amp;lt;/script&amp;gt;</title>
<link>{base}/wire/gas-deal.html</link><guid>wire-1</guid><pubDate>{date}</pubDate>
<description>Baku and Moscow signed a gas agreement.</description></item></channel></rss>"""
HOSTILE_PAGE = """<!doctype html><html lang="en"><head><title>Gas deal</title></head><body><article>
<h1>Azerbaijan and Russia agree gas deal</h1>
<p>Azerbaijan and Russia signed an intergovernmental agreement on gas supplies in Baku on Monday. SOCAR and
Gazprom will expand gas swaps under the new agreement, the energy ministries of Azerbaijan and Russia said.</p>
<p>The two sides also agreed to meet again at the intergovernmental commission on economic cooperation this
autumn, officials said after the talks, which lasted most of the day and covered transit and storage.</p>
</article></body></html>"""
POSITIVE_TITLE = "Azerbaijan invites Russian companies to invest in its green energy projects"


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium, started after any flow run: Playwright's sync API holds an event loop on this
    thread while it is open, where the pipeline's own asyncio.run() would refuse to start."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser: Any, path: Path) -> Any:
    """A fresh tab on the file; records page errors and every request the page makes."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.errors, page.requested = [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requested.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page


def serve_hostile_wire(routes: RouteServer) -> str:
    date = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    routes.add("/wire/gas-deal.html", body=HOSTILE_PAGE.encode(), content_type="text/html; charset=utf-8")
    return routes.add("/wire.xml", body=HOSTILE_FEED.format(base=routes.base_url, date=date).encode(),
                      content_type="application/rss+xml")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_report_of_a_real_run_renders_filters_and_shows_a_script_title_as_text(
        tmp_path: Path, routes: RouteServer) -> None:
    from flows.poll import poll_feeds

    with SiteServer(demo_site_root()) as site:
        cfg = write_config(tmp_path, [("Caspian Ledger (en)", site.url("/feeds/en.xml")),
                                      ("Caspian Ledger (ru)", site.url("/feeds/ru.xml")),
                                      ("Broken feed", site.url("/feeds/broken.xml")),
                                      ("Wire", serve_hostile_wire(routes))])
        summary = poll_feeds(config=str(cfg))
    assert summary["new_articles"] >= 13 and len(summary["matches"]) >= 3
    out = build_report(load_settings(cfg), timedelta(days=7), tmp_path / "report.html")
    with chromium() as browser:
        check_real_run_page(open_page(browser, out), out, summary, tmp_path / "report.png")


def check_real_run_page(page: Any, out: Path, summary: dict[str, Any], shot: Path) -> None:
    stories = page.locator("#list > article")
    titles = [t.strip() for t in page.locator("#list > article h3").all_inner_texts()]
    assert stories.count() == len(summary["matches"]) and POSITIVE_TITLE in titles
    # the hostile title is text on the page, and its script never ran
    assert HOSTILE_TITLE in titles
    assert page.evaluate("window.__pwned") is None and page.locator("#list script").count() == 0
    # evidence is highlighted in the titles and the snippets
    assert page.locator("#list h3 mark").count() >= 3 and page.locator("#list q mark").count() >= 3
    # the chart is drawn inline, with bars
    chart = page.locator("svg.chart")
    assert chart.is_visible() and chart.bounding_box()["width"] > 600
    assert "Caspian Ledger (en)" in chart.inner_html()
    # the feed-health table: the broken feed on top, failing
    rows = page.locator("table.feeds tbody tr")
    assert rows.count() == 4
    assert rows.nth(0).locator("td").nth(0).inner_text() == "failing" and "Broken feed" in rows.nth(0).inner_text()
    version = default_watchlist().version  # the shipped rules decided this run
    assert page.locator("table.rules").inner_text().count(version) >= 2
    # filters hide stories without a server
    positive = stories.filter(has_text=POSITIVE_TITLE)
    assert positive.is_visible()
    page.select_option("#f-source", label="Caspian Ledger (ru)")
    assert positive.is_hidden() and stories.filter(has_text="Россия").first.is_visible()
    assert page.locator("#count").inner_text().startswith("1 of ")
    page.select_option("#f-source", value="")
    page.fill("#f-text", "GREEN energy")
    assert positive.is_visible() and stories.filter(has_text=HOSTILE_TITLE).is_hidden()
    page.fill("#f-text", "")
    page.fill("#f-score", "99")
    assert page.locator("#list > article:visible").count() == 0
    page.fill("#f-score", "0")
    page.evaluate("document.activeElement.blur()")
    assert page.errors == [] and page.requested == [out.resolve().as_uri()]  # nothing fetched, no JS error

    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])
    page.close()


@pytest.mark.slow
def test_a_week_of_5000_matching_articles_stays_under_2_mb_and_opens_in_under_a_second(
        tmp_path: Path) -> None:
    now = datetime.now(UTC)
    wh = tmp_path / "week.duckdb"
    fill_week(wh, n=5000, now=now)  # every one of them matches: the worst case for the page
    settings = Settings(source=tmp_path / "week.toml", warehouse=WarehouseSettings(wh))
    t0 = time.monotonic()
    out = build_report(settings, timedelta(days=7), tmp_path / "week.html", now=now)
    build_s = time.monotonic() - t0
    size = out.stat().st_size

    loads = []
    with chromium() as browser:
        for _ in range(3):
            page = open_page(browser, out)
            loads.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
            assert page.locator("#list > article").count() == 2000 and page.errors == []
            page.close()
    load_s = sorted(loads)[1]
    print(f"\n5000-article week: {size / 1e6:.2f} MB, built in {build_s:.1f} s, loads in {load_s * 1000:.0f} ms "
          f"(runs: {', '.join(f'{x * 1000:.0f}' for x in loads)} ms)")
    assert size < 2_000_000
    assert load_s < 1.0
    assert "Showing the newest 2000 of 5000 stories" in out.read_text(encoding="utf-8")
