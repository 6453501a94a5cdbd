"""OPML, the feed list format every feed reader imports and exports (pure: bytes in, text out)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from newsmon.errors import InputError
from newsmon.records import FeedSpec


@dataclass(frozen=True)
class OpmlFeeds:
    """What an OPML file lists: `feeds` to import (http(s), first of each URL, in file order), how many outlines
    name a feed URL (`outlines`, every one counted), and each outline not taken as (name and URL, why)."""

    feeds: tuple[FeedSpec, ...]
    outlines: int
    skipped: tuple[tuple[str, str], ...]


def parse_opml(data: bytes, source: str = "OPML file") -> list[FeedSpec]:
    """Every `<outline xmlUrl=...>` at any depth (folders are flattened), first occurrence of a URL wins."""
    return list(read_opml(data, source).feeds)


def read_opml(data: bytes, source: str = "OPML file") -> OpmlFeeds:
    """The feeds of an OPML file, and the outlines skipped: not http(s), a URL listed before, or a leaf outline
    without xmlUrl (a bookmark, not a feed); folders (outlines holding outlines) are flattened, not reported."""
    if b"<!ENTITY" in data[:4096]:
        raise InputError(f"{source}: OPML with entity declarations is refused (they can expand without bound)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"{source}: not an OPML file ({exc}); export one from your feed reader") from exc
    if root.tag.lower() != "opml":
        raise InputError(f"{source}: the root element is <{root.tag}>, not <opml>; export OPML from your reader")
    feeds: dict[str, FeedSpec] = {}
    outlines = 0
    skipped: list[tuple[str, str]] = []
    for node in root.iter():
        if not _is_outline(node):
            continue
        attrs = {k.lower(): v.strip() for k, v in node.attrib.items()}
        url = attrs.get("xmlurl", "")
        name = attrs.get("title") or attrs.get("text") or ""
        if not url:
            if not any(_is_outline(child) for child in node):
                skipped.append((repr(name or attrs.get("htmlurl", "")), "no xmlUrl, so not a feed"))
            continue
        outlines += 1
        shown = f"{name!r} {url}" if name else url
        if not url.startswith(("http://", "https://")):
            skipped.append((shown, "not an http(s) URL"))
        elif url in feeds:
            skipped.append((shown, f"listed before in the file (as {feeds[url].name!r})"))
        else:
            feeds[url] = FeedSpec(name=name or url, url=url)
    return OpmlFeeds(tuple(feeds.values()), outlines, tuple(skipped))


def _is_outline(node: ET.Element) -> bool:
    return isinstance(node.tag, str) and node.tag.lower() == "outline"


def to_opml(feeds: Sequence[FeedSpec], title: str = "newsmon feeds") -> str:
    """An OPML 2.0 document listing `feeds` (readers import it as one folder)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">',
             f"  <head><title>{_text(title)}</title></head>", "  <body>"]
    lines += [f'    <outline type="rss" text={quoteattr(f.name)} title={quoteattr(f.name)} '
              f"xmlUrl={quoteattr(f.url)}/>" for f in feeds]
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
