"""Poll every feed concurrently: conditional GET, body-hash skip, parse; one FeedResult per feed, never raises."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

from extractors.feeds import parse_feed
from extractors.http import Fetcher
from newsmon.config import HttpSettings
from newsmon.errors import FeedParseError, FetchError
from newsmon.records import FeedResult, FeedSpec, FeedState


def poll_feeds(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState], settings: HttpSettings,
               *, now: datetime) -> list[FeedResult]:
    """Poll all feeds (blocking wrapper around the async poller), in config order."""
    return asyncio.run(_poll_all(feeds, states, settings, now))


async def _poll_all(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState], settings: HttpSettings,
                    now: datetime) -> list[FeedResult]:
    async with Fetcher(settings) as fetcher:
        return list(await asyncio.gather(*(
            poll_one(fetcher, f, states.get(f.url), settings, now) for f in feeds)))


async def poll_one(fetcher: Fetcher, feed: FeedSpec, state: FeedState | None, settings: HttpSettings,
                   now: datetime) -> FeedResult:
    t0 = time.monotonic()
    try:
        resp = await fetcher.get(feed.url, max_bytes=settings.max_feed_bytes,
                                 etag=state.etag if state else None,
                                 last_modified=state.last_modified if state else None)
    except FetchError as exc:
        return FeedResult(feed, now, status=exc.status, error=str(exc), elapsed_s=time.monotonic() - t0)
    validators = {"etag": resp.headers.get("etag"), "last_modified": resp.headers.get("last-modified")}
    if resp.status == 304:
        return FeedResult(feed, now, status=304, not_modified=True, elapsed_s=time.monotonic() - t0,
                          **validators)
    body_hash = hashlib.sha256(resp.body).hexdigest()
    if state is not None and state.body_hash == body_hash:
        return FeedResult(feed, now, status=resp.status, not_modified=True, body_hash=body_hash,
                          elapsed_s=time.monotonic() - t0, **validators)
    try:
        entries, bozo = parse_feed(resp.body, feed.url, base_url=resp.final_url, headers=resp.headers)
    except FeedParseError as exc:
        return FeedResult(feed, now, status=resp.status, error=f"{feed.url}: {_msg(exc)}",
                          elapsed_s=time.monotonic() - t0)
    return FeedResult(feed, now, status=resp.status, entries=tuple(entries), body_hash=body_hash, bozo=bozo,
                      elapsed_s=time.monotonic() - t0, **validators)


def _msg(exc: FeedParseError) -> str:
    text = str(exc)
    prefix = f"{exc.url}: " if exc.url else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text
