"""What runs inside an extraction worker process: a warm-up (the pool initializer) and one job per page.

Both are module-level and picklable; the forkserver runs the warm-up once (extractors.preload), so
trafilatura, lxml and the language model are loaded once and every worker starts from that image. The flow
process imports this module too (to submit jobs), but never trafilatura: extractors.articles is imported
by the warm-up, inside the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from extractors.language import detect_language
from extractors.lifeline import tie_pool_worker
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
    """Import trafilatura (~1 s) and load the language model (~0.5 s) before the first page."""
    import extractors.articles  # noqa: F401

    detect_language("This sentence is long enough for the language detector to load its model.")


def share_tables() -> None:
    """Build, before the forkserver forks, the tables trafilatura's justext fallback builds on its first page.

    That fallback classifies paragraphs with the stoplists of every language merged (154k words), held by
    trafilatura and, lower-cased into a frozenset, by justext: ~0.5 s of CPU and ~30 MB in each worker that
    built them itself; built here, the workers share one copy (lookups do not write to it). A tiny page
    through the fallback builds both.
    """
    from lxml.html import fromstring
    from trafilatura.external import try_justext

    try_justext(fromstring("<html><body><p>Warm-up paragraph.</p></body></html>"), None, None)


def pool_worker_init() -> None:
    """The process pool's initializer: tie the worker to the forkserver (it dies with the run), then warm up."""
    tie_pool_worker()
    warm_up()


def extract_page(body: bytes, url: str, content_type: str | None, charset: str | None,
                 feed_date: datetime | None, keep_raw: bool) -> PageOutcome:
    """Extract one page (never raises ExtractionError: it becomes `error`), packing the body if asked."""
    from extractors.articles import extract_article  # loaded by warm_up already

    packed = pack(body) if keep_raw else None
    try:
        ext = extract_article(body, url, content_type=content_type, http_encoding=charset, feed_date=feed_date)
    except ExtractionError as exc:
        return PageOutcome(None, str(exc), packed)
    return PageOutcome(ext, None, packed)
