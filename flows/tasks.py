"""The only @task definitions: coarse (per run stage or batch, never per article), retries on network work."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.utilities.annotations import quote

from extractors import pages, poller
from flows import progress
from flows.derive import Signature, tag_and_sign
from newsmon.alerts.clusters import assign_clusters
from newsmon.alerts.deliver import DeliveryReport, deliver_pending, queue_signals
from newsmon.alerts.notify import AppriseNotifier
from newsmon.config import AlertSettings, HttpSettings
from newsmon.errors import disk_full
from newsmon.records import Article, ClusterRecord, FeedResult, FeedSpec, FeedState, RunBatch, Verdict
from warehouse import StoreReport, Warehouse
from warehouse.store import RunPart, RunStore

T = TypeVar("T")


def quoted(value: T) -> T:
    """`value` wrapped in Prefect's `quote`, for a task parameter that grows with the run: Prefect then passes it
    as is instead of walking every element looking for futures (3.8 s of a 400-article run, profiled).

    Typed as `T` because that is what the task receives (Prefect unwraps a quote before the call); `quote[T]`,
    the wrapper's own type, matches no task's signature, so the cast lives here rather than at every call.
    """
    return cast(T, quote(value))


@task(name="poll-feeds", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def poll_task(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState], http: HttpSettings,
              now: datetime, start_pool: Callable[[], Executor | None] | None = None) -> list[FeedResult]:
    """Fetch and parse every feed (parsed in the pool `start_pool` gives, once a feed needs parsing); a failing
    feed is a result with an error, not an exception."""
    progress.report("feeds", 0, len(feeds))
    results = poller.poll_feeds(feeds, states, http, now=now, start_pool=start_pool)
    progress.report("feeds", len(feeds), len(feeds))
    return results


@task(name="fetch-extract", cache_policy=NO_CACHE)
def extract_task(stream: Iterator[pages.Fetched]) -> pages.Fetched:
    """The run's next batch of pages, fetched and extracted (pages.stream_articles, within the run's time budget
    for pages, each host's robots.txt asked once per run). The stream works on it while the run tags and stores
    the batch before, so this task lasts only as long as the run still has to wait for it."""
    return next(stream)


@task(name="tag", cache_policy=NO_CACHE)
def tag_task(articles: Sequence[Article], rules: Sequence[Path],
             pool: Executor) -> tuple[list[Verdict], dict[str, Signature]]:
    """Tag every article with every watchlist and sign it for clustering, in chunks on the run's pool."""
    return tag_and_sign(articles, rules, pool)


def worth_retrying(task: object, task_run: object, state: State[Any]) -> bool:
    """Retry a failed store (a database locked for a moment), unless the disk is full or the warehouse is
    damaged: the same write would fail again, 10 s later each time."""
    exc = state.result(raise_on_failure=False)
    return not (isinstance(exc, BaseException) and (disk_full(exc) or "warehouse is damaged" in str(exc)))


@task(name="store", retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying, cache_policy=NO_CACHE)
def store_task(runs: RunStore, batch: RunBatch, finished_at: datetime, part: RunPart | None = None) -> StoreReport:
    """Claim the run's (or its `part`'s) stories and alerts in the state database, write its records to the lake
    in one commit, then release its alerts for delivery (warehouse/store.py)."""
    return runs.store_run(batch, finished_at=finished_at, part=part)


@task(name="cluster", cache_policy=NO_CACHE)
def cluster_task(runs: RunStore, articles: Sequence[Article], signatures: Mapping[str, Signature],
                 alerts: AlertSettings, now: datetime) -> tuple[list[Article], list[ClusterRecord]]:
    """Put every new article in a story cluster: a recent one it copies, or a new one."""
    if not articles:  # an unchanged poll: no need to read and index the recent clusters (~0.25 s at 5,000)
        return [], []
    recent = runs.recent_clusters(since=now - timedelta(days=alerts.cluster_days))
    return assign_clusters(articles, recent, threshold=alerts.cluster_similarity, now=now, signatures=signatures)


@task(name="queue-signals", cache_policy=NO_CACHE)
def signals_task(wh: Warehouse, alerts: AlertSettings, now: datetime) -> int:
    """Queue spike and feed-health alerts in the ledger."""
    return queue_signals(wh, alerts, now=now)


@task(name="deliver-alerts", cache_policy=NO_CACHE)
def deliver_task(wh: Warehouse, alerts: AlertSettings, now: datetime) -> DeliveryReport:
    """Send every due pending alert (this run's and earlier failures); each is marked right after its send."""
    return deliver_pending(wh, alerts, AppriseNotifier(), now=now)
