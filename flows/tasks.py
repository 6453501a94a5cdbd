"""The only @task definitions: coarse (per run stage or batch, never per article), retries on network work."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from extractors import pages, poller
from flows import progress
from newsmon.alerts.notify import AppriseNotifier
from newsmon.alerts.policy import Channel, render_alert
from newsmon.config import HttpSettings
from newsmon.errors import AlertError
from newsmon.records import Article, Entry, FeedResult, FeedSpec, FeedState, RunBatch, Verdict
from newsmon.tagging import TagResult, load_watchlists
from warehouse import Warehouse

MAX_ALERT_ATTEMPTS = 5


@task(name="poll-feeds", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def poll_task(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState], http: HttpSettings,
              now: datetime) -> list[FeedResult]:
    """Fetch and parse every feed; a failing feed is a result with an error, not an exception."""
    progress.report("feeds", 0, len(feeds))
    results = poller.poll_feeds(feeds, states, http, now=now)
    progress.report("feeds", len(feeds), len(feeds))
    return results


@task(name="fetch-extract", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def extract_task(entries: Sequence[Entry], feed_names: Mapping[str, str], http: HttpSettings,
                 now: datetime, tick: Callable[[], None] | None = None,
                 ) -> tuple[list[Article], list[tuple[str, str, str]]]:
    """Fetch and extract one batch of new entries' pages."""
    return pages.fetch_articles(entries, feed_names, http, now=now, on_page=tick)


@task(name="tag", cache_policy=NO_CACHE)
def tag_task(articles: Sequence[Article], rules: Sequence[Path]) -> list[Verdict]:
    """Tag every article with every watchlist."""
    watchlists = load_watchlists(list(rules))
    return [to_verdict(a.article_id, wl.tag(a.title, a.text)) for a in articles for wl in watchlists]


def to_verdict(article_id: str, r: TagResult) -> Verdict:
    return Verdict(article_id=article_id, watchlist=r.watchlist, rules_version=r.rules_version, match=r.match,
                   score=r.score, tags=tuple(r.tags), scores=tuple(r.scores),
                   evidence=tuple(e.to_dict() for e in r.evidence))


@task(name="store", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def store_task(wh: Warehouse, batch: RunBatch, finished_at: datetime) -> None:
    """Write the run in one transaction (retried while another process holds the file)."""
    wh.store_run(batch, finished_at=finished_at)


@task(name="deliver-alerts", cache_policy=NO_CACHE)
def deliver_task(wh: Warehouse, urls: Sequence[str], now: datetime) -> tuple[int, list[str]]:
    """Send every pending alert (this run's and earlier failures); each is marked right after its send."""
    channels = {c.channel_id: c for c in (Channel(u) for u in urls)}
    notifier = AppriseNotifier()
    sent, errors = 0, []
    for alert in wh.pending_alerts(max_attempts=MAX_ALERT_ATTEMPTS):
        channel = channels.get(alert.channel)
        if channel is None:  # removed from the config since it was queued
            continue
        title, body = render_alert(alert)
        try:
            notifier.send(channel, title, body)
            outcome = None
            sent += 1
        except AlertError as exc:
            outcome = str(exc)
            errors.append(outcome)
        wh.mark_alerts([(alert.alert_id, outcome)], now=now, max_attempts=MAX_ALERT_ATTEMPTS)
    return sent, errors
