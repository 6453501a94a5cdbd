"""Fetch each new entry's page and extract its text: fetching is async, extraction runs in a process pool,
and the two overlap. Pages in flight are bounded, so memory does not grow with the run."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.forkserver
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from itertools import zip_longest
from urllib.parse import urlsplit

from extractors.budget import LeftForLater, PageBudget
from extractors.http import Fetcher
from extractors.lifeline import main_module_hidden, safe_children
from extractors.rawpages import unpack
from extractors.robots import RobotsCache, RobotsCheck
from extractors.summary import from_feed
from extractors.worker import PageOutcome, extract_page, pool_worker_init, warm_up
from newsmon.config import HttpSettings
from newsmon.errors import ExtractionError, FetchError
from newsmon.records import Article, Entry, ExtractedText, RawPage

POOL_MIN_PAGES = 8  # below this a process pool costs more than it saves
STREAM_AHEAD = 1  # batches stream_articles starts past the one its caller holds


@dataclass(frozen=True)
class Fetched:
    """One batch of pages: articles (entry order), pages that fell back (feed_url, url, error), raw pages, and
    the entries whose pages were not fetched because their host or the run had used its time budget (with the
    reason): they make no article, and the next run fetches them (extractors.budget)."""

    articles: list[Article]
    errors: list[tuple[str, str, str]]
    raw_pages: list[RawPage]
    left: list[tuple[Entry, str]] = field(default_factory=list)


def fetch_articles(entries: Sequence[Entry], feed_names: Mapping[str, str], settings: HttpSettings, *,
                   now: datetime, workers: int | None = None, keep_raw: bool = False,
                   on_page: Callable[[], None] | None = None, pool: Executor | None = None,
                   budget: PageBudget | None = None, robots: RobotsCache | None = None) -> Fetched:
    """Fetch and extract the pages of `entries`; with keep_raw, also their compressed bodies.

    `pool` is an `extraction_pool` shared by several calls (a run's batches); without one, a pool sized to
    this call is started and stopped. `on_page` is called once per finished page (progress display).
    `budget` is the run's time budget for pages, shared by its batches (one from `settings` when None);
    `robots` the run's robots.txt per host, shared too (with `[http] robots`; a fresh one when None).
    """
    tick = on_page or (lambda: None)
    budget = budget or PageBudget.from_settings(settings)
    robots = (robots or RobotsCache()) if settings.robots else None
    if pool is not None:
        return asyncio.run(_fetch_all(entries, feed_names, settings, now, pool, keep_raw, tick, budget, robots))
    with extraction_pool(len(entries), workers or default_workers()) as own:
        return asyncio.run(_fetch_all(entries, feed_names, settings, now, own, keep_raw, tick, budget, robots))


@contextmanager
def extraction_pool(pages: int, workers: int, preload: Sequence[str] = ()) -> Iterator[Executor]:
    """A process pool sized to the cores, or one thread for few pages.

    Workers are forks of a forkserver that has imported trafilatura and loaded the language model
    (extractors.preload), so a pool starts in well under a second and its workers share that memory.
    The forkserver imports nothing from the working folder, the workers nothing of this process's main
    module, and they end when this process ends, SIGKILLed or not (extractors.lifeline).
    `preload` names further modules the forkserver imports first (code the caller will run in the pool).
    """
    if pages < POOL_MIN_PAGES or workers < 2:
        with ThreadPoolExecutor(max_workers=1, initializer=warm_up) as ex:
            yield ex
        return
    ctx = start_forkserver(preload)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=pool_worker_init) as ex:
        # Start the workers now: started lazily, the first submit blocks the event loop while the forkserver
        # imports trafilatura, and every fetch in flight then loses that time from its deadline. (The pool
        # starts no other worker: it replaces none.) They import nothing of this process's main module.
        with main_module_hidden():
            started = [ex.submit(int) for _ in range(workers)]
        for worker in started:
            worker.result()
        yield ex


class PoolOnDemand:
    """A run's one extraction pool, started by the first stage that asks for it, from any thread, and closed
    with the run: the poll asks when a feed needs parsing (`for_parsing`: parsed on every core), the pages
    stage when it has pages (`get`). A run whose feeds all answer 304 starts none."""

    def __init__(self, workers: int, preload: Sequence[str] = ()) -> None:
        self.workers, self.preload = workers, tuple(preload)
        self._stack = ExitStack()
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    def get(self, pages: int) -> Executor:
        """The pool: started now, sized by `pages` (extraction_pool), unless it runs already."""
        with self._lock:
            if self._pool is None:
                self._pool = self._stack.enter_context(extraction_pool(pages, self.workers, self.preload))
            return self._pool

    def for_parsing(self) -> Executor | None:
        """A process pool to parse feeds in, or None on one core (the poller's thread parses then)."""
        return self.get(POOL_MIN_PAGES) if self.workers >= 2 else None

    def __enter__(self) -> PoolOnDemand:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def start_forkserver(preload: Sequence[str] = ()) -> multiprocessing.context.ForkServerContext:
    """The context of extraction_pool's forkserver, which is started unless it runs already. Starting it returns
    at once: its imports (extractors.preload, then `preload`) run in it, and the first fork waits for them. So a
    caller with time on its hands (a run waiting for Prefect's server) can start it early; later pools then fork
    from it, with the preload it was started with."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["extractors.preload", *preload])
    with safe_children():  # started as `python -c`: nothing from the working folder on its path
        multiprocessing.forkserver.ensure_running()
    return ctx


def stream_articles(batches: Sequence[Sequence[Entry]], feed_names: Mapping[str, str], settings: HttpSettings, *,
                    now: datetime, pool: Executor, keep_raw: bool = False, on_page: Callable[[], None] | None = None,
                    budget: PageBudget | None = None, robots: RobotsCache | None = None,
                    ahead: int = STREAM_AHEAD) -> Generator[Fetched, None, None]:
    """`fetch_articles` for each of `batches` in turn, yielding each batch's pages once they are all done.

    The pages are fetched and extracted by one event loop in a thread of its own, which starts the next
    batch while the caller works on the one just yielded (tags and stores it): the pool no longer waits for
    that work, nor does a batch's last slow pages keep the next batch's pages from starting. At most `ahead`
    batches past the one the caller holds are started, so memory is bounded by batches, not by the run.
    Closing the generator early cancels the pages still in flight.
    """
    robots = (robots or RobotsCache()) if settings.robots else None
    links = [e.link for batch in batches for e in batch if e.link]
    handoff: queue.Queue[Fetched | BaseException] = queue.Queue()
    ready = threading.Event()
    loop: asyncio.AbstractEventLoop | None = None
    room: asyncio.Semaphore | None = None  # batches started and not yet done with by the caller
    producer: asyncio.Task[None] | None = None

    async def in_turn(pages: _Pages, batch: Sequence[Entry], before: asyncio.Task[None] | None) -> None:
        got: Fetched | BaseException
        try:
            got = await pages.batch(batch, feed_names)
        except Exception as exc:  # an extractor bug: the caller raises it for this batch
            got = exc
        if before is not None:
            await before  # batches are handed over in order
        handoff.put(got)

    async def produce() -> None:
        nonlocal loop, room, producer
        loop, room, producer = asyncio.get_running_loop(), asyncio.Semaphore(ahead + 1), asyncio.current_task()
        ready.set()
        try:
            async with _pages(settings, pool, keep_raw, now, on_page, budget, robots, links) as pages:
                async with asyncio.TaskGroup() as group:
                    last: asyncio.Task[None] | None = None
                    for batch in batches:
                        await room.acquire()
                        last = group.create_task(in_turn(pages, batch, last))
        except Exception as exc:  # the HTTP client or robots.txt set-up failed: no batch was handed over
            handoff.put(exc)

    def run() -> None:
        with suppress(asyncio.CancelledError):  # the caller closed the stream early
            asyncio.run(produce())

    def tell(callback: Callable[[], object]) -> None:
        with suppress(RuntimeError):  # the loop has ended: nothing left to tell
            assert loop is not None
            loop.call_soon_threadsafe(callback)

    thread = threading.Thread(target=run, name="newsmon-pages", daemon=True)
    thread.start()
    ready.wait()
    assert room is not None and producer is not None
    try:
        for _ in batches:
            got = handoff.get()
            if isinstance(got, BaseException):
                raise got
            yield got
            tell(room.release)
    finally:
        tell(producer.cancel)
        thread.join()


async def _fetch_all(entries: Sequence[Entry], feed_names: Mapping[str, str], settings: HttpSettings,
                     now: datetime, pool: Executor, keep_raw: bool, on_page: Callable[[], None],
                     budget: PageBudget, robots_cache: RobotsCache | None = None) -> Fetched:
    async with _pages(settings, pool, keep_raw, now, on_page, budget, robots_cache,
                      [e.link for e in entries if e.link]) as pages:
        return await pages.batch(entries, feed_names)


@asynccontextmanager
async def _pages(settings: HttpSettings, pool: Executor, keep_raw: bool, now: datetime,
                 on_page: Callable[[], None] | None, budget: PageBudget | None, robots_cache: RobotsCache | None,
                 links: Sequence[str]) -> AsyncIterator[_Pages]:
    """What the pages of one call share, open for the block; every host's robots.txt asked first (see
    RobotsCheck.prefetch: pages then start in host turns)."""
    async with Fetcher(settings) as fetcher:
        robots = None
        if robots_cache is not None:
            robots = RobotsCheck(robots_cache, fetcher, settings.max_page_bytes, settings.timeout_s)
            await robots.prefetch(links)
        yield _Pages(fetcher, pool, settings, now, keep_raw, on_page or (lambda: None),
                     budget or PageBudget.from_settings(settings), robots)


@dataclass
class _Pages:
    """One call's HTTP client, pool, budget and robots.txt checks, and its bound on pages in flight."""

    fetcher: Fetcher
    pool: Executor
    settings: HttpSettings
    now: datetime
    keep_raw: bool
    on_page: Callable[[], None]
    budget: PageBudget
    robots: RobotsCheck | None
    in_flight: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.in_flight = asyncio.Semaphore(self.settings.max_concurrency + 2 * default_workers())

    async def one(self, entry: Entry) -> tuple[ExtractedText | None, str | None, RawPage | None]:
        result = await _one(self.fetcher, self.pool, self.in_flight, entry, self.settings, self.keep_raw, self.now,
                            self.budget, self.robots)
        self.on_page()
        return result

    async def batch(self, entries: Sequence[Entry], feed_names: Mapping[str, str]) -> Fetched:
        """The pages of `entries`, started in host turns (host_round_robin), returned in entry order."""
        order = host_round_robin(entries)
        started = await asyncio.gather(*(self.one(entries[i]) for i in order))
        done = [started[pos] for pos in sorted(range(len(order)), key=order.__getitem__)]
        out = Fetched([], [], [])
        for entry, (ext, err, raw) in zip(entries, done, strict=True):
            if ext is None:  # not fetched: left for the next run
                out.left.append((entry, err or "left for the next run"))
                continue
            out.articles.append(build_article(entry, ext, feed_names.get(entry.feed_url, entry.feed_url), self.now))
            if err:
                out.errors.append((entry.feed_url, entry.link, err))
            if raw is not None:
                out.raw_pages.append(raw)
        return out


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:  # a malformed link: the fetch reports it for that page
        return ""


def host_round_robin(entries: Sequence[Entry]) -> list[int]:
    """Entry indexes taking one host at a time in turn. Entries come feed by feed, so in list order the
    first bounded slots would all wait on one or two hosts' per-host limit while other hosts sit idle."""
    by_host: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        by_host.setdefault(_host(e.link), []).append(i)
    return [i for turn in zip_longest(*by_host.values()) for i in turn if i is not None]


async def _one(fetcher: Fetcher, pool: Executor, in_flight: asyncio.Semaphore, entry: Entry,
               settings: HttpSettings, keep_raw: bool, now: datetime,
               budget: PageBudget, robots: RobotsCheck | None = None
               ) -> tuple[ExtractedText | None, str | None, RawPage | None]:
    """(text, error, raw page) of one entry; no text (None) when its page was left for the next run. A page
    robots.txt disallows is not requested: the feed's summary stands in, and the error says so (fetch_log)."""
    if not entry.link:
        return await _fallback(pool, entry, "the entry has no link"), None, None
    refused = await robots.refusal(entry.link) if robots is not None else None
    if refused:
        msg = f"{entry.link}: {refused}"
        return await _fallback(pool, entry, msg), msg, None
    async with in_flight:  # a page's bytes live only inside this block
        try:
            resp = await fetcher.get(entry.link, max_bytes=settings.max_page_bytes, budget=budget)
        except LeftForLater as exc:
            return None, exc.reason, None
        except FetchError as exc:
            return await _fallback(pool, entry, str(exc)), str(exc), None
        job = partial(extract_page, resp.body, resp.final_url, resp.content_type, resp.charset,
                      entry.published_at, keep_raw)
        try:
            outcome: PageOutcome = await asyncio.get_running_loop().run_in_executor(pool, job)
        except Exception as exc:  # a crashed worker or an extractor bug must not sink the run
            msg = f"{entry.link}: extraction crashed ({type(exc).__name__}: {exc}); kept the feed summary"
            return await _fallback(pool, entry, msg), msg, None
    raw = None
    if outcome.packed is not None:
        codec, data = outcome.packed
        raw = RawPage(entry.article_id, resp.final_url, resp.content_type, resp.charset, codec, data,
                      len(resp.body), now)
    if outcome.extracted is None:
        return await _fallback(pool, entry, outcome.error or "no text"), outcome.error, raw
    return outcome.extracted, None, raw


async def _fallback(pool: Executor, entry: Entry, reason: str) -> ExtractedText:
    """The feed's own text in place of the page's, made in the pool: its workers hold the language model,
    which the flow process then never loads (~80 MB)."""
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, partial(from_feed, entry, reason))
    except Exception:  # a broken pool (a worker crashed): make it here
        return from_feed(entry, reason)


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


def default_workers() -> int:
    return os.cpu_count() or 1


def reextract(pages: Sequence[tuple[RawPage, Article]], pool: Executor) -> list[Article | str]:
    """Each stored article re-extracted from its kept page (same order); a string says why one could not be."""
    jobs: list[str | partial[PageOutcome]] = []
    for raw, art in pages:
        try:
            body = unpack(raw.codec, raw.body, url=raw.url)
        except ExtractionError as exc:
            jobs.append(str(exc))
            continue
        jobs.append(partial(extract_page, body, raw.url, raw.content_type, raw.charset, art.published_at, False))
    futures = [job if isinstance(job, str) else pool.submit(job) for job in jobs]
    outcomes: list[PageOutcome | str] = []
    for future in futures:
        try:
            outcomes.append(future if isinstance(future, str) else future.result())
        except Exception as exc:  # a crashed worker or an extractor bug: this page stays as stored
            outcomes.append(f"extraction crashed ({type(exc).__name__}: {exc})")
    return [o if isinstance(o, str) else updated_article(art, o) for o, (_, art) in zip(outcomes, pages, strict=True)]


def updated_article(art: Article, outcome: PageOutcome) -> Article | str:
    """The stored article with re-extracted text and metadata; feed-given title and date stay."""
    ext = outcome.extracted
    if ext is None:
        return outcome.error or "no text"
    return replace(art, text=ext.text, canonical_url=ext.canonical_url, author=ext.author or art.author,
                   site_name=ext.site_name, language=ext.language or art.language,
                   published_at=art.published_at or ext.published_at, word_count=len(ext.text.split()),
                   extraction_status=ext.status, extraction_note=ext.note,
                   content_hash=Article.hash_content(art.title, ext.text))
