"""What runs inside an extraction worker process: a warm-up (the pool initializer) and one job per page.

Both are module-level and picklable; the forkserver preloads this module, so trafilatura and lxml are
imported once and every worker starts from that image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from extractors.articles import extract_article
from extractors.language import detect_language
from extractors.rawpages import pack
from newsmon.errors import ExtractionError
from newsmon.records import ExtractedText


@dataclass(frozen=True)
class PageOutcome:
    """Extracted text, or the reason there is none; and the packed page when raw pages are kept."""

    extracted: ExtractedText | None
    error: str | None = None
    packed: tuple[str, bytes] | None = None


def warm_up() -> None:
    """Pool initializer: load the language model (~0.5 s) once per worker, before its first page."""
    detect_language("This sentence is long enough for the language detector to load its model.")


def extract_page(body: bytes, url: str, content_type: str | None, charset: str | None,
                 feed_date: datetime | None, keep_raw: bool) -> PageOutcome:
    """Extract one page (never raises ExtractionError: it becomes `error`), packing the body if asked."""
    packed = pack(body) if keep_raw else None
    try:
        ext = extract_article(body, url, content_type=content_type, http_encoding=charset, feed_date=feed_date)
    except ExtractionError as exc:
        return PageOutcome(None, str(exc), packed)
    return PageOutcome(ext, None, packed)
