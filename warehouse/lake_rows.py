"""Records to rows (pure): the column tuples the lake's tables take, and the alert content the ledger keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from newsmon.records import AlertRecord, Article, ClusterRecord, FeedResult, RunBatch, Verdict, stable_id

ARTICLE_COLUMNS = ("article_id", "url", "canonical_url", "feed_url", "feed_name", "entry_key", "title", "summary",
                   "text", "author", "site_name", "language", "published_at", "fetched_at", "word_count",
                   "extraction_status", "extraction_note", "content_hash", "run_id", "cluster_id",
                   "first_seen_at", "updated_at", "guid", "edits", "url_key")
FEED_COLUMNS = ("feed_url", "name", "etag", "last_modified", "body_hash", "last_status", "last_error",
                "consecutive_failures", "last_polled_at", "last_success_at", "next_poll_at", "entries_seen",
                "effective_url")
ALERT_COLUMNS = ("alert_id", "article_id", "watchlist", "channel", "channel_name", "status", "attempts",
                 "last_error", "created_at", "last_attempt_at", "sent_at", "kind", "cluster_id", "subject", "body",
                 "next_attempt_at", "delivery_key")
CLUSTER_COLUMNS = ("cluster_id", "seed_article_id", "title", "first_published_at", "created_at")
EVIDENCE_KEYS = ("term", "concept", "where", "start", "end", "snippet", "weight", "text")

Row = tuple[Any, ...]


def article_row(a: Article, run_id: str, first_seen_at: datetime | None = None, edits: int = 0) -> Row:
    return (a.article_id, a.url, a.canonical_url, a.feed_url, a.feed_name, a.entry_key, a.title, a.summary,
            a.text, a.author, a.site_name, a.language, a.published_at, a.fetched_at, a.word_count,
            a.extraction_status, a.extraction_note, a.content_hash, run_id,
            a.cluster_id or stable_id("cluster", a.article_id), first_seen_at or a.fetched_at, a.updated_at,
            a.guid, edits, a.url_key)


def tag_rows(v: Verdict, at: datetime) -> list[Row]:
    rows = []
    for label, score in v.scores:
        ev = [{k: getattr(e, k) for k in EVIDENCE_KEYS} for e in v.evidence if e.label == label]
        rows.append((v.article_id, v.watchlist, label, score, label in v.tags, v.rules_version, ev, at))
    return rows


def verdict_row(v: Verdict, at: datetime) -> Row:
    return (v.article_id, v.watchlist, v.rules_version, v.match, v.score, list(v.tags), at)


def fetch_log_rows(batch: RunBatch) -> list[Row]:
    rows: list[Row] = [(batch.run_id, r.fetched_at, "feed", r.feed.url, r.feed.url, r.status, r.error or r.bozo)
                       for r in batch.feed_results]
    rows += [(batch.run_id, batch.started_at, "page", feed_url, url, None, err)
             for feed_url, url, err in batch.page_errors]
    rows += [(batch.run_id, batch.started_at, "page", feed_url, url, None, f"not fetched: {why}; left for the next run")
             for feed_url, url, why in batch.pages_left]
    return rows


def run_row(batch: RunBatch, finished_at: datetime) -> Row:
    results = batch.feed_results
    return (batch.run_id, batch.config_name, batch.started_at, finished_at, len(results),
            sum(1 for r in results if r.ok and not r.not_modified), sum(1 for r in results if r.not_modified),
            sum(1 for r in results if not r.ok), len(batch.articles), sum(1 for v in batch.verdicts if v.match),
            len(batch.alerts))


def own_clusters(batch: RunBatch) -> list[ClusterRecord]:
    """The run's new and joined clusters; an article stored without one is its own cluster."""
    alone = [ClusterRecord(stable_id("cluster", a.article_id), a.article_id, a.title, a.published_at or a.fetched_at,
                           a.fetched_at) for a in batch.articles if not a.cluster_id]
    return [*batch.clusters, *alone]


def feed_state_row(r: FeedResult) -> Row:
    """What one poll changes of a feed's state (the counters are folded in by the state's upsert)."""
    return (r.feed.url, r.feed.name, r.etag, r.last_modified, r.body_hash, r.status, r.error,
            0 if r.ok else 1, r.fetched_at, r.fetched_at if r.ok else None, r.next_poll_at, len(r.entries),
            r.effective_url)


def with_snippets(a: AlertRecord, verdicts: Sequence[Verdict]) -> AlertRecord:
    """A story alert with its evidence snippets, taken from the run that queues it: delivery reads the
    message's content from the ledger and never has to read the lake."""
    verdict = next((v for v in verdicts if v.article_id == a.article_id and v.watchlist == a.watchlist), None)
    if a.kind != "story" or verdict is None:
        return a
    snippets = sorted({e.snippet for e in verdict.evidence if e.label in verdict.tags} - {""})
    return replace(a, snippets=tuple(snippets))


def columns(rows: Sequence[Row]) -> list[list[Any]]:
    """Rows as one list per column (bound as list parameters and unnested in step: one INSERT per table)."""
    return [list(c) for c in zip(*rows, strict=True)]
