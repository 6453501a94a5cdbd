"""The feed's own text standing in for an article (pure): used when a page cannot be fetched or extracted.

Kept apart from extractors.articles so that the flow process, which makes these in rare cases, never
imports trafilatura (the extraction pool's workers do).
"""

from __future__ import annotations

import html
import re

import lxml.html

from extractors.language import detect_language, normalise_language
from newsmon.records import Entry, ExtractedText, as_utc

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "tr",
        "table",
        "section",
        "article",
        "pre",
        "figure",
    }
)


def from_feed(entry: Entry, reason: str) -> ExtractedText:
    """The feed's own title and summary (HTML stripped) standing in for the article text."""
    title = strip_html(entry.title)
    summary = strip_html(entry.summary)
    text = "\n\n".join([title] if summary in {"", title} else [title, summary]).strip()
    return ExtractedText(
        text=text,
        title=title or None,
        author=_clean(entry.author),
        published_at=as_utc(entry.published_at or entry.updated_at),
        language=_feed_language(entry.language, text),
        status="summary",
        note=reason,
    )


def strip_html(fragment: str | None) -> str:
    """Plain text of an HTML fragment: tags, scripts and entities gone, paragraphs on their own lines."""
    if not fragment or not fragment.strip():
        return ""
    if "<" not in fragment:
        return _squeeze(html.unescape(fragment))
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except Exception:  # lxml raises several types on hopeless markup; fall back to a regex
        return _squeeze(html.unescape(re.sub(r"<[^>]*>", " ", fragment)))
    for element in root.iter("script", "style", "noscript"):
        element.drop_tree()
    for element in root.iter(*_BLOCK_TAGS):
        element.tail = "\n" + (element.tail or "")
    return _squeeze(root.text_content())


def _clean(value: str | None) -> str | None:
    return " ".join(value.split()) or None if value else None


def _squeeze(text: str) -> str:
    """Collapse runs of spaces within lines and blank lines between them."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _feed_language(label: str | None, text: str) -> str | None:
    return normalise_language(label) or detect_language(text)
