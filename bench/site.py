"""A synthetic news site on loopback for the end-to-end bench: N feeds x M items, real saved pages.

Article pages are real publishers' pages from the shared corpus (article-extraction-benchmark, fundus,
trafilatura's cache, newspaper4k), reused round-robin, so extraction costs what it costs on real sites.
A few positive Azerbaijan-Russia energy stories (the demo site's story page under new titles) are mixed in,
so the cycle matches and alerts. Feeds are spread over "outlets": loopback addresses 127.0.0.1 ..
127.0.0.K on one port, because 200 real feeds come from dozens of hosts and newsmon limits requests per host.

The server is asyncio: each request sleeps `latency_s` without blocking the others; feeds and pages carry an
ETag and answer 304 to a matching If-None-Match. `POST /_bench/publish?feed=I` puts a new positive story on
top of feed I and returns {"title", "url", "at"} (at = time.time() when the story became visible).

    python -m bench.site --feeds 200 --items 25 --latency 0.15 --outlets 40
prints one JSON line {"port", "feeds": [urls]} and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from newsmon.demo.server import demo_site_root, render_template

POSITIVE_PAGE = "articles/azerbaijan-invites-russian-companies-green-energy.html"
POSITIVE_TITLE = "Azerbaijan invites Russian companies to invest in its green energy projects"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)
# A page's own address (rel=canonical, og:url) would make every reuse of a corpus page a copy of its first
# use, which newsmon rightly stores once: the site drops them so that N x M items are N x M stories.
_OWN_ADDRESS = re.compile(rb"<link[^>]+rel=[\"']?canonical[^>]*>|<meta[^>]+property=[\"']?og:url[^>]*>", re.I)


def find_corpus() -> Path:
    """The shared corpus, found as tests/conftest.py finds it."""
    candidates = [os.environ.get("NEWSMON_CORPUS", ""), str(Path(__file__).resolve().parents[2] / "shared/corpus"),
                  "/work/shared/corpus"]
    for c in candidates:
        if c and Path(c, "README.md").exists():
            return Path(c)
    raise SystemExit("bench: the shared corpus was not found; set NEWSMON_CORPUS to its folder")


def corpus_pages(corpus: Path) -> list[bytes]:
    """Every saved article page in the corpus, in a stable order."""
    files = sorted((corpus / "article-extraction-benchmark/html").glob("*.html.gz"))
    files += sorted((corpus / "fundus-news/test_data").rglob("*.html.gz"))
    files += sorted((corpus / "trafilatura-pages/cache").glob("*.html.gz"))
    files += sorted((corpus / "newspaper4k-tests/data/html").glob("*.html"))
    return [gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes() for f in files]


def page_title(body: bytes, fallback: str) -> str:
    m = _TITLE.search(body[:200_000])
    title = " ".join(m.group(1).decode("utf-8", "replace").split()) if m else ""
    return title[:150] or fallback


@dataclass(frozen=True)
class SiteSpec:
    feeds: int
    items: int
    latency_s: float = 0.15
    outlets: int = 40
    positives: int = 3
    port: int = 0

    def host(self, feed: int) -> str:
        return f"127.0.0.{feed % max(1, self.outlets) + 1}"


@dataclass
class Item:
    title: str
    path: str
    published: datetime


@dataclass
class Site:
    """Everything the server answers with: pages by path, feeds (newest item first), cached feed bodies."""

    spec: SiteSpec
    port: int
    now: datetime
    pages: dict[str, bytes] = field(default_factory=dict)
    feeds: list[list[Item]] = field(default_factory=list)
    published: int = 0
    _feed_bodies: dict[int, tuple[bytes, str]] = field(default_factory=dict)

    def base(self, feed: int) -> str:
        return f"http://{self.spec.host(feed)}:{self.port}"

    def feed_urls(self) -> list[str]:
        return [f"{self.base(i)}/feeds/{i}.xml" for i in range(self.spec.feeds)]

    def article_urls(self) -> list[str]:
        return [self.base(i) + it.path for i, items in enumerate(self.feeds) for it in items]

    def feed_body(self, i: int) -> tuple[bytes, str]:
        if i not in self._feed_bodies:
            body = render_feed(f"Outlet feed {i}", self.base(i), self.feeds[i])
            self._feed_bodies[i] = (body, '"' + hashlib.sha256(body).hexdigest()[:24] + '"')
        return self._feed_bodies[i]

    def publish(self, feed: int, when: datetime) -> Item:
        """A new positive story on top of `feed` (the feed's body and ETag change)."""
        self.published += 1
        n = self.published
        item = Item(f"{POSITIVE_TITLE} (story {n})", f"/s/{feed}/story-{n}.html", when)
        self.pages[item.path] = positive_page(self.base(feed), when, n)
        self.feeds[feed].insert(0, item)
        self._feed_bodies.pop(feed, None)
        return item


def positive_page(base_url: str, now: datetime, n: int) -> bytes:
    """The demo's positive story plus a long paragraph of its own, so that story n is a new story and not a
    near-copy of story n-1 (newsmon clusters near-duplicates and alerts once per cluster)."""
    text = (demo_site_root() / POSITIVE_PAGE).read_text(encoding="utf-8")
    own = " ".join(f"Under annex {n}.{k} the ministries listed project {n * 100 + k} with {(n * 37 + k * 11) % 900} "
                   f"megawatts, site {chr(65 + k % 26)}{n}, review {n}-{k * 3}." for k in range(60))
    end = "after the meeting.</p>"  # the last paragraph of the story body
    text = text.replace(end, f"{end}\n<p>{own}</p>", 1)
    # the demo page names one canonical address per host: stories n and m on one host would be one article
    return _OWN_ADDRESS.sub(b"", render_template(text, base_url=base_url, now=now).encode("utf-8"))


def build_site(spec: SiteSpec, pages: list[bytes], port: int, now: datetime) -> Site:
    """The site's content: feed i item j is corpus page (i*M + j) mod len(pages); a few positives on top."""
    site = Site(spec, port, now)
    for i in range(spec.feeds):
        items = []
        for j in range(spec.items):
            n = i * spec.items + j
            body = _OWN_ADDRESS.sub(b"", pages[n % len(pages)])
            path = f"/a/{i}/{j}.html"
            site.pages[path] = body
            items.append(Item(page_title(body, f"Story {i}-{j}"), path, now - timedelta(minutes=5 * j + i % 60)))
        site.feeds.append(items)
    for k in range(spec.positives):
        site.publish((k * 7919) % spec.feeds, now - timedelta(hours=1, minutes=k))
        site.feeds[(k * 7919) % spec.feeds].pop()  # keep M items per feed
    return site


def render_feed(title: str, base: str, items: list[Item]) -> bytes:
    parts = [f"<item><title>{escape(it.title)}</title><link>{base}{it.path}</link>"
             f"<guid isPermaLink=\"true\">{base}{it.path}</guid>"
             f"<pubDate>{format_datetime(it.published, usegmt=True)}</pubDate>"
             f"<description>{escape(it.title)}</description></item>" for it in items]
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel>"
            f"<title>{escape(title)}</title><link>{base}/</link><description>bench feed</description>"
            + "".join(parts) + "</channel></rss>").encode("utf-8")


# --- the asyncio server ------------------------------------------------------------------------------------


def respond(site: Site, method: str, target: str, headers: dict[str, str]) -> tuple[int, str, bytes, str | None]:
    """(status, content type, body, etag) for one request."""
    parts = urlsplit(target)
    if method == "POST" and parts.path == "/_bench/publish":
        feed = int(parse_qs(parts.query).get("feed", ["0"])[0]) % site.spec.feeds
        item = site.publish(feed, datetime.now(UTC))
        doc = {"title": item.title, "url": site.base(feed) + item.path, "at": time.time()}
        return 200, "application/json", json.dumps(doc).encode(), None
    m = re.fullmatch(r"/feeds/(\d+)\.xml", parts.path)
    if m and int(m.group(1)) < site.spec.feeds:
        body, etag = site.feed_body(int(m.group(1)))
        ctype = "application/rss+xml; charset=utf-8"
    elif parts.path in site.pages:
        body = site.pages[parts.path]
        etag = '"' + hashlib.md5(parts.path.encode()).hexdigest()[:24] + '"'  # pages never change
        ctype = "text/html; charset=utf-8"
    else:
        return 404, "text/plain", b"not found", None
    if headers.get("if-none-match") == etag:
        return 304, ctype, b"", etag
    return 200, ctype, body, etag


async def handle(site: Site, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line.strip():
                break
            method, target, version = line.decode("latin-1").split()
            headers: dict[str, str] = {}
            while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            if not target.startswith("/_bench/"):
                await asyncio.sleep(site.spec.latency_s)
            status, ctype, body, etag = respond(site, method, target, headers)
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'X'}", f"Content-Type: {ctype}",
                    f"Content-Length: {len(body)}", "Connection: " + ("close" if close else "keep-alive")]
            if etag:
                head.append(f"ETag: {etag}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body if method != "HEAD" else b""))
            await writer.drain()
            if close:
                break
    except (ConnectionError, ValueError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(spec: SiteSpec) -> None:
    pages = corpus_pages(find_corpus())
    first = await asyncio.start_server(lambda r, w: handle(site, r, w), "127.0.0.1", spec.port, backlog=512)
    port = first.sockets[0].getsockname()[1]
    site = build_site(spec, pages, port, datetime.now(UTC).replace(microsecond=0))
    hosts = sorted({spec.host(i) for i in range(spec.feeds)} - {"127.0.0.1"})
    servers = [first] + [await asyncio.start_server(lambda r, w: handle(site, r, w), h, port, backlog=512)
                         for h in hosts]
    print(json.dumps({"port": port, "feeds": site.feed_urls(), "pages": len(site.pages)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.site", description=__doc__.splitlines()[0])
    p.add_argument("--feeds", type=int, default=200)
    p.add_argument("--items", type=int, default=25)
    p.add_argument("--latency", type=float, default=0.15)
    p.add_argument("--outlets", type=int, default=40)
    p.add_argument("--positives", type=int, default=3)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    asyncio.run(serve(SiteSpec(a.feeds, a.items, a.latency, a.outlets, a.positives, a.port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
