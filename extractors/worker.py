"""What runs inside an extraction worker process: a warm-up (the pool initializer), one job per page, and one
per feed the run's poll hands to the pool (extractors.poller.FeedParsers).

All are module-level and picklable; the forkserver runs the warm-up once (extractors.preload), so
trafilatura, lxml and the language model are loaded once and every worker starts from that image. The flow
process imports this module too (to submit jobs), but never trafilatura: extractors.articles is imported
by the warm-up, inside the pool.
"""

from __future__ import annotations

import ctypes
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extractors.feeds import ParsedFeed, read_feed
from extractors.language import detect_language
from extractors.lifeline import tie_pool_worker
from extractors.rawpages import pack
from newsmon.errors import ExtractionError
from newsmon.records import ExtractedText

# After a page this large, the worker hands the C heap's free pages back to the system (glibc's malloc_trim).
# The parse trees of a large page leave free memory scattered through the heap, which malloc keeps: a worker's
# own memory grew to ~90 MB after the corpus's largest pages (up to 2.9 MB) and stayed there; trimmed, ~50-64 MB.
# Not after every page, because the next page faults the returned memory back in: that cost ~4% of the
# extraction's CPU. After pages of 256 KiB or more (~27% of the corpus's pages; the median is 141 KB) a worker's
# own memory between pages peaks at 50-51 MB over the corpus twice, against 59 MB with a 1 MiB limit, for a
# CPU cost within this machine's noise (0-5% a page in two alternated pairs; ~1% estimated: ~0.7 ms a trim).
TRIM_AFTER_BYTES = 256 << 10


def heap_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS): nothing to trim there."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


_trim = heap_trim()


def release_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; a no-op where there is none)."""
    if _trim is not None:
        _trim(0)


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
    """Build, before the forkserver forks, the tables extraction builds on first use: the workers then share
    one copy (lookups do not write to them) instead of each building its own.

    - trafilatura's justext fallback classifies paragraphs with the stoplists of every language merged (154k
      words), lower-cased into a frozenset that justext caches per stoplist object: ~0.5 s of CPU and ~15 MB a
      worker. trafilatura would also keep the merged words as a tuple of strings (~12 MB more), used only as
      that cache's key: the key here is AllStoplists, which reads the same words from justext's files when
      iterated. A tiny page through the fallback builds the frozenset.
    - htmldate collects the month names of every dateparser locale (all ~200 loaded: ~9 MB) for the first
      free-text date candidate, and our date parser loads and compiles its 24 languages for the first string
      none of them reads (~11 MB, ~0.3 s of CPU). Each worker did both within its first pages: after the
      corpus a worker held 19 MB of Python objects of its own, 3.6 MB with these built here.
    """
    from htmldate.extractors import month_words
    from lxml.html import fromstring
    from trafilatura import external

    from extractors.metadata import date_parser

    if external.JT_STOPLIST is None:
        external.JT_STOPLIST = AllStoplists()  # type: ignore[assignment]
    external.try_justext(fromstring("<html><body><p>Warm-up paragraph.</p></body></html>"), None, None)
    month_words()
    date_parser().get_date_data("99 zzzz")  # read by no language: every one is loaded and tried


class AllStoplists:
    """Every justext stoplist's words, as justext.get_stoplist reads them (decoded, lower-cased), read from its
    files each time it is iterated (justext does so once, for its cache): what trafilatura's merged stoplist
    holds, without keeping a string per word. Hashed by identity, so justext's cache keeps one frozenset for it."""

    __slots__ = ("_languages",)

    def __init__(self) -> None:
        from justext.utils import get_stoplists

        self._languages = tuple(sorted(get_stoplists()))

    def __iter__(self) -> Iterator[str]:
        for language in self._languages:  # one file's lines at a time: no list of every word
            for word in (pkgutil.get_data("justext", f"stoplists/{language}.txt") or b"").splitlines():
                yield word.decode("utf8").lower()


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
    finally:
        if len(body) >= TRIM_AFTER_BYTES:
            release_heap()
    return PageOutcome(ext, None, packed)


def parse_feed_body(body: bytes, feed_url: str, **how: Any) -> ParsedFeed:
    """read_feed: a pool worker's job while the run polls (or the poller thread's). Here, in a module the
    forkserver imports, so that a worker unpickling the job imports nothing more (the poller would bring the
    HTTP client: ~12 MB a worker). After a large feed the heap's free pages go back, as after a large page."""
    try:
        return read_feed(body, feed_url, **how)
    finally:
        if len(body) >= TRIM_AFTER_BYTES:
            release_heap()
