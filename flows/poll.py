"""The `poll-feeds` flow: poll feeds, extract new articles, tag, store, alert."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed

from extractors.budget import PageBudget, pages_left_for_later, without_left
from extractors.dedup import drop_duplicates, lookup_keys, point_at_kept
from extractors.identity import Resolution, all_aliases, left_for_later, resolve_entries
from extractors.lifeline import end_with_serve
from extractors.pages import default_workers, extraction_pool
from extractors.schedule import split_due
from flows import progress
from flows.report import alert_on_failure, publish_summary
from flows.tasks import cluster_task, deliver_task, extract_task, poll_task, quoted, signals_task, store_task, tag_task
from flows.usage import tree_cpu_seconds
from newsmon.alerts.policy import plan_alerts
from newsmon.config import Settings, load_settings, resolve_config_path
from newsmon.errors import StorageError, disk_full
from newsmon.records import Alias, Article, Entry, FeedResult, RunBatch
from warehouse import Warehouse, open_warehouse

EXTRACT_BATCH = 500


def _run_name() -> str:
    from prefect.runtime import flow_run

    cfg = str(resolve_config_path(flow_run.parameters.get("config")))
    return f"poll-{cfg.rsplit('/', 1)[-1].removesuffix('.toml')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


@flow(name="poll-feeds", flow_run_name=_run_name, log_prints=False, on_failure=[alert_on_failure])
def poll_feeds(config: str | None = None) -> dict[str, Any]:
    """Poll every feed in the config once: fetch new entries, extract their text, tag them, store the run
    in the DuckDB warehouse in one transaction, then deliver pending alerts. Returns a run summary."""
    end_with_serve()
    settings = load_settings(config)
    logger = get_run_logger()
    quiet_storage_failures()
    try:
        summary = run_pipeline(settings)
    except (StorageError, OSError) as exc:
        if isinstance(exc, OSError) and not disk_full(exc):
            raise
        return cast("dict[str, Any]", storage_failure(exc))  # Prefect takes a returned State as the final one
    publish_summary(summary)
    for f in summary["failed_feeds"]:
        logger.warning("feed %s failed: %s", f["name"], f["error"])
    for f in summary["gone_feeds"]:
        logger.error("feed %s is GONE (HTTP 410): remove or replace %s in the config", f["name"], f["url"])
    if summary["pages_left"]:
        logger.warning("%d pages left for the next run: %s", summary["pages_left"], "; ".join(summary["budgets_spent"]))
    logger.info("run %s: %d new articles, %d matches, %d alerts sent", summary["run_id"],
                summary["new_articles"], len(summary["matches"]), summary["alerts_sent"])
    return summary


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


def run_pipeline(settings: Settings) -> dict[str, Any]:
    """One run's recipe. Collections that grow with the run go to tasks `quoted`: Prefect would otherwise
    walk every element of every parameter looking for futures (3.8 s of a 400-article run, profiled)."""
    started = datetime.now(UTC)
    wh = open_warehouse(settings.warehouse)
    try:
        return _run(settings, wh, started)
    finally:
        wh.close()


def _run(settings: Settings, wh: Warehouse, started: datetime) -> dict[str, Any]:
    laps = StageClock()
    states = wh.runs.feed_states()
    due, waiting = split_due(settings.feeds, states, started)
    results = poll_task(quoted(due), quoted(states), settings.http, started)
    laps.lap("poll")
    found = identify(results, wh, started, settings.http.max_entries_per_feed)
    results = left_for_later(results, found.left, settings.http.max_entries_per_feed)
    # one pool for the run: pages' extraction, then the per-article tagging and signatures
    with extraction_pool(len(found.new), default_workers(), preload=("flows.derive",)) as pool:
        articles, page_errors, dupes, left = extract_new(found.new, settings, wh, started, pool)
        results = pages_left_for_later(results, left)  # their feeds are read whole again next run
        laps.lap("extract")
        verdicts, signatures = tag_task(quoted(articles), settings.tagging.rules, pool)
    laps.lap("tag")
    # clusters are assigned, alerts planned and the run claimed while no other run (shard) does the same: a
    # story two runs see at once joins one cluster and alerts once
    with wh.runs.claiming():
        articles, clusters = cluster_task(wh.runs, quoted(articles), quoted(signatures), settings.alerts, started)
        alerts = plan_alerts(articles, verdicts, settings.alerts.all_routes, now=started,
                             clusters={c.cluster_id: c for c in clusters},
                             window=timedelta(hours=settings.alerts.window_hours))
        batch = RunBatch(run_id=uuid.uuid4().hex[:16], config_name=str(settings.source), started_at=started,
                         feed_results=tuple(results), articles=tuple(articles), verdicts=tuple(verdicts),
                         alerts=tuple(alerts), page_errors=tuple(page_errors), clusters=tuple(clusters),
                         aliases=tuple(point_at_kept(without_left(found.aliases, left), dupes)),
                         edits=tuple(found.edits), url_aliases=tuple(dupes),
                         pages_left=tuple((e.feed_url, e.link, why) for e, why in left))
        stored = store_task(wh.runs, quoted(batch), datetime.now(UTC))
    laps.lap("store")
    signals_task(wh, settings.alerts, datetime.now(UTC))
    report = deliver_task(wh, settings.alerts, datetime.now(UTC))
    wh.runs.sync_alerts()
    laps.lap("alert")
    summary = summarize(batch, report.sent, report.errors, laps, waiting=[f.name for f in waiting])
    return summary | {"alert_messages": report.messages, "storage": stored.describe()}


class StageClock:
    """Wall and CPU seconds per stage; CPU counts the whole process tree (pool workers, Prefect's server)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t, self._c = time.monotonic(), tree_cpu_seconds()

    def lap(self, stage: str) -> None:
        t, c = time.monotonic(), tree_cpu_seconds()
        self.wall[stage], self.cpu[stage] = t - self._t, c - self._c
        self._t, self._c = t, c


def identify(results: Sequence[FeedResult], wh: Warehouse, now: datetime, max_per_feed: int) -> Resolution:
    """New stories (each once, however many feeds or GUIDs carry it; at most `max_per_feed` a feed, its
    newest), edits of stored ones, aliases to keep."""
    return resolve_entries(results, wh.runs.known_entries(all_aliases(results)), now=now, max_per_feed=max_per_feed)


def extract_new(entries: Sequence[Entry], settings: Settings, wh: Warehouse, started: datetime, pool: Executor
                ) -> tuple[list[Article], list[tuple[str, str, str]], list[Alias], list[tuple[Entry, str]]]:
    """Fetch and extract in batches; drop pages whose canonical URL is a stored (or earlier) article.

    Raw pages, when kept, are written per batch (their bytes never pile up over a run); a page whose
    article turns out to be a duplicate is not kept. The batches share the run's time budget for pages
    ([http] host_budget_s, run_budget_s): entries whose page did not fit are returned last, with the reason.
    """
    names = {f.url: f.name for f in settings.feeds}
    articles: list[Article] = []
    page_errors: list[tuple[str, str, str]] = []
    aliases: list[Alias] = []
    known: dict[str, str] = {}
    left: list[tuple[Entry, str]] = []
    budget = PageBudget.from_settings(settings.http)
    tick = progress.counter("pages", len(entries))
    for i in range(0, len(entries), EXTRACT_BATCH):
        got = extract_task(quoted(entries[i:i + EXTRACT_BATCH]), quoted(names), settings.http, started,
                           settings.extraction.keep_raw_pages, tick, pool, budget)
        left += got.left
        keys = lookup_keys(got.articles) - known.keys()
        known.update(wh.runs.article_ids_by_url_key(keys))
        kept, dupes = drop_duplicates(got.articles, known)
        articles += kept
        aliases += dupes
        page_errors += got.errors
        kept_ids = {a.article_id for a in kept}
        if got.raw_pages:
            wh.archive.store_raw_pages([r for r in got.raw_pages if r.article_id in kept_ids])
    return articles, page_errors, aliases, left


def summarize(batch: RunBatch, sent: int, alert_errors: list[str], laps: StageClock,
              waiting: Sequence[str] = ()) -> dict[str, Any]:
    by_id = {a.article_id: a for a in batch.articles}
    matches = [{"title": by_id[v.article_id].title, "url": by_id[v.article_id].url, "score": round(v.score, 2),
                "tags": list(v.tags), "watchlist": v.watchlist} for v in batch.verdicts if v.match]
    results = batch.feed_results
    return {
        "run_id": batch.run_id,
        "config": batch.config_name,
        "feeds_total": len(results) + len(waiting),
        "feeds_ok": sum(1 for r in results if r.ok and not r.not_modified),
        "feeds_not_modified": sum(1 for r in results if r.not_modified),
        "failed_feeds": [{"name": r.feed.name, "url": r.feed.url, "error": r.error} for r in results if not r.ok],
        "new_articles": len(batch.articles),
        "pages_fell_back": len(batch.page_errors),
        "matches": matches,
        "alerts_queued": len(batch.alerts),
        "alerts_sent": sent,
        "alert_errors": alert_errors,
        "seconds": {k: round(v, 3) for k, v in laps.wall.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in laps.cpu.items()},
        "feeds_waiting": list(waiting),  # in backoff or under a cache floor: not polled this run
        "gone_feeds": [{"name": r.feed.name, "url": r.feed.url} for r in results if r.gone],
        "entries_edited": len(batch.edits),
        "pages_left": len(batch.pages_left),  # not fetched (a time budget ran out): the next run fetches them
        "budgets_spent": sorted({why for _, _, why in batch.pages_left}),  # which host (or the run) was slow
    }
