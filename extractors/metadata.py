"""Page metadata beside the text (pure): publication time and canonical URL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml.html import HtmlElement

_PUBLISHED_XPATHS = (
    "//meta[@property='article:published_time' or @property='og:published_time']/@content",
    "//meta[@itemprop='datePublished']/@content",
    "//*[@itemprop='datePublished']/@datetime",
    "//meta[@name='pubdate' or @name='publishdate' or @name='publish-date' or @name='article:published_time'"
    " or @name='parsely-pub-date' or @name='sailthru.date' or @name='dc.date.issued'"
    " or @name='DC.date.issued']/@content",
)


def published_at(
    tree: HtmlElement, htmldate: str | None, feed_date: datetime | None
) -> tuple[datetime | None, str | None]:
    """Publication time from page metadata, else htmldate's day, else the feed (then with a note)."""
    feed_utc = as_utc(feed_date)
    page = _page_published(tree)
    if page is not None:
        return page, None
    day = _parse_datetime(htmldate) if htmldate else None
    if day is not None:
        if feed_utc is not None and feed_utc.date() == day.date():
            return feed_utc, None
        return day, None
    return feed_utc, ("date from feed entry" if feed_utc else None)


def canonical_url(tree: HtmlElement, url: str) -> str | None:
    """The page's declared canonical URL (link rel=canonical, else og:url), absolute; None if absent."""
    for xpath in (
        "//head/link[@rel='canonical']/@href",
        "//link[@rel='canonical']/@href",
        "//meta[@property='og:url']/@content",
    ):
        for href in tree.xpath(xpath):
            absolute = urljoin(url, str(href).strip())
            parts = urlsplit(absolute)
            # a site root is a template default, not this article's address: it would merge every story
            if parts.scheme in {"http", "https"} and parts.netloc and parts.path.strip("/"):
                return absolute
    return None


def _page_published(tree: HtmlElement) -> datetime | None:
    for xpath in _PUBLISHED_XPATHS:
        for value in tree.xpath(xpath):
            parsed = _parse_datetime(str(value))
            if parsed is not None:
                return parsed
    return _json_ld_published(tree)


def _json_ld_published(tree: HtmlElement) -> datetime | None:
    for script in tree.xpath("//script[@type='application/ld+json']/text()"):
        try:
            data = json.loads(str(script))
        except ValueError:
            continue
        for item in _json_ld_items(data):
            parsed = _parse_datetime(str(item.get("datePublished") or ""))
            if parsed is not None:
                return parsed
    return None


def _json_ld_items(data: Any) -> list[dict[str, Any]]:
    """Flatten JSON-LD lists and @graph containers into their objects."""
    if isinstance(data, list):
        return [item for element in data for item in _json_ld_items(element)]
    if isinstance(data, dict):
        return [data, *_json_ld_items(data.get("@graph", []))]
    return []


def _parse_datetime(value: str) -> datetime | None:
    """ISO 8601 date or date-time as an aware UTC datetime; a value without an offset is taken as UTC."""
    value = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value[:10])
        except ValueError:
            return None
    return as_utc(parsed)


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


