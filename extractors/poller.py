"""Poll feeds concurrently: conditional GET, body-hash skip, parse; one FeedResult per feed, never raises.

Each result says when the feed may be polled next (extractors.schedule): failures back off exponentially
up to a cap, Retry-After and cache hints are floors. A permanent redirect moves the feed's stored URL only
when the new address still serves a feed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import BrokenExecutor, Executor, ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial
from typing import TypedDict, TypeVar

from extractors.http import Fetcher, Response
from extractors.schedule import cache_floor, next_poll_at
from extractors.worker import parse_feed_body
from newsmon.config import HttpSettings
from newsmon.errors import FeedParseError, FetchError
from newsmon.records import FeedResult, FeedSpec, FeedState

T = TypeVar("T")


def poll_feeds(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState], settings: HttpSettings,
               *, now: datetime, rand: Callable[[], float] = random.random,
               start_pool: Callable[[], Executor | None] | None = None) -> list[FeedResult]:
    """Poll all `feeds` (blocking wrapper around the async poller), results in the same order.

    Scheduling (which feeds are due) is the caller's decision: see extractors.schedule.split_due.
    `start_pool` (see FeedParsers) gives a process pool to parse feeds in, asked once a feed needs parsing.
    """
    return asyncio.run(poll_feeds_async(feeds, states, settings, now=now, rand=rand, start_pool=start_pool))


async def poll_feeds_async(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState], settings: HttpSettings,
                           *, now: datetime, rand: Callable[[], float] = random.random,
                           start_pool: Callable[[], Executor | None] | None = None) -> list[FeedResult]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsmon-feed-parser") as thread:
        parsers = FeedParsers(thread, start_pool)
        try:
            async with Fetcher(settings) as fetcher:
                return list(await asyncio.gather(*(
                    poll_one(fetcher, f, states.get(f.url), settings, now, jitter=rand(), parsers=parsers)
                    for f in feeds)))
        finally:
            await parsers.settled()


class FeedParsers:
    """Where a poll parses its feeds, never on the event loop: parsing (feedparser, charset detection) is pure
    Python, and there one 10 MB feed stopped every other feed's I/O for its whole parse, so their deadlines ran out.

    One thread of this process parses, one feed at a time (feedparser holds the GIL: a second thread would not
    parse sooner), until `start_pool` has given a process pool (the run's extraction pool): then its workers
    parse, on every core. The pool is asked for by the first feed that needs parsing (a poll of unchanged feeds
    starts none), in a thread of its own: its start never holds up the event loop, and feeds parse in the thread
    meanwhile. A pool that breaks (a worker killed) leaves the parsing to the thread again."""

    def __init__(self, thread: Executor, start_pool: Callable[[], Executor | None] | None = None) -> None:
        self._thread, self._start_pool = thread, start_pool
        self._starting: asyncio.Future[Executor | None] | None = None
        self._pool: Executor | None = None

    async def parse(self, job: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._start_pool is not None:
            self._starting, self._start_pool = loop.run_in_executor(None, self._start_pool), None
        if self._starting is not None and self._starting.done():
            self._pool = None if self._starting.exception() else self._starting.result()
            self._starting = None  # a pool that did not start: the run's pages stage asks again, and says why
        if self._pool is not None:
            try:
                return await loop.run_in_executor(self._pool, job)
            except BrokenExecutor:
                self._pool = None
        return await loop.run_in_executor(self._thread, job)

    async def settled(self) -> None:
        """Wait for a pool start still under way: the pool belongs to the caller's run, which uses it next."""
        if self._starting is not None:
            with suppress(Exception):
                await self._starting


async def poll_one(fetcher: Fetcher, feed: FeedSpec, state: FeedState | None, settings: HttpSettings,
                   now: datetime, *, jitter: float = 0.0, parsers: FeedParsers | None = None) -> FeedResult:
    """Fetch and parse one feed. The fetch's deadline covers its own I/O only: the parse runs in `parsers` (the
    loop's default executor when None), never on the event loop."""
    t0 = time.monotonic()
    failures = (state.consecutive_failures if state else 0) + 1
    base, cap = timedelta(minutes=settings.backoff_base_minutes), timedelta(hours=settings.backoff_cap_hours)

    def failed(status: int | None, error: str, retry_after: float | None = None) -> FeedResult:
        return FeedResult(feed, now, status=status, error=error, elapsed_s=time.monotonic() - t0,
                          next_poll_at=next_poll_at(now, failures=failures, base=base, cap=cap,
                                                    retry_after=retry_after, jitter=jitter))

    url = (state.effective_url if state else None) or feed.url
    try:
        resp = await fetcher.get(url, max_bytes=settings.max_feed_bytes, etag=state.etag if state else None,
                                 last_modified=state.last_modified if state else None)
    except FetchError as exc:
        return failed(exc.status, str(exc) if url == feed.url else f"{exc} (configured as {feed.url})",
                      exc.retry_after)
    common: _Validators = {"etag": resp.headers.get("etag"), "last_modified": resp.headers.get("last-modified"),
                           "effective_url": resp.permanent_redirect}
    if resp.status == 304:
        return _unchanged(feed, now, resp, common, cap, t0)
    body_hash = hashlib.sha256(resp.body).hexdigest()
    if state is not None and state.body_hash == body_hash:
        return _unchanged(feed, now, resp, common, cap, t0, body_hash=body_hash)
    try:
        job = partial(parse_feed_body, resp.body, feed.url, base_url=resp.final_url, headers=resp.headers,
                      max_entries=settings.max_entries_per_feed)
        doc = await (parsers.parse(job) if parsers else asyncio.get_running_loop().run_in_executor(None, job))
    except FeedParseError as exc:
        moved = f" (after a permanent redirect to {resp.final_url}; the stored URL is kept)" \
            if resp.permanent_redirect else ""
        return failed(resp.status, f"{feed.url}: {_msg(exc)}{moved}")
    except Exception as exc:  # a parser bug on one hostile feed must not sink every other feed of the run
        return failed(resp.status, f"{feed.url}: parsing crashed ({type(exc).__name__}: {exc}); "
                                   "save the feed for a test")
    note = doc.bozo  # the run's cap (max_entries_per_feed) applies to new stories: identity.resolve_entries
    floor = cache_floor(resp.headers, ttl_minutes=doc.ttl_minutes, now=now, cap=cap)
    return FeedResult(feed, now, status=resp.status, entries=doc.entries, body_hash=body_hash, bozo=note,
                      elapsed_s=time.monotonic() - t0, next_poll_at=_after(now, floor), **common)


class _Validators(TypedDict):
    """What a parsed and an unchanged feed's results both carry: its cache validators, its permanent redirect."""

    etag: str | None
    last_modified: str | None
    effective_url: str | None


def _unchanged(feed: FeedSpec, now: datetime, resp: Response, fields: _Validators, cap: timedelta,
               t0: float, body_hash: str | None = None) -> FeedResult:
    """A 304, or a 200 whose body is byte-identical to the last one parsed: nothing to parse."""
    floor = cache_floor(resp.headers, ttl_minutes=None, now=now, cap=cap)
    return FeedResult(feed, now, status=resp.status, not_modified=True, body_hash=body_hash,
                      elapsed_s=time.monotonic() - t0, next_poll_at=_after(now, floor), **fields)


def _after(now: datetime, floor: timedelta | None) -> datetime | None:
    return now + floor if floor else None


def _msg(exc: FeedParseError) -> str:
    text = str(exc)
    prefix = f"{exc.url}: " if exc.url else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text
