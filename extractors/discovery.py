"""Find a site's feed: the URL itself when it is one, else the page's `<link rel="alternate">` feeds (its only
one, or the list of them to choose from, or every one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

from extractors.feeds import read_feed
from extractors.http import Fetcher
from newsmon.config import HttpSettings
from newsmon.errors import FeedParseError, FetchError
from newsmon.records import FeedSpec

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
              "text/xml", "application/feed+json")
MAX_CANDIDATES = 20  # announced feeds tried by `feeds add --all` (a page may announce hundreds)


class _AlternateLinks(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "base" and a.get("href"):
            self.base = urljoin(self.base, a["href"])
        rels = a.get("rel", "").lower().split()
        if tag == "link" and "alternate" in rels and a.get("type", "").lower() in FEED_TYPES and a.get("href"):
            self.found.append((a.get("title", ""), urljoin(self.base, a["href"])))


def feed_links(html: bytes, base_url: str) -> list[tuple[str, str]]:
    """(title, absolute URL) of every feed a page announces, in page order, without repeats (pure)."""
    parser = _AlternateLinks(base_url)
    parser.feed(html.decode("utf-8", errors="replace"))
    seen: dict[str, str] = {}
    for title, url in parser.found:
        seen.setdefault(url, title)
    return [(t, u) for u, t in seen.items()]


@dataclass(frozen=True)
class Discovered:
    """What `feeds add URL` found: `feeds` checked to parse (the URL itself when it is a feed, the page's only
    announced feed, or with every_feed each announced feed that parses), `announced` (title, URL) when the page
    announces several and none was chosen, and `failed`: each announced feed tried that did not parse, and why."""

    feeds: tuple[FeedSpec, ...]
    announced: tuple[tuple[str, str], ...] = ()
    failed: tuple[str, ...] = ()


def discover_feeds(url: str, settings: HttpSettings, *, every_feed: bool = False) -> Discovered:
    """The feed at `url`; else the feed its page announces (`<link rel="alternate">`), or, when it announces
    several, the list of them unless `every_feed` (then every one that parses). FeedParseError when the page
    announces none, or none of those tried parses."""
    return asyncio.run(_discover(url, settings, every_feed))


async def _discover(url: str, settings: HttpSettings, every_feed: bool) -> Discovered:
    async with Fetcher(settings) as fetcher:
        resp = await fetcher.get(url, max_bytes=settings.max_page_bytes)
        try:
            doc = read_feed(resp.body, url, base_url=resp.final_url, headers=resp.headers)
            return Discovered((FeedSpec(doc.title or url, url),))
        except FeedParseError:
            candidates = feed_links(resp.body, resp.final_url)
        if len(candidates) > 1 and not every_feed:
            return Discovered((), tuple(candidates))
        found: list[FeedSpec] = []
        tried = []
        for title, candidate in candidates[:MAX_CANDIDATES]:
            try:
                r = await fetcher.get(candidate, max_bytes=settings.max_feed_bytes)
                doc = read_feed(r.body, candidate, base_url=r.final_url, headers=r.headers)
            except (FetchError, FeedParseError) as exc:
                tried.append(f"{candidate} ({exc})")
                continue
            found.append(FeedSpec(doc.title or title or candidate, candidate))
    if len(candidates) > MAX_CANDIDATES:
        tried.append(f"{len(candidates) - MAX_CANDIDATES} more announced feed(s) not tried (only the first "
                     f"{MAX_CANDIDATES} are): add them by URL")
    if found:
        return Discovered(tuple(found), failed=tuple(tried))
    detail = ("; tried " + ", ".join(tried)) if tried else "; the page announces no <link rel=\"alternate\"> feed"
    raise FeedParseError(f"no RSS/Atom feed found{detail}", url=url)
