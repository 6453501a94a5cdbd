"""OPML, the feed list format every feed reader imports and exports (pure: bytes in, text out)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from newsmon.errors import ConfigError
from newsmon.records import FeedSpec


def parse_opml(data: bytes, source: str = "OPML file") -> list[FeedSpec]:
    """Every `<outline xmlUrl=...>` at any depth (folders are flattened), first occurrence of a URL wins."""
    if b"<!ENTITY" in data[:4096]:
        raise ConfigError(f"{source}: OPML with entity declarations is refused (they can expand without bound)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(f"{source}: not an OPML file ({exc}); export one from your feed reader") from exc
    if root.tag.lower() != "opml":
        raise ConfigError(f"{source}: the root element is <{root.tag}>, not <opml>; export OPML from your reader")
    feeds: dict[str, FeedSpec] = {}
    for node in root.iter():
        attrs = {k.lower(): v.strip() for k, v in node.attrib.items()}
        url = attrs.get("xmlurl", "")
        if node.tag.lower() == "outline" and url.startswith(("http://", "https://")) and url not in feeds:
            feeds[url] = FeedSpec(name=attrs.get("title") or attrs.get("text") or url, url=url)
    return list(feeds.values())


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
