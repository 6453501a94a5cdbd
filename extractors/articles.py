"""Page bytes to article text and metadata via trafilatura (pure: no network, clock or environment).

``extract_article`` is the only way a fetched page becomes text. It refuses what is not HTML, decodes
the bytes itself (HTTP charset, then the page's declaration, then detection), runs trafilatura without
comments, and retries once in recall mode when the first pass finds too little. ``from_feed`` is the
fallback the pipeline uses when a page cannot be fetched or extracted. Everything here is module-level
and picklable, so it can run in a process pool.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree
from lxml.html import HtmlElement
from trafilatura import bare_extraction, load_html
from trafilatura.settings import Document

from extractors.encoding import charset_from_content_type, decode_html
from extractors.language import choose_language, declared_language, detect_language, normalise_language
from newsmon.errors import ExtractionEmpty, ExtractionError
from newsmon.records import Entry, ExtractedText

__all__ = ["MIN_WORDS", "detect_language", "extract_article", "from_feed"]

# Fewer words than this after the first pass triggers a recall retry; after the retry, ExtractionEmpty.
MIN_WORDS = 25
# Largest page we inflate when a server sent gzip bytes without saying so.
MAX_INFLATED_BYTES = 20_000_000
# Chosen by measurement (python -m bench.extraction_quality). On the 181-page article-extraction
# benchmark favor_precision lifted token P/R/F1 from 0.947/0.977/0.962 to 0.966/0.975/0.971 and kept
# snippet F1 on trafilatura's 898 evaluation pages level (0.927 -> 0.926); fast=True saved ~25% of the
# time but lost recall on both. With link-block pruning the pipeline scores 0.970/0.980/0.975 there.
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "include_formatting": False,
    "include_links": False,
    "include_images": False,
    "favor_precision": True,
    "favor_recall": False,
    "fast": False,
}
# (magic bytes, what the page is); checked before the Content-Type, which servers get wrong.
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (e.g. an office document)"),
    (b"\xd0\xcf\x11\xe0", "a legacy office document"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
)
_NOT_HTML_TYPES = (
    ("application/pdf", "a PDF document"),
    ("image/", "an image"),
    ("application/json", "JSON"),
    ("+json", "JSON"),
    ("text/json", "JSON"),
    ("audio/", "an audio file"),
    ("video/", "a video"),
    ("application/zip", "a ZIP archive"),
    ("application/msword", "an office document"),
    ("application/vnd.", "an office document"),
    ("font/", "a font"),
    ("text/css", "a stylesheet"),
    ("javascript", "a script"),
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_PUBLISHED_XPATHS = (
    "//meta[@property='article:published_time' or @property='og:published_time']/@content",
    "//meta[@itemprop='datePublished']/@content",
    "//*[@itemprop='datePublished']/@datetime",
    "//meta[@name='pubdate' or @name='publishdate' or @name='publish-date' or @name='article:published_time'"
    " or @name='parsely-pub-date' or @name='sailthru.date' or @name='dc.date.issued'"
    " or @name='DC.date.issued']/@content",
)
LINK_BLOCK_MIN_LINKS = 3
LINK_BLOCK_MAX_PLAIN_WORDS = 25
_LINK_BLOCK_TAGS = ("ul", "ol", "div", "section", "aside", "nav", "header", "footer", "p", "dl")
_SUBHEADINGS = frozenset({"h2", "h3", "h4", "h5", "h6"})
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


def extract_article(
    body: bytes,
    url: str,
    *,
    content_type: str | None = None,
    http_encoding: str | None = None,
    feed_date: datetime | None = None,
) -> ExtractedText:
    """Article text and metadata of a fetched page.

    Raises ExtractionError when the page is not HTML (PDF, image, JSON, ...) or the extractor fails, and
    ExtractionEmpty when neither the normal pass nor the recall retry finds MIN_WORDS words of text.
    """
    try:
        return _extract(body, url, content_type, http_encoding, feed_date)
    except ExtractionError:
        raise
    except Exception as err:  # trafilatura, lxml and charset detection raise many types on odd pages
        raise ExtractionError(
            f"extraction failed ({type(err).__name__}: {err}); kept the feed summary, save the page for a test",
            url=url,
        ) from err


def _extract(
    body: bytes, url: str, content_type: str | None, http_encoding: str | None, feed_date: datetime | None
) -> ExtractedText:
    body = _inflate(body, url)
    _refuse_non_html(body, url, content_type)
    decoded = decode_html(body, http_encoding or charset_from_content_type(content_type))
    notes = [f"charset {decoded.encoding} ({decoded.source})"] if decoded.source == "detected" else []
    tree = _parse(decoded.text, url)
    prune_link_blocks(tree)
    document, status = _extract_text(tree, url, feed_date, notes)
    published, date_note = published_at(tree, document.date, feed_date)
    text = unicodedata.normalize("NFC", document.text or "")
    return ExtractedText(
        text=text,
        title=_clean(document.title),
        author=_clean(document.author),
        site_name=_clean(document.sitename),
        published_at=published,
        canonical_url=canonical_url(tree, url),
        language=choose_language(declared_language(tree), text),
        status=status,
        note="; ".join([*notes, date_note] if date_note else notes) or None,
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
        published_at=_as_utc(entry.published_at or entry.updated_at),
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


def published_at(
    tree: HtmlElement, htmldate: str | None, feed_date: datetime | None
) -> tuple[datetime | None, str | None]:
    """Publication time from page metadata, else htmldate's day, else the feed (then with a note)."""
    feed_utc = _as_utc(feed_date)
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
            if urlsplit(absolute).scheme in {"http", "https"} and urlsplit(absolute).netloc:
                return absolute
    return None


def _inflate(body: bytes, url: str) -> bytes:
    """Undo a gzip layer left on the body by a server that did not declare it."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    try:
        return zlib.decompressobj(wbits=31).decompress(body, MAX_INFLATED_BYTES)
    except zlib.error as err:
        raise ExtractionError("page is a broken gzip stream; re-fetch it", url=url) from err


def _refuse_non_html(body: bytes, url: str, content_type: str | None) -> None:
    if not body.strip():
        raise ExtractionEmpty("page body is empty; use the feed summary", url=url)
    what = _sniff_binary(body) or _from_content_type(content_type) or _sniff_json(body)
    if what:
        raise ExtractionError(f"page is {what}, not HTML; use the feed summary", url=url)


def _sniff_binary(body: bytes) -> str | None:
    for magic, what in _MAGIC:
        if body.startswith(magic):
            return what
    if body[8:12] == b"WEBP" and body.startswith(b"RIFF"):
        return "a WebP image"
    if body[4:8] == b"ftyp":
        return "an MP4 video"
    return None


def _from_content_type(content_type: str | None) -> str | None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    for marker, what in _NOT_HTML_TYPES:
        if marker in media_type:
            return f"{what} ({media_type})"
    return None


def _sniff_json(body: bytes) -> str | None:
    head = body[:64].lstrip()
    if not head.startswith((b"{", b"[")):
        return None
    try:
        json.loads(body)
    except ValueError:
        return None
    return "JSON"


def _parse(text: str, url: str) -> HtmlElement:
    # lxml refuses str input that carries an XML encoding declaration, and the text is decoded already.
    tree = load_html(_XML_DECLARATION.sub("", text, count=1))
    if tree is None:
        raise ExtractionEmpty("page could not be parsed as HTML; use the feed summary", url=url)
    return tree


def prune_link_blocks(tree: HtmlElement) -> int:
    """Remove headline lists, menus and other blocks made of links (and the heading above them).

    trafilatura drops <aside> and blocks with telling class names, but a "Latest news" column built from
    plain <div>s can end up in the text, and its headlines then read as if the article said them. A block
    goes when it holds at least LINK_BLOCK_MIN_LINKS links, most of its words are link text and it has
    fewer than LINK_BLOCK_MAX_PLAIN_WORDS words outside links, so article paragraphs are never touched.
    Returns how many blocks were removed.
    """
    stats = _link_stats(tree)
    marked = [el for el in tree.iter(*_LINK_BLOCK_TAGS) if _is_link_block(stats.get(el))]
    marked_set = set(marked)
    outermost = [el for el in marked if not any(a in marked_set for a in el.iterancestors())]
    for element in outermost:
        heading = element.getprevious()
        if heading is not None and heading.tag in _SUBHEADINGS and len(heading.text_content().split()) <= 8:
            heading.drop_tree()
        element.drop_tree()
    return len(outermost)


def _is_link_block(stat: tuple[int, int, int] | None) -> bool:
    if stat is None:
        return False
    words, link_words, links = stat
    plain = words - link_words
    return links >= LINK_BLOCK_MIN_LINKS and plain < LINK_BLOCK_MAX_PLAIN_WORDS and link_words >= 0.7 * words


def _link_stats(tree: HtmlElement) -> dict[HtmlElement, tuple[int, int, int]]:
    """(words, words inside links, links) for every element, children before parents, no recursion."""
    stats: dict[HtmlElement, tuple[int, int, int]] = {}
    for element in reversed(list(tree.iter(etree.Element))):
        if _holds_no_text(element):
            stats[element] = (0, 0, 0)
            continue
        words, link_words, links = len((element.text or "").split()), 0, 0
        for child in element:
            child_words, child_links, child_count = stats.get(child, (0, 0, 0))
            words += child_words + len((child.tail or "").split())
            link_words += child_links
            links += child_count
        if element.tag == "a":
            link_words, links = words, links + 1
        stats[element] = (words, link_words, links)
    return stats


def _holds_no_text(element: HtmlElement) -> bool:
    """Styles and executable scripts; JSON-LD, templates and script-held markup count as text."""
    if element.tag == "script":
        kind = (element.get("type") or "javascript").lower()
        return any(code in kind for code in ("javascript", "module", "ecmascript"))
    return element.tag in {"style", "svg"}


def _extract_text(tree: HtmlElement, url: str, feed_date: datetime | None, notes: list[str]) -> tuple[Document, str]:
    """One normal pass, then one recall pass if the first found fewer than MIN_WORDS words."""
    first = _run_trafilatura(tree, url, feed_date, recall=False)
    words = _word_count(first)
    if words >= MIN_WORDS and first is not None:
        return first, "ok"
    second = _run_trafilatura(tree, url, feed_date, recall=True)
    if second is None or _word_count(second) < MIN_WORDS:
        raise ExtractionEmpty(
            f"no article text found ({max(words, _word_count(second))} words, recall retry included); "
            "use the feed summary",
            url=url,
        )
    notes.append(f"recall retry: first pass found {words} words")
    return second, "recall"


def _run_trafilatura(tree: HtmlElement, url: str, feed_date: datetime | None, *, recall: bool) -> Document | None:
    options = TRAFILATURA_OPTIONS | ({"favor_recall": True, "favor_precision": False} if recall else {})
    result = bare_extraction(
        tree, url=url, with_metadata=True, date_extraction_params=_date_params(feed_date), **options
    )
    return result if isinstance(result, Document) else None


def _date_params(feed_date: datetime | None) -> dict[str, Any]:
    """htmldate settings; a story is not dated after its feed entry (plus a day of time-zone slack).

    Without a feed date htmldate bounds dates by today itself: the one clock read, inside the library.
    """
    params: dict[str, Any] = {"original_date": True, "extensive_search": True}
    feed_utc = _as_utc(feed_date)
    if feed_utc is not None:
        params["max_date"] = (feed_utc + timedelta(days=1)).strftime("%Y-%m-%d")
    return params


def _word_count(document: Document | None) -> int:
    """Words of the text; Chinese and Japanese, written without spaces, count two characters a word."""
    if document is None or not document.text:
        return 0
    return len(document.text.split()) + len(_CJK.findall(document.text)) // 2


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
    return _as_utc(parsed)


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _clean(value: str | None) -> str | None:
    return " ".join(value.split()) or None if value else None


def _squeeze(text: str) -> str:
    """Collapse runs of spaces within lines and blank lines between them."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _feed_language(label: str | None, text: str) -> str | None:
    return normalise_language(label) or detect_language(text)
