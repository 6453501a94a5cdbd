"""The `poll-feeds` flow: poll feeds, extract new articles, tag, store, alert."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Generator, Sequence
from concurrent.futures import Executor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed

from extractors.budget import PageBudget, pages_left_for_later, without_left
from extractors.dedup import drop_duplicates, lookup_keys, point_at_kept
from extractors.identity import Resolution, all_aliases, left_for_later, resolve_entries
from extractors.lifeline import end_with_serve
from extractors.pages import PoolOnDemand, default_workers, stream_articles
from extractors.robots import RobotsCache
from extractors.schedule import Outage, outage, split_due
from extractors.worker import release_heap
from flows import progress
from flows.derive import POOL_PRELOAD
from flows.report import alert_on_failure, publish_summary
from flows.tasks import cluster_task, deliver_task, extract_task, poll_task, quoted, signals_task, store_task, tag_task
from flows.usage import tree_cpu_seconds
from newsmon.alerts.policy import plan_alerts
from newsmon.config import ExtractionSettings, Settings, load_settings, resolve_config_path
from newsmon.console import contact_warning
from newsmon.errors import StorageError, disk_full
from newsmon.records import Alias, Article, Entry, EntryEdit, FeedResult, RunBatch
from warehouse import Warehouse, open_warehouse
from warehouse.store import RunPart, StoreReport

EXTRACT_BATCH = ExtractionSettings.batch_pages  # the default of [extraction] batch_pages


def _run_name() -> str:
    from prefect.runtime import flow_run

    cfg = str(resolve_config_path(flow_run.parameters.get("config")))
    return f"poll-{cfg.rsplit('/', 1)[-1].removesuffix('.toml')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


@flow(name="poll-feeds", flow_run_name=_run_name, log_prints=False, on_failure=[alert_on_failure])
def poll_feeds(config: str | None = None, every_feed: bool = False) -> dict[str, Any]:
    """Poll every due feed in the config once (with `every_feed`, every feed: backoff and cache floors
    ignored): fetch new entries, extract their text, tag them, store them in the warehouse (one claim and one
    lake commit per batch of [extraction] batch_pages), then deliver pending alerts. Returns a run summary."""
    end_with_serve()
    settings = load_settings(config)
    if warning := contact_warning(settings.source, settings.http.contact_url):
        print(warning, file=sys.stderr, flush=True)  # every run, `newsmon run` or scheduled: one line
    logger = get_run_logger()
    quiet_storage_failures()
    try:
        summary = run_pipeline(settings, every_feed=every_feed)
    except (StorageError, OSError) as exc:
        if isinstance(exc, OSError) and not disk_full(exc):
            raise
        return cast("dict[str, Any]", storage_failure(exc))  # Prefect takes a returned State as the final one
    publish_summary(summary)
    for f in summary["failed_feeds"]:
        logger.warning("feed %s failed: %s", f["name"], f["error"], extra=SAID_IN_SUMMARY)
    for f in summary["gone_feeds"]:
        logger.error("feed %s is GONE (HTTP 410): remove or replace %s in the config", f["name"], f["url"],
                     extra=SAID_IN_SUMMARY)
    if summary["outage"]:
        o = summary["outage"]
        logger.error("outage: none of the %d feeds %s; each is failing or waiting in backoff", o["feeds"],
                     f"has been polled successfully since {o['last_success_at']}" if o["last_success_at"]
                     else "has ever been polled successfully", extra=SAID_IN_SUMMARY)
    if summary["pages_left"]:
        logger.warning("%d pages left for the next run: %s", summary["pages_left"], "; ".join(summary["budgets_spent"]))
    logger.info("run %s: %d new articles, %d matches, %d alerts sent", summary["run_id"],
                summary["new_articles"], len(summary["matches"]), summary["alerts_sent"])
    return summary


SAID_IN_SUMMARY = {"newsmon_in_summary": True}  # log records the run summary states too (a failed feed, an outage)


class SummaryLinesOffConsole(logging.Filter):
    """On Prefect's console handler while `newsmon run` shows the summary itself: drops the run's log lines that
    the summary repeats (each failed feed, the outage), so the terminal says each once. Prefect's API handler
    keeps them (the run's logs in the UI)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "newsmon_in_summary", False)


def summary_lines_off_console() -> None:
    """Install SummaryLinesOffConsole on Prefect's console handlers (the CLI, before it runs the flow)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, SummaryLinesOffConsole) for f in handler.filters):
            handler.addFilter(SummaryLinesOffConsole())


class QuietStorageFailures(logging.Filter):
    """On Prefect's console handler: drops its lines about a run stopped by a warehouse error (a full disk, a
    damaged warehouse), the task's traceback and "Finished in state Failed(...)". The CLI says it once, in one
    line; Prefect's API handler is not filtered, so the server keeps every state and log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], StorageError):
            return False
        return not (record.name.startswith("prefect.") and "StorageError" in record.getMessage())


def quiet_storage_failures() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, QuietStorageFailures) for f in handler.filters):
            handler.addFilter(QuietStorageFailures())


def storage_failure(exc: StorageError | OSError) -> State[Any]:
    """The run's final state when the warehouse could not be written (disk full, damaged, unreachable): Failed,
    with the error as its data, so the caller gets the error itself (one line, exit 3) and Prefect records the
    failure (the on_failure alert too) without printing a traceback for an expected condition."""
    error = exc if isinstance(exc, StorageError) else StorageError(f"{exc.filename or 'a file'}: {exc.strerror}")
    if error is not exc:
        error.__cause__ = exc
    return Failed(message=f"warehouse error: {error}", data=error)


def run_pipeline(settings: Settings, *, every_feed: bool = False) -> dict[str, Any]:
    """One run's recipe. Collections that grow with the run go to tasks `quoted`: Prefect would otherwise
    walk every element of every parameter looking for futures (3.8 s of a 400-article run, profiled)."""
    started = datetime.now(UTC)
    wh = open_warehouse(settings.warehouse, background=True)  # the lake is attached while the feeds are polled
    try:
        return _run(settings, wh, started, every_feed)
    finally:
        wh.close()


def _run(settings: Settings, wh: Warehouse, started: datetime, every_feed: bool = False) -> dict[str, Any]:
    laps = StageClock()
    states = wh.runs.feed_states()
    due, waiting = split_due(settings.feeds, states, started, every=every_feed)
    tally = RunTally(uuid.uuid4().hex[:16], str(settings.source))
    # one pool for the run, started by the first stage that needs it (a feed to parse, else pages to extract),
    # for the feeds' parsing, the pages' extraction, then the per-article tagging and signatures; the workers'
    # imports (tagging, signatures) are made once, in the forkserver
    with PoolOnDemand(default_workers(), preload=POOL_PRELOAD) as pools:
        results = poll_task(quoted(due), quoted(states), settings.http, started, pools.for_parsing)
        down = outage(settings.feeds, states, results, started, timedelta(hours=settings.schedule.outage_hours))
        laps.lap("poll")
        found = identify(results, wh, started, settings.http.max_entries_per_feed)
        results = left_for_later(results, found.left, settings.http.max_entries_per_feed)
        # Each batch of new pages is tagged, clustered, alert-planned and stored (its own claim and lake commit)
        # as soon as it is extracted, then dropped: the run keeps counts, not articles. The feed results
        # (validators, next poll) go with the last part, once every entry of the run is stored; a run that dies
        # between parts keeps the parts it stored, and the next run re-reads its feeds and finds those entries.
        size = settings.extraction.batch_pages
        count = max(1, -(-len(found.new) // size))
        identities: dict[str, list[tuple[str, str]]] = {}
        for alias, article_id in found.aliases:
            identities.setdefault(article_id, []).append((alias, article_id))
        pool = pools.get(len(found.new))
        with closing(extract_new(found.new, settings, wh, started, pool)) as batches:
            for number in range(count):
                _store_part(next(batches, Extracted()), settings, wh, started, pool, laps, tally, identities,
                            found.edits if number == count - 1 else None, results,
                            None if count == 1 else RunPart(number, number == count - 1, tally.stored))
    signals_task(wh, settings.alerts, datetime.now(UTC))
    report = deliver_task(wh, settings.alerts, datetime.now(UTC))
    wh.runs.sync_alerts()
    laps.lap("alert")
    summary = summarize(tally, report.sent, report.errors, laps, waiting=[f.name for f in waiting], outage=down)
    return summary | {"alert_messages": report.messages, "storage": tally.stored.describe()}


@dataclass
class RunTally:
    """What a run keeps of the parts it stored: counts, the matches (for the summary) and the alert ids it
    planned (a story whose copies fall in two parts alerts once), and, from its last part, the feed results."""

    run_id: str
    config_name: str
    feed_results: tuple[FeedResult, ...] = ()
    new_articles: int = 0
    pages_fell_back: int = 0
    matches: list[dict[str, Any]] = field(default_factory=list)
    alert_ids: set[str] = field(default_factory=set)
    edits: int = 0
    pages_left: tuple[tuple[str, str, str], ...] = ()
    left: list[tuple[Entry, str]] = field(default_factory=list)  # entries whose page was left for the next run
    stored: StoreReport = StoreReport(0)

    def add(self, batch: RunBatch, stored: StoreReport) -> None:
        by_id = {a.article_id: a for a in batch.articles}
        self.matches += [{"title": by_id[v.article_id].title, "url": by_id[v.article_id].url,
                          "score": round(v.score, 2), "tags": list(v.tags), "watchlist": v.watchlist}
                         for v in batch.verdicts if v.match]
        self.new_articles += len(batch.articles)
        self.pages_fell_back += len(batch.page_errors)
        self.alert_ids |= {a.alert_id for a in batch.alerts}
        self.edits += len(batch.edits)
        self.feed_results += batch.feed_results
        self.pages_left += batch.pages_left
        self.stored += stored


def _store_part(got: Extracted, settings: Settings, wh: Warehouse, started: datetime, pool: Executor,
                laps: StageClock, tally: RunTally, identities: dict[str, list[tuple[str, str]]],
                edits: Sequence[EntryEdit] | None, results: Sequence[FeedResult], part: RunPart | None) -> None:
    """Tag, cluster, plan alerts for and store one extracted batch (`part` of the run; None: the whole run).
    `edits` (not None) marks the run's last part: it carries the edits, the identities of stories stored
    before, the feed results and every page left for the next run."""
    laps.lap("extract")
    tally.left += got.left
    verdicts, signatures = tag_task(quoted(got.articles), settings.tagging.rules, pool)
    laps.lap("tag")
    mine = [x for article_id in got.entry_ids for x in identities.pop(article_id, ())]
    if edits is not None:
        mine += [x for rest in identities.values() for x in rest]
    # clusters are assigned, alerts planned and the part claimed while no other run (shard) does the same: a
    # story two runs see at once joins one cluster and alerts once; a later part sees the earlier parts' clusters
    with wh.runs.claiming():
        articles, clusters = cluster_task(wh.runs, quoted(got.articles), quoted(signatures), settings.alerts,
                                          started)
        alerts = plan_alerts(articles, verdicts, settings.alerts.all_routes, now=started,
                             clusters={c.cluster_id: c for c in clusters},
                             window=timedelta(hours=settings.alerts.window_hours))
        last = edits is not None
        batch = RunBatch(run_id=tally.run_id, config_name=tally.config_name, started_at=started,
                         feed_results=tuple(pages_left_for_later(results, tally.left)) if last else (),
                         articles=tuple(articles), verdicts=tuple(verdicts),
                         alerts=tuple(a for a in alerts if a.alert_id not in tally.alert_ids),
                         page_errors=tuple(got.errors), clusters=tuple(clusters),
                         aliases=tuple(point_at_kept(without_left(mine, got.left), got.dupes)),
                         edits=tuple(edits or ()), url_aliases=tuple(got.dupes),
                         pages_left=tuple((e.feed_url, e.link, why) for e, why in tally.left) if last else ())
        stored = store_task(wh.runs, quoted(batch), datetime.now(UTC), part)
    tally.add(batch, stored)
    laps.lap("store")
    # The part's objects and DuckDB's insert buffers are freed now, but glibc keeps their pages (~25-30 MB of a
    # 500-page part): handed back, the flow process is that much smaller while the next part is extracted.
    release_heap()


class StageClock:
    """Wall and CPU seconds per stage; CPU counts the whole process tree (pool workers, Prefect's server)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t, self._c = time.monotonic(), tree_cpu_seconds()

    def lap(self, stage: str) -> None:
        """Add the time since the last lap to `stage` (a run stored in parts goes through its stages per part)."""
        t, c = time.monotonic(), tree_cpu_seconds()
        self.wall[stage] = self.wall.get(stage, 0.0) + t - self._t
        self.cpu[stage] = self.cpu.get(stage, 0.0) + c - self._c
        self._t, self._c = t, c


def identify(results: Sequence[FeedResult], wh: Warehouse, now: datetime, max_per_feed: int) -> Resolution:
    """New stories (each once, however many feeds or GUIDs carry it; at most `max_per_feed` a feed, its
    newest), edits of stored ones, aliases to keep."""
    return resolve_entries(results, wh.runs.known_entries(all_aliases(results)), now=now, max_per_feed=max_per_feed)


@dataclass
class Extracted:
    """One batch of new entries, extracted: articles to store, pages that fell back (feed_url, url, error),
    aliases of pages that are stored (or earlier) articles, entries whose page was left for the next run (with
    the reason), and the article ids of the batch's entries."""

    articles: list[Article] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    dupes: list[Alias] = field(default_factory=list)
    left: list[tuple[Entry, str]] = field(default_factory=list)
    entry_ids: list[str] = field(default_factory=list)


def extract_new(entries: Sequence[Entry], settings: Settings, wh: Warehouse, started: datetime, pool: Executor
                ) -> Generator[Extracted, None, None]:
    """Fetch and extract in batches of [extraction] batch_pages, yielding each as it finishes (the next batches'
    pages are fetched and extracted meanwhile: pages.stream_articles); drop pages whose canonical URL is a
    stored (or earlier) article.

    Raw pages, when kept, are written per batch (their bytes never pile up over a run); a page whose
    article turns out to be a duplicate is not kept. The batches share the run's time budget for pages
    ([http] host_budget_s, run_budget_s): entries whose page did not fit are returned, with the reason.
    """
    known: dict[str, str] = {}
    size = settings.extraction.batch_pages
    chunks = [entries[i:i + size] for i in range(0, len(entries), size)]
    tick = progress.counter("pages", len(entries))
    stream = stream_articles(chunks, {f.url: f.name for f in settings.feeds}, settings.http, now=started, pool=pool,
                             keep_raw=settings.extraction.keep_raw_pages, on_page=tick,
                             budget=PageBudget.from_settings(settings.http), robots=RobotsCache())
    with closing(stream):  # a run that stops early cancels the pages still in flight
        for chunk in chunks:
            got = extract_task(quoted(stream))
            keys = lookup_keys(got.articles) - known.keys()
            known.update(wh.runs.article_ids_by_url_key(keys))
            kept, dupes = drop_duplicates(got.articles, known)
            kept_ids = {a.article_id for a in kept}
            if got.raw_pages:
                wh.archive.store_raw_pages([r for r in got.raw_pages if r.article_id in kept_ids])
            yield Extracted(kept, got.errors, dupes, got.left, [e.article_id for e in chunk])
            del got, kept, dupes


def summarize(tally: RunTally, sent: int, alert_errors: list[str], laps: StageClock,
              waiting: Sequence[str] = (), outage: Outage | None = None) -> dict[str, Any]:
    results = tally.feed_results
    return {
        "run_id": tally.run_id,
        "config": tally.config_name,
        "feeds_total": len(results) + len(waiting),
        "feeds_ok": sum(1 for r in results if r.ok and not r.not_modified),
        "feeds_not_modified": sum(1 for r in results if r.not_modified),
        "failed_feeds": [{"name": r.feed.name, "url": r.feed.url, "error": r.error} for r in results if not r.ok],
        "new_articles": tally.new_articles,
        "pages_fell_back": tally.pages_fell_back,
        "matches": tally.matches,
        "alerts_queued": len(tally.alert_ids),
        "alerts_sent": sent,
        "alert_errors": alert_errors,
        "seconds": {k: round(v, 3) for k, v in laps.wall.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in laps.cpu.items()},
        "feeds_waiting": list(waiting),  # in backoff or under a cache floor: not polled this run
        "gone_feeds": [{"name": r.feed.name, "url": r.feed.url} for r in results if r.gone],
        "entries_edited": tally.edits,
        "pages_left": len(tally.pages_left),  # not fetched (a time budget ran out): the next run fetches them
        "budgets_spent": sorted({why for _, _, why in tally.pages_left}),  # which host (or the run) was slow
        # every feed failing or backing off, none succeeded within [schedule] outage_hours (or ever): exit 1
        "outage": None if outage is None else {
            "feeds": outage.feeds, "hours": outage.window.total_seconds() / 3600,
            "last_success_at": outage.last_success_at.isoformat() if outage.last_success_at else None},
    }
