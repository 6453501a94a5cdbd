"""Find a site's feed: the URL itself when it is one, else the page's `<link rel="alternate">` feeds."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from urllib.parse import urljoin

from extractors.feeds import read_feed
from extractors.http import Fetcher
from newsmon.config import HttpSettings
from newsmon.errors import FeedParseError, FetchError
from newsmon.records import FeedSpec

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
              "text/xml", "application/feed+json")
MAX_CANDIDATES = 5


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


def discover_feed(url: str, settings: HttpSettings) -> FeedSpec:
    """The feed at `url`, or the first feed its page links to that really parses; FeedParseError if none."""
    return asyncio.run(_discover(url, settings))


async def _discover(url: str, settings: HttpSettings) -> FeedSpec:
    async with Fetcher(settings) as fetcher:
        resp = await fetcher.get(url, max_bytes=settings.max_page_bytes)
        try:
            doc = read_feed(resp.body, url, base_url=resp.final_url, headers=resp.headers)
            return FeedSpec(doc.title or url, url)
        except FeedParseError:
            candidates = feed_links(resp.body, resp.final_url)
        tried = []
        for title, candidate in candidates[:MAX_CANDIDATES]:
            try:
                r = await fetcher.get(candidate, max_bytes=settings.max_feed_bytes)
                doc = read_feed(r.body, candidate, base_url=r.final_url, headers=r.headers)
            except (FetchError, FeedParseError) as exc:
                tried.append(f"{candidate} ({exc})")
                continue
            return FeedSpec(doc.title or title or candidate, candidate)
    detail = ("; tried " + ", ".join(tried)) if tried else "; the page announces no <link rel=\"alternate\"> feed"
    raise FeedParseError(f"no RSS/Atom feed found{detail}", url=url)
