"""Page bytes to article text (trafilatura) and metadata (pure: no network, clock or environment).

``extract_article`` is the only way a fetched page becomes text. It refuses what is not HTML, decodes
the bytes itself (HTTP charset, then the page's declaration, then detection), removes link blocks from the
tree, runs trafilatura without comments, drops link lines ("Read more: <headline>", teaser cards: see
extractors.linkblocks) from its output, and retries once in recall mode when the first pass finds too
little. Title, author and site name come from extractors.pagemeta, the date from extractors.metadata
(trafilatura's own metadata pass cost ~8 ms a page, mostly for fields newsmon never uses: python -m
bench.metadata_quality). The fallback for a page that cannot be fetched or extracted is
extractors.summary.from_feed. Everything here is module-level and picklable, so it can run in a process pool.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

import lxml.html
from lxml import etree
from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HtmlProcessingInstruction
from trafilatura import bare_extraction
from trafilatura.settings import Document
from trafilatura.utils import DOCTYPE_TAG, FAULTY_HTML, INVALID_XML_CHARS

from extractors.encoding import charset_from_content_type, decode_html
from extractors.language import choose_language, declared_language, detect_language
from extractors.linkblocks import LinkLines, LinkStats, link_lines, prune_link_blocks
from extractors.metadata import canonical_url, published_at
from extractors.pagemeta import json_ld_objects, page_meta
from extractors.sniff import inflate, refuse_non_html
from newsmon.errors import ExtractionEmpty, ExtractionError
from newsmon.records import ExtractedText

__all__ = ["MIN_WORDS", "canonical_url", "detect_language", "extract_article", "prune_link_blocks",
           "published_at"]

# Fewer words than this after the first pass triggers a recall retry; after the retry, ExtractionEmpty.
MIN_WORDS = 25
# Chosen by measurement (python -m bench.extraction_quality). On the 181-page article-extraction
# benchmark favor_precision lifted token P/R/F1 from 0.947/0.977/0.962 to 0.966/0.975/0.971 and kept
# snippet F1 on trafilatura's 898 evaluation pages level (0.927 -> 0.926); fast=True saved ~25% of the
# time but lost recall on both. With link-block pruning the pipeline scores 0.970/0.980/0.975 there,
# with the link-line filter as well 0.973/0.978/0.975.
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
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# trafilatura's parser settings, with a class lookup done in C: lxml.html's own calls a Python method for every
# element lxml hands to Python (~1M calls per 400 pages, 5-7% of extracting a page). Every element is an
# HtmlElement all the same; only lxml.html's form classes (InputElement, ...) are gone, which nothing uses.
_PARSER = etree.HTMLParser(collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True,
                           remove_pis=True)
_PARSER.set_element_class_lookup(etree.ElementDefaultClassLookup(
    element=HtmlElement, comment=HtmlComment, pi=HtmlProcessingInstruction, entity=HtmlEntity))
# Characters XML forbids (trafilatura's INVALID_XML_CHARS), looked for in UTF-8: C0 controls but tab, newline
# and carriage return; U+FFFE and U+FFFF.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))
_NONCHARACTERS = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")



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
    body = inflate(body, url)
    refuse_non_html(body, url, content_type)
    decoded = decode_html(body, http_encoding or charset_from_content_type(content_type))
    notes = [f"charset {decoded.encoding} ({decoded.source})"] if decoded.source == "detected" else []
    tree = _parse(decoded.text, url)
    links = LinkStats(tree)
    prune_link_blocks(tree, links)
    document, status = _extract_text(tree, url, notes, link_lines(tree, links))
    json_ld = json_ld_objects(tree)
    meta = page_meta(tree, json_ld)
    published, date_note = published_at(tree, json_ld, url, feed_date)
    text = unicodedata.normalize("NFC", document.text or "")
    return ExtractedText(
        text=text,
        title=meta.title,
        author=meta.author,
        site_name=meta.site_name,
        published_at=published,
        canonical_url=canonical_url(tree, url),
        language=choose_language(declared_language(tree), text),
        status=status,
        note="; ".join([*notes, date_note] if date_note else notes) or None,
    )


def _parse(text: str, url: str) -> HtmlElement:
    """The page's tree, as trafilatura's load_html builds it (the same repairs, the same refusals), faster.

    The repairs: characters XML forbids removed, a DOCTYPE closed with "/>" dropped (libxml2 bug 1955915), a
    self-closing <html/> opened. The text goes to lxml as UTF-8, so the scan for forbidden characters is a
    byte table's (~0.1 ms a 250 KB page, where the regex took ~1 ms) and the regex runs only when one is
    there. A text that does not say "html" in its first 50 characters and parses to fewer than two top-level
    elements is not a page.
    """
    text = _XML_DECLARATION.sub("", text, count=1)  # decoded already: a declared charset no longer holds
    beginning = text[:50].lower()
    data = text.encode("utf-8", "surrogatepass")
    repaired = False
    if len(data.translate(None, _CONTROL_BYTES)) != len(data) or any(c in data for c in _NONCHARACTERS):
        text, repaired = INVALID_XML_CHARS.sub("", text), True
    if "doctype" in beginning:
        first, _, rest = text.partition("\n")
        if (fixed := DOCTYPE_TAG.sub("", first, count=1)) != first:
            text, repaired = fixed + "\n" + rest, True
    for line in text[:4096].splitlines()[:4]:
        if "<html" in line and line.endswith("/>"):
            text, repaired = FAULTY_HTML.sub(r"\1>", text, count=1), True
            break
    try:
        tree = lxml.html.fromstring(text.encode("utf-8", "surrogatepass") if repaired else data, parser=_PARSER)
    except etree.LxmlError:  # an empty document
        tree = None
    if tree is None or ("html" not in beginning and len(tree) < 2):
        raise ExtractionEmpty("page could not be parsed as HTML; use the feed summary", url=url)
    return tree


def _extract_text(tree: HtmlElement, url: str, notes: list[str], lines: LinkLines) -> tuple[Document, str]:
    """One normal pass, then one recall pass if the first found fewer than MIN_WORDS words (link lines
    dropped from both before counting)."""
    first = _run_trafilatura(tree, url, lines, recall=False)
    words = _word_count(first)
    if words >= MIN_WORDS and first is not None:
        return first, "ok"
    second = _run_trafilatura(tree, url, lines, recall=True)
    if second is None or _word_count(second) < MIN_WORDS:
        raise ExtractionEmpty(
            f"no article text found ({max(words, _word_count(second))} words, recall retry included); "
            "use the feed summary",
            url=url,
        )
    notes.append(f"recall retry: first pass found {words} words")
    return second, "recall"


def _run_trafilatura(tree: HtmlElement, url: str, lines: LinkLines, *, recall: bool) -> Document | None:
    """Text only: title, author, site name and date come from extractors.pagemeta and .metadata."""
    options = TRAFILATURA_OPTIONS | ({"favor_recall": True, "favor_precision": False} if recall else {})
    result = bare_extraction(tree, url=url, with_metadata=False, **options)
    if not isinstance(result, Document):
        return None
    result.text = lines.drop_from(result.text or "")
    return result


def _word_count(document: Document | None) -> int:
    """Words of the text; Chinese and Japanese, written without spaces, count two characters a word."""
    if document is None or not document.text:
        return 0
    return len(document.text.split()) + len(_CJK.findall(document.text)) // 2
