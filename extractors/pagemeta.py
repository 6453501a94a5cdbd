"""Title, author(s) and site name of a page from its markup (pure): meta tags, JSON-LD, a few elements.

A lean stand-in for trafilatura's metadata pass, which also extracts categories, tags, licence and
description that newsmon never uses and costs about a third of the extraction time. Everything here
reads the already parsed tree with a handful of XPath queries and the JSON-LD with the stdlib.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lxml.html import HtmlElement

# meta names / properties that carry author names (the common ones trafilatura reads too), in order
_AUTHOR_META = ("author", "article:author", "byl", "parsely-author", "sailthru.author", "dc.creator",
                "dcterms.creator", "citation_author")
_LAST_FIRST_META = frozenset({"dc.creator", "dcterms.creator", "citation_author"})  # 'Brazil, Rachel'
_ARTICLE_TYPE = re.compile(r"article|posting|report", re.IGNORECASE)
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")  # 'chuck-ross': a profile URL's last part, not a name
# 'By Jane Doe', 'von ...', 'Автор: ...': 25 of 518 author strings on the 579 corpus pages carried one
_BY = re.compile(r"^\s*(?:by|von|par|por|door|av|от|автор:?)\s+", re.IGNORECASE)
# itemprop=author outside image and video objects (whose author is the photographer), rel=author links
_AUTHOR_ELEMENTS = (
    "//*[@itemprop='author'][not(ancestor::*[@itemscope][1][contains(@itemtype, 'ImageObject')"
    " or contains(@itemtype, 'VideoObject')])] | //a[@rel='author']"
)
# class names with 'author' or 'byline', outside forms and comment threads (the commenter's name field)
_BYLINE_ELEMENTS = (
    "//*[self::a or self::span or self::p or self::div or self::li or self::address]"
    "[contains(translate(@class, 'AB', 'ab'), 'author') or contains(@class, 'byline')]"
    "[not(ancestor-or-self::*[self::form or contains(@class, 'comment') or contains(@id, 'comment')])]"
)
_DATE_TAIL = re.compile(r"\s*(?:\b(?:published|updated|posted)\b:?\s*)?\d.*$", re.IGNORECASE | re.DOTALL)
_MAX_NAME = 80
_TITLE_SEPARATORS = (" | ", " - ", " – ", " — ", " :: ", " · ", " › ", " » ", "：")


@dataclass(frozen=True)
class PageMeta:
    title: str | None = None
    author: str | None = None
    site_name: str | None = None


def page_meta(tree: HtmlElement, json_ld: list[dict[str, Any]]) -> PageMeta:
    """Title, authors ("; "-joined) and site name; ``json_ld`` is ``json_ld_objects(tree)``."""
    metas = meta_values(tree)
    articles = [item for item in json_ld if _is_article(item)]
    by_id = {item["@id"]: item for item in json_ld if isinstance(item.get("@id"), str)}
    site = site_name(metas, json_ld)
    return PageMeta(
        title=page_title(tree, metas, articles, site),
        author=page_author(tree, metas, articles, by_id),
        site_name=site,
    )


def json_ld_objects(tree: HtmlElement) -> list[dict[str, Any]]:
    """Every JSON-LD object of the page, lists and @graph containers flattened; broken blocks skipped."""
    objects: list[dict[str, Any]] = []
    for script in tree.xpath("//script[@type='application/ld+json']/text()"):
        try:
            data = json.loads(str(script), strict=False)  # strict=False: raw newlines inside strings
        except (ValueError, RecursionError):
            continue
        objects.extend(_flatten(data))
    return objects


def meta_values(tree: HtmlElement) -> dict[str, list[str]]:
    """Non-empty contents of the head's meta tags by lower-cased property or name, in page order."""
    values: dict[str, list[str]] = {}
    for element in tree.xpath("//head/meta[@content][@property or @name]"):
        key = element.get("property") or element.get("name")
        content = _text(element.get("content"))
        if key and content:
            values.setdefault(key.strip().lower(), []).append(content)
    return values


def page_title(
    tree: HtmlElement, metas: dict[str, list[str]], articles: list[dict[str, Any]], site: str | None
) -> str | None:
    """Article JSON-LD headline, twitter:title, og:title, the first h1, then <title>; without the site name."""
    return _strip_site(_first_title(tree, metas, articles), site)


def _first_title(tree: HtmlElement, metas: dict[str, list[str]], articles: list[dict[str, Any]]) -> str | None:
    candidates = (
        *(item.get("headline") for item in articles),
        *metas.get("twitter:title", ())[:1],
        *metas.get("og:title", ())[:1],
    )
    for candidate in candidates:
        if isinstance(candidate, str) and (title := _text(candidate)):
            return title
    for heading in tree.iter("h1"):
        if title := _text(heading.text_content()):
            return title
    return _text(tree.findtext(".//title"))


def page_author(
    tree: HtmlElement, metas: dict[str, list[str]], articles: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> str | None:
    """Authors of the article JSON-LD, else of the meta tags, else of author elements, "; "-joined."""
    for names in (
        (name for item in articles for name in _json_ld_names(item.get("author"), by_id)),
        _meta_authors(metas),
        (_element_name(element) for element in tree.xpath(_AUTHOR_ELEMENTS)),
        (_element_name(element) for element in tree.xpath(_BYLINE_ELEMENTS)[:1]),
    ):
        if joined := _join_names(names):
            return joined
    return None


def _meta_authors(metas: dict[str, list[str]]) -> Iterator[str]:
    for key in _AUTHOR_META:
        for value in metas.get(key, ()):
            yield _first_last(value) if key in _LAST_FIRST_META else value


def site_name(metas: dict[str, list[str]], json_ld: list[dict[str, Any]]) -> str | None:
    """og:site_name, else the JSON-LD publisher's name, else application-name; never a URL."""
    publishers = (item.get("publisher") for item in json_ld)
    candidates = (
        *metas.get("og:site_name", ()),
        *(_text(_string(publisher.get("name"))) for publisher in publishers if isinstance(publisher, dict)),
        *metas.get("application-name", ()),
    )
    return next((name for name in candidates if name and not _is_url(name)), None)


def _json_ld_names(value: Any, by_id: dict[str, dict[str, Any]]) -> Iterator[str]:
    """Names in a JSON-LD author value: a string, a Person or Organization object (or an @id reference to
    one), or a list of them. Organizations count: on the fundus pages preferring people lost more names
    (agencies and newsrooms credited as the author) than it found."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for element in value:
            yield from _json_ld_names(element, by_id)
    elif isinstance(value, dict):
        if "name" not in value and isinstance(value.get("@id"), str):
            value = by_id.get(value["@id"], value)
        name = value.get("name")
        if isinstance(name, str | list):
            yield from _json_ld_names(name, {})
        elif isinstance(value.get("familyName"), str):
            yield " ".join(part for part in (value.get("givenName"), value["familyName"]) if isinstance(part, str))


def _element_name(element: HtmlElement) -> str | None:
    """An author element's name: its content attribute, a nested itemprop=name, or its text up to the
    first digit ('Jane Doe November 19th, 2019 at 8:40 AM')."""
    content: str | None = element.get("content")  # lxml is untyped: its values are Any to mypy
    if content:
        return content
    for name in element.xpath(".//*[@itemprop='name']"):
        named: str = name.get("content") or name.text_content()
        return named
    return _DATE_TAIL.sub("", element.text_content()).rstrip(" ,;:|-–—·•")


def _join_names(names: Iterable[str | None]) -> str | None:
    """Plausible names, de-duplicated, "; "-joined; URLs, e-mail addresses and long strings are refused."""
    kept: dict[str, str] = {}
    for name in names:
        name = _text(_BY.sub("", name or ""))
        if name and len(name) > _MAX_NAME:  # 'Name, Professor of ... at ...': the name is the first part
            name = name.partition(",")[0]
        if name and _plausible_name(name):
            kept.setdefault(name.casefold(), name)
    return "; ".join(kept.values()) or None


def _plausible_name(name: str) -> bool:
    return (
        len(name) <= _MAX_NAME
        and not _is_url(name)
        and not name.startswith("(")  # '(Image: Getty Images)': a photo credit
        and not _EMAIL.search(name)
        and not _SLUG.match(name)
        and any(character.isalpha() for character in name)
    )


def _first_last(name: str) -> str:
    """'Brazil, Rachel' -> 'Rachel Brazil' (Dublin Core and citation meta tags put the family name first)."""
    family, comma, given = name.partition(",")
    return f"{given.strip()} {family.strip()}" if comma and given.strip() and "," not in given else name


def _strip_site(title: str | None, site: str | None) -> str | None:
    """'Headline | Site' and 'Site | Headline' -> 'Headline' when that part is the site's name."""
    if not title or not site:
        return title
    for separator in _TITLE_SEPARATORS:
        head, sep, tail = title.rpartition(separator)
        if sep and head.strip() and tail.strip().casefold() == site.casefold():
            return head.strip()
        head, sep, tail = title.partition(separator)
        if sep and tail.strip() and head.strip().casefold() == site.casefold():
            return tail.strip()
    return title


def _is_url(value: str) -> bool:
    return value.lower().startswith(("http:", "https:", "www.", "//"))


def _is_article(item: dict[str, Any]) -> bool:
    kinds = item.get("@type")
    return any(isinstance(kind, str) and _ARTICLE_TYPE.search(kind) for kind in _as_list(kinds))


def _flatten(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for element in data:
            yield from _flatten(element)
    elif isinstance(data, dict):
        yield data
        yield from _flatten(data.get("@graph"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: str | None) -> str | None:
    """Entities decoded (JSON-LD often carries them escaped), whitespace collapsed; None if empty."""
    if not value:
        return None
    return " ".join(html.unescape(value).split()) or None
