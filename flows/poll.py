"""The `poll-feeds` flow: poll feeds, extract new articles, tag, store, alert."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger

from extractors.dedup import drop_duplicates, lookup_keys, point_at_kept
from extractors.identity import Resolution, all_aliases, resolve_entries
from extractors.pages import default_workers, extraction_pool
from extractors.schedule import split_due
from flows import progress
from flows.report import alert_on_failure, publish_summary
from flows.tasks import cluster_task, deliver_task, extract_task, poll_task, quoted, signals_task, store_task, tag_task
from flows.usage import tree_cpu_seconds
from newsmon.alerts.policy import plan_alerts
from newsmon.config import Settings, load_settings
from newsmon.records import Alias, Article, Entry, FeedResult, RunBatch
from warehouse import Warehouse, open_warehouse

EXTRACT_BATCH = 500


def _run_name() -> str:
    from prefect.runtime import flow_run

    cfg = str(flow_run.parameters.get("config", "newsmon.toml"))
    return f"poll-{cfg.rsplit('/', 1)[-1].removesuffix('.toml')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


@flow(name="poll-feeds", flow_run_name=_run_name, log_prints=False, on_failure=[alert_on_failure])
def poll_feeds(config: str = "newsmon.toml") -> dict[str, Any]:
    """Poll every feed in the config once: fetch new entries, extract their text, tag them, store the run
    in the DuckDB warehouse in one transaction, then deliver pending alerts. Returns a run summary."""
    settings = load_settings(config)
    logger = get_run_logger()
    summary = run_pipeline(settings)
    publish_summary(summary)
    for f in summary["failed_feeds"]:
        logger.warning("feed %s failed: %s", f["name"], f["error"])
    for f in summary["gone_feeds"]:
        logger.error("feed %s is GONE (HTTP 410): remove or replace %s in the config", f["name"], f["url"])
    logger.info("run %s: %d new articles, %d matches, %d alerts sent", summary["run_id"],
                summary["new_articles"], len(summary["matches"]), summary["alerts_sent"])
    return summary


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
    found = identify(results, wh, started)
    # one pool for the run: pages' extraction, then the per-article tagging and signatures
    with extraction_pool(len(found.new), default_workers(), preload=("flows.derive",)) as pool:
        articles, page_errors, dupes = extract_new(found.new, settings, wh, started, pool)
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
                         aliases=tuple(point_at_kept(found.aliases, dupes)), edits=tuple(found.edits),
                         url_aliases=tuple(dupes))
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


def identify(results: Sequence[FeedResult], wh: Warehouse, now: datetime) -> Resolution:
    """New stories (each once, however many feeds or GUIDs carry it), edits of stored ones, aliases to keep."""
    return resolve_entries(results, wh.runs.known_entries(all_aliases(results)), now=now)


def extract_new(entries: Sequence[Entry], settings: Settings, wh: Warehouse, started: datetime,
                pool: Executor) -> tuple[list[Article], list[tuple[str, str, str]], list[Alias]]:
    """Fetch and extract in batches; drop pages whose canonical URL is a stored (or earlier) article.

    Raw pages, when kept, are written per batch (their bytes never pile up over a run); a page whose
    article turns out to be a duplicate is not kept.
    """
    names = {f.url: f.name for f in settings.feeds}
    articles: list[Article] = []
    page_errors: list[tuple[str, str, str]] = []
    aliases: list[Alias] = []
    known: dict[str, str] = {}
    tick = progress.counter("pages", len(entries))
    for i in range(0, len(entries), EXTRACT_BATCH):
        got = extract_task(quoted(entries[i:i + EXTRACT_BATCH]), quoted(names), settings.http, started,
                           settings.extraction.keep_raw_pages, tick, pool)
        keys = lookup_keys(got.articles) - known.keys()
        known.update(wh.runs.article_ids_by_url_key(keys))
        kept, dupes = drop_duplicates(got.articles, known)
        articles += kept
        aliases += dupes
        page_errors += got.errors
        kept_ids = {a.article_id for a in kept}
        if got.raw_pages:
            wh.archive.store_raw_pages([r for r in got.raw_pages if r.article_id in kept_ids])
    return articles, page_errors, aliases


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
    }
