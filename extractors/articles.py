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

from lxml.html import HtmlElement
from trafilatura import bare_extraction, load_html
from trafilatura.settings import Document

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
    # lxml refuses str input that carries an XML encoding declaration, and the text is decoded already.
    tree = load_html(_XML_DECLARATION.sub("", text, count=1))
    if tree is None:
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
