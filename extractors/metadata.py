"""Page metadata beside the text (pure): publication time and canonical URL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import htmldate.extractors
from htmldate import find_date
from lxml.html import HtmlElement

from extractors.language import LANGUAGES
from newsmon.records import as_utc

_PUBLISHED_XPATHS = (
    "//meta[@property='article:published_time' or @property='og:published_time']/@content",
    "//meta[@itemprop='datePublished']/@content",
    "//*[@itemprop='datePublished']/@datetime",
    "//meta[@name='pubdate' or @name='publishdate' or @name='publish-date' or @name='article:published_time'"
    " or @name='parsely-pub-date' or @name='sailthru.date' or @name='dc.date.issued'"
    " or @name='DC.date.issued']/@content",
)


def published_at(
    tree: HtmlElement, json_ld: list[dict[str, Any]], url: str, feed_date: datetime | None
) -> tuple[datetime | None, str | None]:
    """Publication time from page metadata, else htmldate's day, else the feed (then with a note).

    ``json_ld`` is the page's JSON-LD objects (``pagemeta.json_ld_objects``). htmldate (~1 ms a page) runs
    only when neither the meta tags nor the JSON-LD carry a publication time.
    """
    feed_utc = as_utc(feed_date)
    page = page_published(tree, json_ld)
    if page is not None:
        return page, None
    htmldate = find_date(tree, url=canonical_url(tree, url) or url, **date_params(feed_date))
    day = _parse_datetime(htmldate) if htmldate else None
    if day is not None:
        if feed_utc is not None and feed_utc.date() == day.date():
            return feed_utc, None
        return day, None
    return feed_utc, ("date from feed entry" if feed_utc else None)


@lru_cache(maxsize=1)
def date_parser() -> Any:
    """dateparser for htmldate's free-text dates ("3 декабря 2026"), limited to the languages newsmon detects.

    htmldate's own parser tries all of dateparser's 205 locales: one date-like string that none of them reads
    makes the process load and compile every one (~3.7 s of CPU and ~40 MB, in each extraction worker). This
    one has the languages of extractors.language that dateparser knows (24 of 26): ~0.9 s and ~12 MB at most.
    Its settings are htmldate's.
    """
    from dateparser import DateDataParser
    from dateparser.data.languages_info import language_order

    return DateDataParser(
        languages=[code for code in LANGUAGES if code in language_order],
        settings={
            "NORMALIZE": True,
            "PARSERS": ["custom-formats", "absolute-time"],
            "PREFER_DATES_FROM": "past",
            "PREFER_LOCALE_DATE_ORDER": True,
            "RETURN_AS_TIMEZONE_AWARE": False,
            "STRICT_PARSING": True,
        },
    )


# htmldate asks this module-level factory for its parser on every free-text date (htmldate.extractors,
# _external_date); pointing it at ours is the one place htmldate's dateparser is configured.
htmldate.extractors.get_external_parser = date_parser


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


def date_params(feed_date: datetime | None) -> dict[str, Any]:
    """htmldate settings; a story is not dated after its feed entry (plus a day of time-zone slack).

    Without a feed date htmldate bounds dates by today itself: the one clock read, inside the library.
    """
    params: dict[str, Any] = {"original_date": True, "extensive_search": True}
    feed_utc = as_utc(feed_date)
    if feed_utc is not None:
        params["max_date"] = (feed_utc + timedelta(days=1)).strftime("%Y-%m-%d")
    return params


def page_published(tree: HtmlElement, json_ld: list[dict[str, Any]]) -> datetime | None:
    """Publication time declared by the page: meta tags, then JSON-LD datePublished."""
    for xpath in _PUBLISHED_XPATHS:
        for value in tree.xpath(xpath):
            parsed = _parse_datetime(str(value))
            if parsed is not None:
                return parsed
    for item in json_ld:
        parsed = _parse_datetime(str(item.get("datePublished") or ""))
        if parsed is not None:
            return parsed
    return None


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


