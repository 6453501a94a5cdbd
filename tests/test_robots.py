"""robots.txt for article pages: asked once per host per run, with newsmon's own client and User-Agent; a page it
disallows is stored from the feed's summary with the reason in fetch_log; a missing or unreadable robots.txt
allows all; `[http] robots = false` turns it off; feeds are fetched whatever it says. Real servers on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from extractors.http import user_agent
from extractors.pages import fetch_articles
from extractors.robots import PREFETCH_WAIT_S, RobotsCache
from newsmon import cli
from newsmon.config import HttpSettings
from newsmon.records import Entry
from tests import hostile_servers as hs
from tests.conftest import RouteServer, lake_query, write_config

NOW = datetime.now(UTC).replace(microsecond=0)
HTTP = HttpSettings(allow_private_networks=True, timeout_s=2, per_host_delay_s=0, jitter_s=0,
                    contact_url="mailto:desk@newsroom.az")


def page(title: str) -> bytes:
    text = escape(hs.PLAIN_TEXT * 3)
    return (f"<!doctype html><html lang='en'><head><title>{escape(title)}</title></head><body><article>"
            f"<h1>{escape(title)}</h1><p>{text}</p><p>{text}</p></article></body></html>").encode()


def site(routes: RouteServer, robots: bytes | None, paths: list[str], *, status: int = 200) -> list[Entry]:
    """Pages at `paths` on the route server (and its robots.txt, unless None); one feed entry per page."""
    if robots is not None:
        routes.add("/robots.txt", status=status, body=robots, content_type="text/plain")
    for p in paths:
        routes.add(p, body=page(f"Story at {p}"), content_type="text/html; charset=utf-8")
    return [Entry(feed_url=f"{routes.base_url}/feed.xml", key=p, link=routes.base_url + p, title=f"Story at {p}",
                  summary=f"The feed's own summary of {p}.") for p in paths]


def fetch(entries: list[Entry], http: HttpSettings = HTTP, robots: RobotsCache | None = None) -> dict[str, tuple[
        str, str | None]]:
    """page path -> (extraction status, note) after fetching `entries`."""
    got = fetch_articles(entries, {}, http, now=NOW, workers=1, robots=robots)
    return {a.entry_key: (a.extraction_status, a.extraction_note) for a in got.articles}


def test_a_disallowed_page_is_not_requested_and_keeps_the_feed_summary(routes: RouteServer) -> None:
    entries = site(routes, b"User-agent: *\nDisallow: /private/\n", ["/private/a.html", "/news/b.html",
                                                                      "/private/c.html?id=7"])
    got = fetch_articles(entries, {}, HTTP, now=NOW, workers=1)
    by_key = {a.entry_key: a for a in got.articles}
    assert by_key["/news/b.html"].extraction_status == "ok"
    for p in ("/private/a.html", "/private/c.html?id=7"):
        art = by_key[p]
        assert art.extraction_status == "summary" and f"The feed's own summary of {p}." in art.text
        assert art.extraction_note == f"{routes.base_url}{p}: robots.txt disallows {p} for newsmon"
    assert sorted(got.errors) == sorted((e.feed_url, e.link, f"{e.link}: robots.txt disallows {e.key} for newsmon")
                                        for e in entries if e.key.startswith("/private/"))
    assert not [h for h in routes.hits if h.startswith("/private/")]  # never requested
    assert routes.hits.count("/robots.txt") == 1  # once for the host, though three pages asked


def test_the_newsmon_group_wins_over_the_catch_all(routes: RouteServer) -> None:
    entries = site(routes, b"User-agent: otherbot\nDisallow: /\n\nUser-agent: newsmon\nDisallow: /wire/\n\n"
                           b"User-agent: *\nDisallow: /news/\n", ["/wire/1.html", "/news/2.html"])
    out = fetch(entries)
    assert out["/wire/1.html"][0] == "summary" and "robots.txt disallows /wire/1.html" in str(out["/wire/1.html"][1])
    assert out["/news/2.html"] == ("ok", None)  # the catch-all group is not newsmon's once newsmon has its own


def test_robots_txt_is_asked_with_newsmons_user_agent_through_its_redirects(routes: RouteServer) -> None:
    agents: list[str] = []

    def moved(h: BaseHTTPRequestHandler) -> None:
        agents.append(h.headers["User-Agent"])
        h.send_response(301)
        h.send_header("Location", "/policies/robots.txt")
        h.send_header("Content-Length", "0")
        h.end_headers()

    entries = site(routes, None, ["/a.html", "/b.html"])
    routes.routes["/robots.txt"] = moved
    routes.add("/policies/robots.txt", body=b"User-agent: newsmon\nDisallow: /b.html\n", content_type="text/plain")
    out = fetch(entries)
    assert out["/a.html"] == ("ok", None) and out["/b.html"][0] == "summary"
    assert agents == [user_agent(HTTP.contact_url)] and "newsmon/" in agents[0] and "desk@newsroom.az" in agents[0]


def test_robots_txt_is_fetched_once_per_host_per_run_across_batches(routes: RouteServer) -> None:
    entries = site(routes, b"User-agent: *\nDisallow: /x/\n", ["/a.html", "/x/b.html", "/c.html", "/x/d.html"])
    cache = RobotsCache()  # the run's, shared by its batches (flows.poll.extract_new)
    first, second = fetch(entries[:2], robots=cache), fetch(entries[2:], robots=cache)
    assert first["/x/b.html"][0] == second["/x/d.html"][0] == "summary"
    assert routes.hits.count("/robots.txt") == 1
    fetch(entries[:1])  # a new run asks again
    assert routes.hits.count("/robots.txt") == 2


@pytest.mark.parametrize("status", [404, 410, 401, 403, 500, 503])
def test_a_missing_or_unreadable_robots_txt_allows_every_page(routes: RouteServer, status: int) -> None:
    entries = site(routes, b"User-agent: *\nDisallow: /\n", ["/a.html", "/b.html"], status=status)
    cache = RobotsCache()
    assert fetch(entries, robots=cache) == {"/a.html": ("ok", None), "/b.html": ("ok", None)}
    assert routes.hits.count("/robots.txt") == 1
    if status >= 500:  # unreadable, not missing: noted
        assert list(cache.notes) == [routes.base_url] and f"HTTP {status}" in cache.notes[routes.base_url]
    else:
        assert cache.notes == {}


def test_a_robots_txt_that_does_not_answer_in_time_allows_every_page(routes: RouteServer) -> None:
    def hangs(h: BaseHTTPRequestHandler) -> None:
        time.sleep(HTTP.timeout_s + 2)  # the check gives up after timeout_s

    entries = site(routes, None, ["/a.html"])
    routes.routes["/robots.txt"] = hangs
    cache = RobotsCache()
    assert fetch(entries, robots=cache) == {"/a.html": ("ok", None)}
    assert "no answer within 2 s; every page allowed this run" in cache.notes[routes.base_url]


def test_robots_false_in_the_config_never_asks(routes: RouteServer) -> None:
    from dataclasses import replace

    entries = site(routes, b"User-agent: *\nDisallow: /\n", ["/a.html"])
    assert fetch(entries, replace(HTTP, robots=False)) == {"/a.html": ("ok", None)}
    assert "/robots.txt" not in routes.hits


def test_the_robots_switch_is_read_from_the_config_and_checked(tmp_path: Path) -> None:
    from newsmon.config import load_settings

    on = write_config(tmp_path, [("f", "http://127.0.0.1:9/f.xml")])
    assert load_settings(on).http.robots is True  # the default
    off = tmp_path / "off.toml"
    off.write_text(on.read_text().replace("[http]\n", "[http]\nrobots = false\n"))
    assert load_settings(off).http.robots is False
    bad = tmp_path / "bad.toml"
    bad.write_text(on.read_text().replace("[http]\n", '[http]\nrobots = "yes"\n'))
    assert cli.main(["feeds", "export", "--config", str(bad)]) == cli.EXIT_CONFIG


def _rss(base: str, paths: list[str]) -> bytes:
    when = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    items = "".join(f"<item><title>Story at {p}</title><link>{base}{p}</link><guid>{p}</guid><pubDate>{when}"
                    f"</pubDate><description>The feed's own summary of {p}.</description></item>" for p in paths)
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{items}</channel></rss>".encode()


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_stores_disallowed_pages_from_the_feed_and_logs_why_while_the_feed_is_still_read(
        routes: RouteServer, tmp_path: Path) -> None:
    from flows.poll import poll_feeds

    paths = ["/news/open.html", "/members/closed.html", "/members/also-closed.html"]
    site(routes, b"User-agent: newsmon\nDisallow: /members/\nDisallow: /feed.xml\n", paths)
    feed = routes.add("/feed.xml", body=_rss(routes.base_url, paths))  # disallowed too, and read all the same
    cfg = write_config(tmp_path, [("wire", feed)])
    summary = poll_feeds(config=str(cfg))

    assert summary["failed_feeds"] == [] and summary["new_articles"] == 3 and summary["pages_fell_back"] == 2
    stored = dict(lake_query(cfg, "SELECT url, extraction_status FROM articles"))
    assert stored == {routes.base_url + "/news/open.html": "ok", routes.base_url + "/members/closed.html": "summary",
                      routes.base_url + "/members/also-closed.html": "summary"}
    log = lake_query(cfg, "SELECT kind, url, status, error FROM fetch_log ORDER BY kind, url")
    assert log == [("feed", feed, 200, None)] + sorted(
        ("page", routes.base_url + p, None, f"{routes.base_url}{p}: robots.txt disallows {p} for newsmon")
        for p in paths[1:])
    assert routes.hits.count("/feed.xml") == 1 and routes.hits.count("/robots.txt") == 1
    assert "/members/closed.html" not in routes.hits and "/news/open.html" in routes.hits


def two_hosts(routes: RouteServer, pages: int) -> list[Entry]:
    """`pages` pages on each of two hosts of the route server, 127.0.0.1 (/a/...) then localhost (/b/...): one
    server, two hosts to newsmon; one feed entry per page, feed by feed."""
    entries = []
    for host, base in (("a", routes.base_url), ("b", routes.base_url.replace("127.0.0.1", "localhost"))):
        for i in range(pages):
            path = f"/{host}/{i}.html"
            routes.add(path, body=page(f"Story {host}{i}"), content_type="text/html; charset=utf-8")
            entries.append(Entry(feed_url=f"{base}/feed.xml", key=path, link=base + path, title=f"Story {host}{i}",
                                 summary="The feed's summary."))
    return entries


def test_pages_start_in_host_turns_whatever_order_robots_txt_arrives_in(routes: RouteServer) -> None:
    """Pages of two hosts (127.0.0.1 and localhost: one server, two hosts to newsmon) are requested in turns, one
    host then the other, not host by host as their robots.txt files arrive: a page waiting for its host's
    robots.txt used to resume with all its host's pages, and they took the run's page slots while their host's
    limit let them through one at a time."""
    def slow_robots(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.3)
        h.send_error(404)

    routes.routes["/robots.txt"] = slow_robots
    entries = two_hosts(routes, 6)
    http = HttpSettings(allow_private_networks=True, timeout_s=5, per_host_delay_s=0, jitter_s=0, max_per_host=1,
                        max_concurrency=1, contact_url="mailto:desk@newsroom.az")
    got = fetch_articles(entries, {}, http, now=NOW, workers=1)
    assert sorted(a.extraction_status for a in got.articles) == ["ok"] * 12
    pages = [hit for hit in routes.hits if hit.endswith(".html")]
    assert {p[1] for p in pages[:4]} == {"a", "b"}, pages  # both hosts among the first requests
    assert routes.hits.count("/robots.txt") == 2  # one per host


def test_a_slow_robots_txt_keeps_only_its_own_hosts_pages_waiting(routes: RouteServer) -> None:
    """The batch waits for the robots.txt files it asked for only briefly (PREFETCH_WAIT_S): one host whose
    robots.txt takes longer holds back its own pages, and the other host's pages are fetched meanwhile."""
    def robots(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("Host", "").startswith("localhost"):
            time.sleep(PREFETCH_WAIT_S + 2)
            routes.hits.append("(slow robots.txt answered)")
        h.send_error(404)

    routes.routes["/robots.txt"] = robots
    entries = two_hosts(routes, 3)
    http = HttpSettings(allow_private_networks=True, timeout_s=10, per_host_delay_s=0, jitter_s=0,
                        contact_url="mailto:desk@newsroom.az")
    got = fetch_articles(entries, {}, http, now=NOW, workers=1)
    assert sorted(a.extraction_status for a in got.articles) == ["ok"] * 6
    answered = routes.hits.index("(slow robots.txt answered)")
    assert {f"/a/{i}.html" for i in range(3)} <= set(routes.hits[:answered])  # the quick host did not wait
    assert not {f"/b/{i}.html" for i in range(3)} & set(routes.hits[:answered])  # nor did robots.txt get skipped
