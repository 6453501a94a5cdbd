"""Feed bytes to entry records with feedparser (pure: feedparser is never allowed to fetch)."""

from __future__ import annotations

import calendar
import html
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser

from newsmon.errors import FeedParseError
from newsmon.records import Entry

TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|yclid|mc_cid|mc_eid|_ga|ref|ref_src|cmpid|from)$", re.I)
_TAGS = re.compile(r"<[^>]+>")


def normalize_link(url: str) -> str:
    """Canonical form of an entry link: lower-case scheme/host, no default port, fragment or tracking query."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not TRACKING_PARAMS.match(k)])
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", query, ""))


def strip_html(text: str) -> str:
    """Plain text of a feed's HTML snippet (summaries are HTML in most feeds)."""
    return " ".join(html.unescape(_TAGS.sub(" ", text)).split())


def parse_feed(body: bytes, feed_url: str, *, base_url: str | None = None,
               headers: Mapping[str, str] | None = None, max_entries: int = 500) -> tuple[list[Entry], str | None]:
    """Parse feed bytes. Returns (entries, bozo note) or raises FeedParseError naming the feed.

    `base_url` (the URL after redirects) resolves relative links. A "bozo" feed that still yields
    entries is kept (the note says what was wrong).
    """
    base = base_url or feed_url
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    hdrs.setdefault("content-location", base)
    hdrs.setdefault("content-type", "application/xml")
    parsed = feedparser.parse(body, response_headers=hdrs, sanitize_html=True, resolve_relative_uris=True)
    bozo = _bozo_note(parsed)
    raw_entries = parsed.get("entries") or []
    if not raw_entries:
        if parsed.get("version") and not bozo:
            return [], None  # a well-formed feed with nothing in it right now
        raise FeedParseError(_why_not_a_feed(body, bozo), url=feed_url)
    entries = []
    for raw in raw_entries[:max_entries]:
        entry = _entry(raw, feed_url, base, parsed.get("feed", {}))
        if entry is not None:
            entries.append(entry)
    return entries, bozo


def _entry(raw: Any, feed_url: str, base: str, feed_meta: Any) -> Entry | None:
    link = raw.get("link") or ""
    if link:
        link = urljoin(base, link)
    guid = (raw.get("id") or "").strip() or None
    title = strip_html(raw.get("title") or "")
    summary = strip_html(raw.get("summary") or "")
    # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed, with a warning
    updated = _when(dict.get(raw, "updated_parsed"))
    published = _when(dict.get(raw, "published_parsed")) or updated
    key = entry_key(guid, link, title, published)
    if key is None:
        return None
    return Entry(feed_url=feed_url, key=key, link=link or (guid if guid and guid.startswith("http") else ""),
                 title=title or summary[:120], summary=summary, guid=guid,
                 author=(raw.get("author") or None), published_at=published, updated_at=updated,
                 language=(raw.get("language") or feed_meta.get("language") or None))


def entry_key(guid: str | None, link: str, title: str, published: datetime | None) -> str | None:
    """The story's identity: the normalised link when there is one, else the GUID, else title + date.

    Links win over GUIDs because several news feeds rotate or omit GUIDs (see docs/schema.md).
    """
    if link.startswith(("http://", "https://")):
        return normalize_link(link)
    if guid:
        return f"guid:{guid}"
    if title:
        return f"title:{title.lower()}|{published.isoformat() if published else ''}"
    return None


def _when(st: time.struct_time | None) -> datetime | None:
    if not st:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(st), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _bozo_note(parsed: Any) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}" if exc else "malformed feed"


def _why_not_a_feed(body: bytes, bozo: str | None) -> str:
    head = body[:512].lstrip().lower()
    if not body.strip():
        return "the feed URL returned an empty body; check the URL"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return ("the URL returned an HTML page, not a feed; use the site's RSS/Atom URL "
                "(look for <link rel=\"alternate\"> on the page)")
    detail = f" ({bozo})" if bozo else ""
    return f"not a readable RSS/Atom feed{detail}; check the URL or tell the publisher"
