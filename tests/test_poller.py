"""The poller against real local servers and a real warehouse (state database + DuckLake), with the clock passed in."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from extractors.feeds import read_feed
from extractors.identity import all_aliases, resolve_entries
from extractors.pages import extraction_pool, fetch_articles
from extractors.poller import FeedParsers, poll_feeds
from extractors.schedule import backoff_delay, cache_floor, is_due, next_poll_at, split_due
from newsmon.config import HttpSettings
from newsmon.errors import FeedParseError
from newsmon.records import FeedResult, FeedSpec, FeedState, RunBatch
from tests.conftest import RouteServer, make_warehouse
from warehouse import Warehouse

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HTTP = HttpSettings(allow_private_networks=True, timeout_s=3, per_host_delay_s=0, jitter_s=0)
BASE, CAP = timedelta(minutes=5), timedelta(hours=6)


def rss(base: str, items: Sequence[tuple[str, str]], ttl: int | None = None) -> bytes:
    """An RSS 2.0 document; items are (guid, path) pairs."""
    body = "".join(f"<item><title>Story {g}</title><link>{base}{p}</link><guid>{g}</guid>"
                   f"<pubDate>Fri, 27 Nov 2026 0{i}:00:00 GMT</pubDate><description>About {g}</description></item>"
                   for i, (g, p) in enumerate(items))
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>{base}/</link>{ttl_tag}'
            f"{body}</channel></rss>").encode()


def conditional(routes: RouteServer, path: str, body: bytes, *, last_modified: bool = True) -> None:
    """A feed that answers If-None-Match / If-Modified-Since with 304, like a good server."""
    etag = '"' + hashlib.sha1(body).hexdigest()[:12] + '"'
    lm = "Fri, 27 Nov 2026 10:00:00 GMT"

    def handle(h: BaseHTTPRequestHandler) -> None:
        routes.conditional_log.append((path, h.headers.get("If-None-Match"), h.headers.get("If-Modified-Since")))
        if h.headers.get("If-None-Match") == etag or (last_modified and h.headers.get("If-Modified-Since") == lm):
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("ETag", etag)
        if last_modified:
            h.send_header("Last-Modified", lm)
        h.end_headers()
        h.wfile.write(body)
    routes.routes[path] = handle


PAGE = b"<html><head><title>S</title></head><body><article><p>" + b"Baku and Moscow talk energy. " * 40 + \
    b"</p></article></body></html>"


def run_once(wh: Warehouse, feeds: Sequence[FeedSpec], now: datetime,
             settings: HttpSettings = HTTP) -> tuple[list[FeedResult], list[FeedSpec], int]:
    """What the poll-feeds flow does, minus Prefect and tagging: due feeds -> poll -> identify -> pages -> store."""
    states = wh.runs.feed_states()
    due, waiting = split_due(feeds, states, now)
    results = poll_feeds(due, states, settings, now=now, rand=lambda: 0.0)
    found = resolve_entries(results, wh.runs.known_entries(all_aliases(results)), now=now)
    got = fetch_articles(found.new, {f.url: f.name for f in feeds}, settings, now=now, workers=1)
    wh.runs.store_run(RunBatch(f"run-{now:%H%M%S}", "test", now, tuple(results), tuple(got.articles), (), (),
                          page_errors=tuple(got.errors), aliases=tuple(found.aliases), edits=tuple(found.edits)),
                 finished_at=now)
    return results, waiting, len(got.articles)


@pytest.fixture
def site(routes: RouteServer) -> RouteServer:
    routes.conditional_log = []  # type: ignore[attr-defined]
    for i in range(1, 4):
        routes.add(f"/a/{i}", body=PAGE, content_type="text/html")
    conditional(routes, "/one.xml", rss(routes.base_url, [("g1", "/a/1"), ("g2", "/a/2")]))
    conditional(routes, "/two.xml", rss(routes.base_url, [("g3", "/a/3")]), last_modified=False)
    return routes


def test_second_poll_of_an_unchanged_site_is_conditional_gets_304_and_fetches_no_page(
        site: RouteServer, tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    feeds = [FeedSpec("one", site.base_url + "/one.xml"), FeedSpec("two", site.base_url + "/two.xml")]
    first, _, stored = run_once(wh, feeds, T0)
    assert [r.status for r in first] == [200, 200] and stored == 3
    assert sorted(p for p in site.hits if p.startswith("/a/")) == ["/a/1", "/a/2", "/a/3"]
    site.hits.clear()
    site.conditional_log.clear()  # type: ignore[attr-defined]

    second, waiting, stored = run_once(wh, feeds, T0 + timedelta(minutes=15))
    assert waiting == [] and stored == 0
    assert [(r.status, r.not_modified, r.entries) for r in second] == [(304, True, ()), (304, True, ())]
    assert site.hits == ["/one.xml", "/two.xml"] or sorted(site.hits) == ["/one.xml", "/two.xml"]
    sent = {p: (inm, ims) for p, inm, ims in site.conditional_log}  # type: ignore[attr-defined]
    assert all(inm for inm, _ in sent.values())  # every request carried its validator
    assert sent["/one.xml"][1] == "Fri, 27 Nov 2026 10:00:00 GMT"
    _, health = wh.lake.query("SELECT url, last_status, consecutive_failures FROM feed_health ORDER BY url")
    assert [h[1:] for h in health] == [(304, 0), (304, 0)]
    assert wh.lake.query("SELECT count(*) FROM articles")[1] == [(3,)]


def test_an_unchanged_body_without_validators_is_not_parsed_again(routes: RouteServer, tmp_path: Path) -> None:
    routes.add("/a/1", body=PAGE, content_type="text/html")
    url = routes.add("/plain.xml", body=rss(routes.base_url, [("g1", "/a/1")]))
    wh = make_warehouse(tmp_path / "w.duckdb")
    run_once(wh, [FeedSpec("plain", url)], T0)
    [again], _, stored = run_once(wh, [FeedSpec("plain", url)], T0 + timedelta(minutes=15))
    assert again.status == 200 and again.not_modified and again.entries == () and stored == 0


def failing_site(routes: RouteServer) -> list[FeedSpec]:
    conditional(routes, "/ok.xml", rss(routes.base_url, [("g1", "/a/1")]))
    routes.add("/a/1", body=PAGE, content_type="text/html")
    routes.add("/500.xml", status=500, body=b"oops")
    routes.add("/429.xml", status=429, headers={"Retry-After": "3600"})
    return [FeedSpec("ok", routes.base_url + "/ok.xml"), FeedSpec("err", routes.base_url + "/500.xml"),
            FeedSpec("limited", routes.base_url + "/429.xml")]


def health(wh: Warehouse) -> dict[str, tuple]:
    _, rows = wh.lake.query("SELECT name, last_status, consecutive_failures, next_poll_at, last_success_at, "
                       "last_error FROM feed_health")
    return {r[0]: r[1:] for r in rows}


def test_500_and_429_back_off_as_specified_while_the_others_are_polled(routes: RouteServer,
                                                                       tmp_path: Path) -> None:
    routes.conditional_log = []  # type: ignore[attr-defined]
    feeds = failing_site(routes)
    wh = make_warehouse(tmp_path / "w.duckdb")

    results, _, _ = run_once(wh, feeds, T0)
    assert [r.status for r in results] == [200, 500, 429]
    h = health(wh)
    assert h["ok"][:3] == (200, 0, None)
    assert h["err"][:3] == (500, 1, T0 + BASE)  # first failure: the base delay
    assert h["limited"][:3] == (429, 1, T0 + timedelta(hours=1))  # Retry-After: 3600 beats the 5 min backoff
    assert "HTTP 429" in h["limited"][4] and "Retry-After" in h["limited"][4]

    routes.hits.clear()
    results, waiting, _ = run_once(wh, feeds, T0 + timedelta(minutes=10))
    assert [f.name for f in waiting] == ["limited"]  # not asked again before its Retry-After
    assert sorted(routes.hits) == ["/500.xml", "/ok.xml"]
    assert {r.feed.name: r.status for r in results} == {"ok": 304, "err": 500}
    h = health(wh)
    assert h["err"][:3] == (500, 2, T0 + timedelta(minutes=10) + 2 * BASE)  # doubled
    assert h["ok"][:2] == (304, 0)

    routes.add("/429.xml", body=rss(routes.base_url, [("g9", "/a/1")]))  # the limit is lifted
    run_once(wh, feeds, T0 + timedelta(minutes=61))
    h = health(wh)
    assert h["limited"][:3] == (200, 0, None) and h["limited"][3] == T0 + timedelta(minutes=61)
    assert h["err"][1] == 3


def test_410_is_reported_loudly_and_polled_again_at_the_cap(routes: RouteServer, tmp_path: Path) -> None:
    url = routes.add("/gone.xml", status=410)
    wh = make_warehouse(tmp_path / "w.duckdb")
    [r], _, _ = run_once(wh, [FeedSpec("gone", url)], T0)
    assert r.gone and "410 Gone" in (r.error or "") and "remove it from the config" in (r.error or "")
    assert wh.lake.query("SELECT gone, consecutive_failures FROM feed_health")[1] == [(True, 1)]
    many = FeedState(url, consecutive_failures=30)
    [r] = poll_feeds([FeedSpec("gone", url)], {url: many}, HTTP, now=T0, rand=lambda: 0.0)
    assert r.next_poll_at == T0 + CAP  # never disabled: the cap is the longest wait


def test_permanent_redirect_moves_the_stored_url_only_to_a_feed(routes: RouteServer, tmp_path: Path) -> None:
    routes.add("/a/1", body=PAGE, content_type="text/html")
    new = routes.add("/new.xml", body=rss(routes.base_url, [("g1", "/a/1")]))
    routes.add("/old.xml", status=301, headers={"Location": "/new.xml"})
    routes.add("/html", body=b"<!doctype html><html><body>moved</body></html>", content_type="text/html")
    routes.add("/old2.xml", status=308, headers={"Location": "/html"})
    feeds = [FeedSpec("moved", routes.base_url + "/old.xml"), FeedSpec("lost", routes.base_url + "/old2.xml")]
    wh = make_warehouse(tmp_path / "w.duckdb")
    results, _, _ = run_once(wh, feeds, T0)
    assert results[0].ok and results[0].effective_url == new
    assert not results[1].ok and "HTML page" in (results[1].error or "") and "stored URL is kept" in results[1].error
    states = wh.runs.feed_states()
    assert states[feeds[0].url].effective_url == new and states[feeds[1].url].effective_url is None
    routes.hits.clear()
    run_once(wh, feeds[:1], T0 + timedelta(hours=1))
    assert routes.hits == ["/new.xml"]  # straight to the new address; the config URL stays the feed's identity


def test_entries_per_feed_are_capped_and_ttl_is_a_floor(routes: RouteServer) -> None:
    url = routes.add("/big.xml", body=rss(routes.base_url, [(f"g{i}", f"/a/{i}") for i in range(30)], ttl=60))
    settings = HttpSettings(allow_private_networks=True, per_host_delay_s=0, jitter_s=0, max_entries_per_feed=10)
    [r] = poll_feeds([FeedSpec("big", url)], {}, settings, now=T0)
    found = resolve_entries([r], {}, now=T0, max_per_feed=10)  # the cap applies to new stories, newest first
    assert len(found.new) == 10 and found.left[url] == len(r.entries) - 10 > 0
    assert r.next_poll_at == T0 + timedelta(minutes=60)


# -- the schedule, pure ---------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    delays = [backoff_delay(n, base=BASE, cap=CAP) for n in range(0, 10)]
    assert delays[:5] == [timedelta(0), BASE, 2 * BASE, 4 * BASE, 8 * BASE]
    assert delays[-1] == CAP and max(delays) == CAP
    assert backoff_delay(10_000, base=BASE, cap=CAP) == CAP
    assert BASE < backoff_delay(1, base=BASE, cap=CAP, jitter=0.99) <= BASE * 1.1


def test_next_poll_after_success_failure_and_retry_after() -> None:
    assert next_poll_at(T0, failures=0, base=BASE, cap=CAP) is None  # due on the next scheduled run
    assert next_poll_at(T0, failures=0, base=BASE, cap=CAP, floor=timedelta(minutes=30)) == T0 + timedelta(minutes=30)
    assert next_poll_at(T0, failures=2, base=BASE, cap=CAP) == T0 + 2 * BASE
    assert next_poll_at(T0, failures=1, base=BASE, cap=CAP, retry_after=7200) == T0 + timedelta(hours=2)
    assert next_poll_at(T0, failures=1, base=BASE, cap=CAP, retry_after=10**9) == T0 + timedelta(hours=24)


def test_cache_floor_from_max_age_expires_and_ttl() -> None:
    floor = cache_floor
    assert floor({"cache-control": "public, max-age=600"}, ttl_minutes=None, now=T0, cap=CAP) == timedelta(minutes=10)
    assert floor({"expires": "Fri, 27 Nov 2026 12:20:00 GMT", "date": "Fri, 27 Nov 2026 12:00:00 GMT"},
                 ttl_minutes=None, now=T0, cap=CAP) == timedelta(minutes=20)
    assert floor({"cache-control": "no-cache, max-age=600"}, ttl_minutes=None, now=T0, cap=CAP) is None
    assert floor({"cache-control": "max-age=0"}, ttl_minutes=None, now=T0, cap=CAP) is None
    assert floor({}, ttl_minutes=45, now=T0, cap=CAP) == timedelta(minutes=45)
    assert floor({"cache-control": "max-age=999999"}, ttl_minutes=None, now=T0, cap=CAP) == CAP
    assert floor({"expires": "garbage"}, ttl_minutes=None, now=T0, cap=CAP) is None


def test_only_feeds_whose_time_has_come_are_due() -> None:
    a, b, c = FeedSpec("a", "https://a/"), FeedSpec("b", "https://b/"), FeedSpec("c", "https://c/")
    states = {b.url: FeedState(b.url, next_poll_at=T0 + timedelta(hours=1)),
              c.url: FeedState(c.url, next_poll_at=T0 + timedelta(seconds=10))}
    assert split_due([a, b, c], states, T0) == ([a, c], [b])
    assert is_due(states[b.url], T0 + timedelta(hours=1))


def test_a_feed_with_no_new_entries_for_much_longer_than_its_usual_gap_is_flagged_silent(tmp_path: Path) -> None:
    from newsmon.records import Article

    now = datetime.now(UTC)
    wh = make_warehouse(tmp_path / "w.duckdb")

    def arts(feed: FeedSpec, last_seen: datetime) -> tuple[Article, ...]:
        return tuple(Article(f"{feed.name}{i}", feed.url, feed.name, f"k{feed.name}{i}", f"https://x/{feed.name}{i}",
                             "t", "", "", fetched_at=last_seen, published_at=last_seen - timedelta(hours=2 * i))
                     for i in range(5))
    quiet, busy = FeedSpec("quiet", "https://q.example/rss"), FeedSpec("busy", "https://b.example/rss")
    # both publish every 2 hours; the quiet one's newest story came 3 days ago, the busy one's an hour ago
    results = (FeedResult(quiet, now, status=200), FeedResult(busy, now, status=200))
    wh.runs.store_run(RunBatch("r", "t", now, results, arts(quiet, now - timedelta(days=3)) +
                          arts(busy, now - timedelta(hours=1)), (), ()), finished_at=now)
    _, rows = wh.lake.query("SELECT name, silent, usual_gap_hours, new_24h, new_7d FROM feed_health ORDER BY name")
    assert rows == [("busy", False, 2.0, 5, 5), ("quiet", True, 2.0, 0, 5)]


SPAWN = multiprocessing.get_context("spawn")  # a plain process pool: the tests' jobs need nothing preloaded


def test_feeds_are_parsed_in_the_pool_once_it_is_up_in_the_thread_before_it_and_after_it_breaks() -> None:
    async def scenario() -> tuple[int, int, int]:
        with ThreadPoolExecutor(1) as thread, ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
            parsers = FeedParsers(thread, lambda: pool)
            before = await parsers.parse(os.getpid)  # asks for the pool, which is not up yet
            await parsers.settled()
            in_pool = await parsers.parse(os.getpid)
            os.kill(in_pool, signal.SIGKILL)
            after = await parsers.parse(os.getpid)
            return before, in_pool, after

    before, in_pool, after = asyncio.run(scenario())
    assert before == after == os.getpid() != in_pool


def test_a_pool_that_does_not_start_leaves_the_parsing_to_the_thread() -> None:
    def no_pool() -> ProcessPoolExecutor:
        raise OSError("no forkserver")

    async def scenario() -> list[int]:
        with ThreadPoolExecutor(1) as thread:
            parsers = FeedParsers(thread, no_pool)
            pids = [await parsers.parse(os.getpid)]
            await parsers.settled()
            return [*pids, await parsers.parse(os.getpid)]

    assert asyncio.run(scenario()) == [os.getpid(), os.getpid()]


def test_a_feed_that_does_not_parse_in_a_worker_says_what_it_says_in_the_thread() -> None:
    job = partial(read_feed, b"<html><body><p>Not a feed.</p></body></html>", "http://127.0.0.1:9/f.xml")
    with pytest.raises(FeedParseError) as here:
        job()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as thread, ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
            parsers = FeedParsers(thread, lambda: pool)
            await parsers.parse(int)
            await parsers.settled()
            await parsers.parse(job)

    with pytest.raises(FeedParseError) as there:
        asyncio.run(scenario())
    assert (str(there.value), there.value.url) == (str(here.value), here.value.url) and here.value.url


def test_a_poll_asks_for_the_pool_once_and_only_when_a_feed_needs_parsing(site: RouteServer) -> None:
    feeds = [FeedSpec("one", site.base_url + "/one.xml"), FeedSpec("two", site.base_url + "/two.xml")]
    asked: list[int] = []
    with ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
        def start_pool() -> ProcessPoolExecutor:
            asked.append(1)
            return pool

        first = poll_feeds(feeds, {}, HTTP, now=T0, start_pool=start_pool)
        assert [len(r.entries) for r in first] == [2, 1] and asked == [1]
        states = {r.feed.url: FeedState(r.feed.url, etag=r.etag, last_modified=r.last_modified) for r in first}
        second = poll_feeds(feeds, states, HTTP, now=T0, start_pool=start_pool)
    assert [r.status for r in second] == [304, 304] and asked == [1]  # unchanged feeds: no pool asked for


# what a pool worker holds, asked with a builtin so that the question itself imports nothing into the worker
_WORKER_STATE = ("(__import__('os').getpid(), 'xml.sax.expatreader' in __import__('sys').modules, sorted("
                 "m for m in __import__('sys').modules if m.partition('.')[0] in ('httpx', 'httpcore', 'anyio')))")


def test_feeds_parsed_in_the_extraction_pool_leave_its_workers_without_the_http_client(routes: RouteServer) -> None:
    """A worker unpickling the parse job imports the job's module: from one the forkserver did not import (the
    poller brings httpx and the rest of the HTTP client), every worker held ~12 MB more for the rest of the run."""
    def after_a_while(respond: Callable[[BaseHTTPRequestHandler], None]) -> Callable[[BaseHTTPRequestHandler], None]:
        def handle(h: BaseHTTPRequestHandler) -> None:
            time.sleep(0.3)  # the pool is up by now: this feed is parsed in a worker
            respond(h)
        return handle

    feeds = []
    for i in range(8):
        url = routes.add(f"/f{i}.xml", body=rss(routes.base_url, [(f"g{i}", f"/a/{i}")]),
                         content_type="application/rss+xml")
        if i:
            routes.routes[f"/f{i}.xml"] = after_a_while(routes.routes[f"/f{i}.xml"])
        feeds.append(FeedSpec(f"f{i}", url))
    with extraction_pool(100, 2) as pool:
        assert not any(parsed for _, parsed, _ in _ask_workers(pool))  # nothing parsed before the poll
        results = poll_feeds(feeds, {}, HTTP, now=T0, start_pool=lambda: pool)
        workers = _ask_workers(pool)
    assert [len(r.entries) for r in results] == [1] * 8
    assert any(parsed for _, parsed, _ in workers) and all(http == [] for _, _, http in workers), workers


def _ask_workers(pool: Executor) -> list[tuple[int, bool, list[str]]]:
    return list({pid: (pid, parsed, http) for pid, parsed, http in
                 (pool.submit(eval, _WORKER_STATE).result() for _ in range(6))}.values())
