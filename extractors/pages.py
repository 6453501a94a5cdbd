"""Fetch each new entry's page and extract its text: fetching is async, extraction runs in a process pool,
and the two overlap. Pages in flight are bounded, so memory does not grow with the run."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from functools import partial

from extractors.articles import extract_article, from_feed
from extractors.http import Fetcher
from newsmon.config import HttpSettings
from newsmon.errors import ExtractionError, FetchError
from newsmon.records import Article, Entry, ExtractedText

POOL_MIN_PAGES = 8  # below this a process pool costs more than it saves


def fetch_articles(entries: Sequence[Entry], feed_names: Mapping[str, str], settings: HttpSettings, *,
                   now: datetime, workers: int | None = None, on_page: Callable[[], None] | None = None,
                   ) -> tuple[list[Article], list[tuple[str, str, str]]]:
    """Articles for `entries` (same order), plus (feed_url, url, error) for every page that fell back.

    `on_page` is called once per finished page (progress display).
    """
    return asyncio.run(_fetch_all(entries, feed_names, settings, now, workers or os.cpu_count() or 1,
                                  on_page or (lambda: None)))


@contextmanager
def extraction_pool(pages: int, workers: int) -> Iterator[Executor]:
    if pages < POOL_MIN_PAGES or workers < 2:
        with ThreadPoolExecutor(max_workers=1) as ex:
            yield ex
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["extractors.articles"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        # Start the workers now: started lazily, the first submit blocks the event loop while the forkserver
        # imports trafilatura, and every fetch in flight then loses that time from its deadline.
        for started in [ex.submit(int) for _ in range(workers)]:
            started.result()
        yield ex


async def _fetch_all(entries: Sequence[Entry], feed_names: Mapping[str, str], settings: HttpSettings,
                     now: datetime, workers: int, on_page: Callable[[], None],
                     ) -> tuple[list[Article], list[tuple[str, str, str]]]:
    in_flight = asyncio.Semaphore(settings.max_concurrency + 2 * workers)

    async def one(fetcher: Fetcher, pool: Executor, entry: Entry) -> tuple[ExtractedText, str | None]:
        result = await _one(fetcher, pool, in_flight, entry, settings)
        on_page()
        return result

    with extraction_pool(len(entries), workers) as pool:
        async with Fetcher(settings) as fetcher:
            done = await asyncio.gather(*(one(fetcher, pool, e) for e in entries))
    articles, errors = [], []
    for entry, (ext, err) in zip(entries, done, strict=True):
        articles.append(build_article(entry, ext, feed_names.get(entry.feed_url, entry.feed_url), now))
        if err:
            errors.append((entry.feed_url, entry.link, err))
    return articles, errors


async def _one(fetcher: Fetcher, pool: Executor, in_flight: asyncio.Semaphore, entry: Entry,
               settings: HttpSettings) -> tuple[ExtractedText, str | None]:
    if not entry.link:
        return from_feed(entry, "the entry has no link"), None
    async with in_flight:
        try:
            resp = await fetcher.get(entry.link, max_bytes=settings.max_page_bytes)
        except FetchError as exc:
            return from_feed(entry, str(exc)), str(exc)
        job = partial(extract_article, resp.body, resp.final_url, content_type=resp.content_type,
                      http_encoding=resp.charset, feed_date=entry.published_at)
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, job), None
        except ExtractionError as exc:
            return from_feed(entry, str(exc)), str(exc)
        except Exception as exc:  # a crashed worker or an extractor bug must not sink the run
            msg = f"{entry.link}: extraction crashed ({type(exc).__name__}: {exc}); kept the feed summary"
            return from_feed(entry, msg), msg


def build_article(entry: Entry, ext: ExtractedText, feed_name: str, now: datetime) -> Article:
    title = entry.title or ext.title or entry.link
    text = ext.text
    return Article(
        article_id=entry.article_id, feed_url=entry.feed_url, feed_name=feed_name, entry_key=entry.key,
        url=entry.link, title=title, summary=entry.summary, text=text, fetched_at=now,
        canonical_url=ext.canonical_url, author=ext.author or entry.author, site_name=ext.site_name,
        language=ext.language or entry.language, published_at=entry.published_at or ext.published_at,
        word_count=len(text.split()), extraction_status=ext.status, extraction_note=ext.note,
        content_hash=Article.hash_content(title, text), updated_at=entry.updated_at, guid=entry.guid)
