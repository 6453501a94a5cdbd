"""The warehouse: pipeline state in a state database, records in a DuckLake.

A run is stored in three steps, each one transaction:
1. claim (state): the run's article ids, entry aliases, clusters, match history and alerts (held) go in under
   unique keys; a story another run claimed first is dropped from this run; feed poll state is updated;
2. write (lake): the claimed articles, tags, verdicts, clusters, fetch log, the feed and alert mirrors and the
   run row, in one DuckLake commit;
3. finish (state): the run's alerts become deliverable.
A run that dies between 1 and 3 is found by the next one: if its run row reached the lake it is finished,
otherwise its claims are released and its feeds' validators cleared, so its entries are fetched again.

A large run is stored in parts (flows.poll stores each extraction batch as it finishes, see RunPart): each part
goes through the same three steps under its own claim id; only the last carries the feed results and the run's
row (poll_runs). A part's lake commit is labelled with its claim id (the snapshot's commit_extra_info), which
is how recovery tells a part that reached the lake from one that did not.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from newsmon.records import (
    AlertRecord,
    ClusterRecord,
    FeedResult,
    FeedState,
    RunBatch,
    StoredEntry,
    stable_id,
    url_key,
)
from warehouse import lake_rows as lr
from warehouse.attach import LAKE_ALIAS
from warehouse.lake import Lake, insert, replace_rows
from warehouse.state import Cursor, StateDB, dt, ts

# A claim older than this whose process cannot be checked (another machine) is taken as dead and released.
CLAIM_LEASE = timedelta(minutes=30)

_ALERT_FIELDS = ("alert_id, article_id, watchlist, channel, status, attempts, title, url, source, published_at, "
                 "score, labels, evidence, channel_name, kind, cluster_id, snippets, subject, body")


@dataclass(frozen=True)
class StoreReport:
    """What storing a run did: its new articles stored, and stories another run had claimed first."""

    articles: int
    claimed_elsewhere: int = 0
    matches: int = 0  # matching verdicts stored
    alerts: int = 0  # story alerts claimed

    def describe(self) -> str:
        extra = f", {self.claimed_elsewhere} already stored by another run" if self.claimed_elsewhere else ""
        return f"stored {self.articles} articles{extra}"

    def __add__(self, other: StoreReport) -> StoreReport:
        return StoreReport(self.articles + other.articles, self.claimed_elsewhere + other.claimed_elsewhere,
                           self.matches + other.matches, self.alerts + other.alerts)


@dataclass(frozen=True)
class RunPart:
    """One part of a run stored in several (one extraction batch): its number and whether it is the run's
    last. Each part is claimed, written (one lake commit) and finished on its own, under the claim id
    `<run_id>.<number>`; the last part carries the run's feed results (validators, next poll: stored only once
    every entry of the run is) and writes the run's poll_runs row, with the totals of the parts before it
    (`earlier`). A run that dies after some parts keeps them; the next run re-reads its feeds and finds the
    stored entries known."""

    number: int
    last: bool
    earlier: StoreReport = StoreReport(0)


@dataclass(frozen=True)
class DeliveryOutcome:
    """One alert's send: `error` None when it went out."""

    alert_id: str
    error: str | None


class RunStore:
    """Pipeline writes and the reads that decide them (identity, feed state, clusters, the alert ledger)."""

    def __init__(self, state: StateDB, lake: Lake) -> None:
        self.state = state
        self.lake = lake
        self.recover()

    # -- identity and poll state --------------------------------------------------------------------

    def feed_states(self) -> dict[str, FeedState]:
        rows = self.state.read("SELECT feed_url, etag, last_modified, body_hash, consecutive_failures, "
                               "next_poll_at, effective_url, last_status, last_success_at FROM feeds")
        return {r[0]: FeedState(r[0], r[1], r[2], r[3], r[4], dt(r[5]), r[6], r[7], dt(r[8])) for r in rows}

    def feed_failures(self) -> list[tuple[str, str, int, datetime | None, datetime | None, str | None]]:
        """Every feed's url, name, consecutive failures, last success, first poll and last error, by url."""
        return [(r[0], r[1] or "", r[2], dt(r[3]), dt(r[4]), r[5]) for r in self.state.read(
            "SELECT feed_url, name, consecutive_failures, last_success_at, first_polled_at, last_error FROM feeds "
            "ORDER BY feed_url")]

    def known_entries(self, aliases: Iterable[str]) -> dict[str, StoredEntry]:
        """The story behind each known alias (GUID, normalised link or title+date fingerprint)."""
        rows = self.state.read_in("SELECT a.alias, s.article_id, s.feed_url, s.title, s.summary FROM aliases a "
                                  "JOIN stories s ON s.article_id = a.article_id WHERE a.alias IN ({in_})", aliases)
        return {r[0]: StoredEntry(r[1], r[2], r[3] or "", r[4] or "") for r in rows}

    def article_ids_by_url_key(self, keys: Iterable[str]) -> dict[str, str]:
        """Article id for each of `keys` (records.url_key) that a stored article has (canonical or own link)."""
        wanted = set(keys)
        found: dict[str, str] = {}
        for col in ("url_key", "link_key"):
            for key, article_id in self.state.read_in(f"SELECT {col}, min(article_id) FROM stories "
                                                      f"WHERE {col} IN ({{in_}}) GROUP BY {col}", wanted):
                found.setdefault(key, article_id)
        return found

    def recent_clusters(self, *, since: datetime) -> list[ClusterRecord]:
        rows = self.state.read("SELECT cluster_id, seed_article_id, title, first_published_at, created_at, "
                               "signature FROM clusters WHERE created_at >= ? AND signature IS NOT NULL "
                               "ORDER BY created_at", [ts(since)])
        return [ClusterRecord(r[0], r[1], r[2] or "", _when(r[3]), _when(r[4]),
                              signature=array("I", r[5])) for r in rows]

    def forget_signatures(self, *, before: datetime) -> int:
        """Drop the text signatures of clusters made before `before`: clustering compares a new story only with
        clusters of the last `[alerts] cluster_days`, and a signature is the bulk of a cluster's row."""
        with self.state.tx() as cur:
            return len(cur.execute("UPDATE clusters SET signature = NULL WHERE created_at < ? AND signature IS NOT "
                                   "NULL RETURNING cluster_id", [ts(before)]))

    # -- storing a run ------------------------------------------------------------------------------

    def store_run(self, batch: RunBatch, *, finished_at: datetime, part: RunPart | None = None) -> StoreReport:
        """Store a run (or one `part` of it) once: storing it again (a retried task) changes nothing."""
        claim_id = batch.run_id if part is None else f"{batch.run_id}.{part.number}"
        kept = self._claim(batch, finished_at, claim_id)
        if kept is None:
            return StoreReport(0)
        earlier = StoreReport(0) if part is None else part.earlier if part.last else None
        try:
            self.lake.write(lambda con: self._write_run(con, kept, finished_at, claim_id, earlier))
        except BaseException:
            self._release(claim_id)
            raise
        self._finish(claim_id, finished_at)
        return StoreReport(len(kept.articles), len(batch.articles) - len(kept.articles),
                           sum(1 for v in kept.verdicts if v.match), len(kept.alerts))

    def _claim(self, batch: RunBatch, now: datetime, claim_id: str) -> RunBatch | None:
        """The run as far as it now owns its stories (None: the run was stored before). State rows carry
        `claim_id` (the run's id, or its part's), lake rows the run's id."""
        with self.state.tx() as cur:
            before = cur.one("SELECT state FROM runs WHERE run_id = ?", [claim_id])
            if before is not None and before[0] != "released":
                return None
            cur.execute("DELETE FROM runs WHERE run_id = ?", [claim_id])
            cur.execute("INSERT INTO runs (run_id, config, started_at, claimed_at, state, host, pid) "
                        "VALUES (?, ?, ?, ?, 'claimed', ?, ?)",
                        [claim_id, batch.config_name, ts(batch.started_at), ts(datetime.now(UTC)),
                         self.state.host, os.getpid()])
            run_id, batch = batch.run_id, replace(batch, run_id=claim_id)
            owners = self._stored_elsewhere(batch)
            batch = _point_at(batch, owners)
            # one statement for the run's stories (not a round trip each); what this run now owns is what
            # carries its run id afterwards (a story another run holds keeps that run's id)
            cur.many("INSERT INTO stories (article_id, run_id, feed_url, feed_name, title, summary, url_key, "
                     "link_key, cluster_id, published_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
                     "ON CONFLICT (article_id) DO NOTHING",
                     [(a.article_id, batch.run_id, a.feed_url, a.feed_name, a.title, a.summary, a.url_key,
                       url_key(a.url), a.cluster_id or stable_id("cluster", a.article_id),
                       ts(a.published_at or a.fetched_at)) for a in batch.articles if a.article_id not in owners])
            claimed = {r[0] for r in cur.execute("SELECT article_id FROM stories WHERE run_id = ?", [batch.run_id])}
            kept = _only(batch, claimed)
            cur.many("INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT (alias) DO NOTHING",
                     [(alias, aid, batch.run_id) for alias, aid in batch.aliases])
            cur.many("INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT (alias) DO NOTHING",
                     [(f"id:{d.alias_id}", d.article_id, batch.run_id) for d in batch.url_aliases])
            for e in batch.edits:
                cur.execute("UPDATE stories SET title = ?, summary = ? WHERE article_id = ?",
                            [e.title, e.summary, e.article_id])
            _claim_clusters(cur, kept)
            cur.many("INSERT INTO matched VALUES (?, ?, ?, ?, ?) ON CONFLICT (cluster_id, watchlist) DO NOTHING",
                     _matched_rows(kept))
            _queue(cur, [lr.with_snippets(a, kept.verdicts) for a in kept.alerts], now, "held", batch.run_id)
            _update_feeds(cur, batch.feed_results, batch.run_id)
        return replace(kept, run_id=run_id)

    def _stored_elsewhere(self, batch: RunBatch) -> dict[str, str]:
        """The run's new stories that another run stored since this one looked them up (a shard that polled a
        copy at the same moment), each with the article it is: found by one of its entry identities (GUID, link,
        title+minute) or its page's URL key, as the lookups before fetching would have found it."""
        ids = {a.article_id for a in batch.articles}
        mine = {alias: aid for alias, aid in batch.aliases if aid in ids}
        owners = {mine[alias]: s.article_id for alias, s in self.known_entries(mine).items()
                  if s.article_id != mine[alias]}
        keys = {a.article_id: (a.url_key, url_key(a.url)) for a in batch.articles if a.article_id not in owners}
        found = self.article_ids_by_url_key(k for pair in keys.values() for k in pair)
        for aid, pair in keys.items():
            other = next((found[k] for k in pair if found.get(k, aid) != aid), None)
            if other is not None:
                owners[aid] = other
        return owners

    def _write_run(self, con: duckdb.DuckDBPyConnection, batch: RunBatch, finished_at: datetime, claim_id: str,
                   earlier: StoreReport | None) -> None:
        """One lake commit: a run's, or a part's; the run's poll_runs row (totals: `earlier`, the parts stored
        before this one, plus this) comes with a run stored whole or its last part (`earlier` None: no row)."""
        con.execute(f"CALL {LAKE_ALIAS}.set_commit_message('newsmon', ?, extra_info => ?)",
                    [f"run {batch.run_id}", claim_id])  # recovery's evidence that this commit happened
        insert(con, "fetch_log", lr.fetch_log_rows(batch))
        insert(con, "articles", [lr.article_row(a, batch.run_id) for a in batch.articles], lr.ARTICLE_COLUMNS)
        insert(con, "entry_aliases", [r for r in batch.aliases
                                      if r[1] in {a.article_id for a in batch.articles}])
        insert(con, "article_aliases", [(d.alias_id, d.article_id, d.url, d.url_key, finished_at)
                                        for d in batch.url_aliases])
        for e in batch.edits:
            con.execute("UPDATE articles SET title = ?, summary = ?, updated_at = ?, edits = coalesce(edits, 0) + 1 "
                        "WHERE article_id = ?", [e.title, e.summary, e.updated_at, e.article_id])
        insert(con, "tags", [r for v in batch.verdicts for r in lr.tag_rows(v, finished_at)])
        insert(con, "verdicts", [lr.verdict_row(v, finished_at) for v in batch.verdicts])
        clusters = {c.cluster_id for c in lr.own_clusters(batch)}
        replace_rows(con, "clusters", "cluster_id", self._cluster_rows(clusters), lr.CLUSTER_COLUMNS)
        replace_rows(con, "feeds", "feed_url", self._feed_rows({r.feed.url for r in batch.feed_results}),
                     lr.FEED_COLUMNS)
        held = [(*r[:5], "pending", *r[6:]) for r in self._alert_rows(run_id=claim_id)]  # deliverable once stored
        replace_rows(con, "alerts", "alert_id", held, lr.ALERT_COLUMNS)
        if earlier is None:
            return
        row = lr.run_row(batch, finished_at)
        insert(con, "poll_runs", [(*row[:8], row[8] + earlier.articles, row[9] + earlier.matches,
                                   row[10] + earlier.alerts)])

    def _finish(self, run_id: str, now: datetime) -> None:
        with self.state.tx() as cur:
            cur.execute("UPDATE alerts SET status = 'pending', synced = 1 WHERE run_id = ? AND status = 'held'",
                        [run_id])
            cur.execute("UPDATE runs SET state = 'stored', finished_at = ? WHERE run_id = ?", [ts(now), run_id])

    def _release(self, run_id: str) -> None:
        """Undo a run's claims: its stories are fetched again next time (its feeds lose their validators)."""
        with self.state.tx() as cur:
            for table in ("stories", "aliases", "clusters", "matched"):
                cur.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            cur.execute("DELETE FROM alerts WHERE run_id = ? AND status = 'held'", [run_id])
            cur.execute("UPDATE feeds SET etag = NULL, last_modified = NULL, body_hash = NULL, next_poll_at = NULL "
                        "WHERE run_id = ?", [run_id])
            cur.execute("UPDATE runs SET state = 'released' WHERE run_id = ?", [run_id])

    def recover(self) -> None:
        """Finish or release the claims of runs that died between claiming and finishing."""
        now = datetime.now(UTC)
        for run_id, host, pid, claimed_at in self.state.read(
                "SELECT run_id, host, pid, claimed_at FROM runs WHERE state = 'claimed'"):
            if host == self.state.host:
                if pid == os.getpid() or self.state.alive_here(host, pid):
                    continue  # a live run on this machine, however long it takes
            elif now - _when(claimed_at) <= CLAIM_LEASE:
                continue  # another machine's run, within its lease
            if self._committed(run_id):
                self._finish(run_id, now)
            else:
                self._release(run_id)

    def _committed(self, claim_id: str) -> bool:
        """Whether the lake commit of a run (or part) claimed as `claim_id` happened: its labelled snapshot,
        its run row (a run stored whole), or, should the snapshot have been expired, one of its articles."""
        if self.lake.read(f"SELECT count(*) FROM {LAKE_ALIAS}.snapshots() WHERE commit_extra_info = ?",
                          [claim_id])[0][0]:
            return True
        if self.lake.read("SELECT count(*) FROM poll_runs WHERE run_id = ?", [claim_id])[0][0]:
            return True
        one = self.state.read("SELECT article_id FROM stories WHERE run_id = ? LIMIT 1", [claim_id])
        return bool(one) and bool(self.lake.read("SELECT count(*) FROM articles WHERE article_id = ?",
                                                 [one[0][0]])[0][0])

    # -- mirrors of state rows in the lake ----------------------------------------------------------

    def _feed_rows(self, urls: set[str]) -> list[lr.Row]:
        rows = self.state.read_in(f"SELECT {', '.join(lr.FEED_COLUMNS)} FROM feeds WHERE feed_url IN ({{in_}})",
                                  urls)
        return [_times(r, (8, 9, 10)) for r in rows]

    def _cluster_rows(self, ids: set[str]) -> list[lr.Row]:
        rows = self.state.read_in(f"SELECT {', '.join(lr.CLUSTER_COLUMNS)} FROM clusters "
                                  "WHERE cluster_id IN ({in_})", ids)
        return [_times(r, (3, 4)) for r in rows]

    def _alert_rows(self, *, run_id: str | None = None) -> list[lr.Row]:
        where = "run_id = ? AND status = 'held'" if run_id else "synced = 0"
        rows = self.state.read(f"SELECT {', '.join(lr.ALERT_COLUMNS)} FROM alerts WHERE {where}",
                               [run_id] if run_id else [])
        return [_times(r, (8, 9, 10, 15)) for r in rows]

    def sync_alerts(self) -> int:
        """Copy ledger rows changed since the last copy (delivery outcomes, signals) to the lake's `alerts`."""
        rows = self._alert_rows()
        if rows:
            self.lake.write(lambda con: replace_rows(con, "alerts", "alert_id", rows, lr.ALERT_COLUMNS))
            with self.state.tx() as cur:
                cur.many("UPDATE alerts SET synced = 1 WHERE alert_id = ? AND attempts = ? AND status = ?",
                         [(r[0], r[6], r[5]) for r in rows])
        return len(rows)

    # -- the alert ledger ---------------------------------------------------------------------------

    @contextmanager
    def claiming(self) -> Iterator[None]:
        """One run at a time between reading recent clusters and claiming its stories (held for seconds), so
        copies of one story that two runs (shards) find at the same moment land in one cluster."""
        with self.state.exclusive("claim"):
            yield

    @contextmanager
    def delivering(self) -> Iterator[None]:
        """One sender at a time: two runs that overlap (or a run and `newsmon digest --send`) would otherwise both
        read the same pending alerts and both send them. Held while pending alerts are read, sent and marked, and
        released if the sender dies (its message in flight is then the one repeat the ledger allows)."""
        with self.state.exclusive("delivery"):
            yield

    @contextmanager
    def signalling(self) -> Iterator[None]:
        """One run at a time between judging spikes and feed health and queuing their alerts: a shard reads the
        other's spike (and stays quiet) instead of queuing its own in the same instant."""
        with self.state.exclusive("signals"):
            yield

    def pending_alerts(self, *, max_attempts: int, now: datetime | None = None) -> list[AlertRecord]:
        """Alerts to send (not given up on, past their retry backoff), with every outlet of the story so far."""
        rows = self.state.read(f"SELECT {_ALERT_FIELDS} FROM alerts WHERE status = 'pending' AND attempts < ? "
                               "AND (CAST(? AS TEXT) IS NULL OR next_attempt_at IS NULL OR next_attempt_at <= ?) "
                               "ORDER BY created_at, published_at, alert_id", [max_attempts, ts(now), ts(now)])
        outlets = self._outlets({r[15] for r in rows if r[15]})
        return [_alert(r, outlets.get(r[15], ())) for r in rows]

    def _outlets(self, clusters: set[str]) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[tuple[str, str]]] = {}
        for cluster, name, first in self.state.read_in(
                "SELECT cluster_id, feed_name, min(published_at) FROM stories WHERE cluster_id IN ({in_}) "
                "AND feed_name IS NOT NULL GROUP BY cluster_id, feed_name", clusters):
            found.setdefault(cluster, []).append((first, name))
        return {c: tuple(n for _, n in sorted(v)) for c, v in found.items()}

    def mark_alerts(self, outcomes: Sequence[DeliveryOutcome], *, now: datetime, max_attempts: int,
                    retry_s: float = 0.0, delivery_key: str | None = None) -> None:
        """Sent, or one failed attempt retried no sooner than retry_s x 2^(earlier attempts) (cap: a day)."""
        with self.state.tx() as cur:
            for o in outcomes:
                row = cur.one("SELECT attempts FROM alerts WHERE alert_id = ? AND status = 'pending'", [o.alert_id])
                if row is None:
                    continue
                attempts = int(row[0]) + 1
                if o.error is None:
                    status, retry_at, sent = "sent", None, ts(now)
                else:
                    status = "failed" if attempts >= max_attempts else "pending"
                    retry_at = ts(now + timedelta(seconds=min(retry_s * 2 ** (attempts - 1), 86400)))
                    sent = None
                cur.execute("UPDATE alerts SET attempts = ?, last_attempt_at = ?, last_error = ?, delivery_key = ?, "
                            "next_attempt_at = ?, sent_at = coalesce(?, sent_at), status = ?, synced = 0 "
                            "WHERE alert_id = ?", [attempts, ts(now), o.error, delivery_key, retry_at, sent, status,
                                                   o.alert_id])

    def queue_alerts(self, alerts: Sequence[AlertRecord], *, now: datetime) -> int:
        """Add pending alerts from outside a run (spike, feed health, digest); known ids stay as they are."""
        with self.state.tx() as cur:
            return _queue(cur, alerts, now, "pending", None)

    def last_alerts(self, kind: str) -> dict[str, datetime]:
        """When an alert of `kind` was last queued, per watchlist (spike quiet periods)."""
        return {r[0]: _when(r[1]) for r in self.state.read(
            "SELECT watchlist, max(created_at) FROM alerts WHERE kind = ? GROUP BY watchlist", [kind])}

    def polling_since(self) -> datetime | None:
        """When the system first polled a feed (spikes need a baseline: see newsmon.alerts.signals)."""
        row = self.state.read("SELECT min(first_polled_at) FROM feeds")
        return _when(row[0][0]) if row and row[0][0] else None

    def match_history(self, *, since: datetime) -> dict[str, list[tuple[datetime, str]]]:
        """Per watchlist, (first publication time, title) of every matching story cluster since `since`."""
        out: dict[str, list[tuple[datetime, str]]] = {}
        for wl, at, title in self.state.read("SELECT watchlist, first_published_at, title FROM matched "
                                             "WHERE first_published_at >= ?", [ts(since)]):
            out.setdefault(wl, []).append((_when(at), title or ""))
        return out


def _only(batch: RunBatch, claimed: set[str]) -> RunBatch:
    """The run without the stories another run claimed first (and their verdicts, alerts, clusters)."""
    if len(claimed) == len(batch.articles):
        return batch
    keep = [a for a in batch.articles if a.article_id in claimed]
    cluster_ids = {a.cluster_id for a in keep}
    return replace(batch, articles=tuple(keep),
                   verdicts=tuple(v for v in batch.verdicts if v.article_id in claimed),
                   alerts=tuple(a for a in batch.alerts if a.kind != "story" or a.article_id in claimed),
                   clusters=tuple(c for c in batch.clusters if c.cluster_id in cluster_ids))


def _point_at(batch: RunBatch, owners: dict[str, str]) -> RunBatch:
    """The run with the identities and URL aliases of stories stored elsewhere pointing at those stories."""
    if not owners:
        return batch
    return replace(batch, aliases=tuple((alias, owners.get(aid, aid)) for alias, aid in batch.aliases),
                   url_aliases=tuple(replace(d, article_id=owners.get(d.article_id, d.article_id))
                                     for d in batch.url_aliases))


def _claim_clusters(cur: Cursor, batch: RunBatch) -> None:
    cur.many("INSERT INTO clusters VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cluster_id) DO UPDATE SET "
             "first_published_at = CASE WHEN excluded.first_published_at < clusters.first_published_at "
             "THEN excluded.first_published_at ELSE clusters.first_published_at END",
             [(c.cluster_id, c.seed_article_id, c.title, ts(c.first_published_at), ts(c.created_at),
               array("I", c.signature).tobytes() if c.signature else None, batch.run_id)
              for c in lr.own_clusters(batch)])


def _matched_rows(batch: RunBatch) -> list[lr.Row]:
    by_id = {a.article_id: a for a in batch.articles}
    first = {c.cluster_id: c.first_published_at for c in lr.own_clusters(batch)}
    rows = []
    for v in batch.verdicts:
        a = by_id.get(v.article_id)
        if v.match and a is not None:
            cid = a.cluster_id or stable_id("cluster", a.article_id)
            rows.append((cid, v.watchlist, ts(first.get(cid, a.published_at or a.fetched_at)), a.title, batch.run_id))
    return rows


def _queue(cur: Cursor, alerts: Sequence[AlertRecord], now: datetime, status: str, run_id: str | None) -> int:
    new = 0
    for a in alerts:
        got = cur.execute(
            "INSERT INTO alerts (alert_id, kind, article_id, cluster_id, watchlist, channel, channel_name, status, "
            "attempts, created_at, title, url, source, published_at, score, labels, evidence, snippets, subject, "
            "body, run_id, synced) VALUES (?,?,?,?,?,?,?,?,0,?,?,?,?,?,?,?,?,?,?,?,?,0) "
            "ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id",
            [a.alert_id, a.kind, a.article_id or None, a.cluster_id, a.watchlist, a.channel, a.channel_name, status,
             ts(now), a.title, a.url, a.source, ts(a.published_at), a.score, json.dumps(list(a.labels)),
             json.dumps(list(a.evidence)), json.dumps(list(a.snippets)), a.subject or None, a.body or None, run_id])
        new += len(got)
    return new


def _update_feeds(cur: Cursor, results: Sequence[FeedResult], run_id: str) -> None:
    cur.many("""INSERT INTO feeds (feed_url, name, etag, last_modified, body_hash, last_status, last_error,
                    consecutive_failures, last_polled_at, last_success_at, next_poll_at, entries_seen, effective_url,
                    first_polled_at, run_id)
        VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
        ON CONFLICT (feed_url) DO UPDATE SET
        name = excluded.name,
        etag = coalesce(excluded.etag, feeds.etag),
        last_modified = coalesce(excluded.last_modified, feeds.last_modified),
        body_hash = coalesce(excluded.body_hash, feeds.body_hash),
        last_status = excluded.last_status,
        last_error = excluded.last_error,
        consecutive_failures = CASE WHEN excluded.last_error IS NULL THEN 0 ELSE feeds.consecutive_failures + 1 END,
        last_polled_at = excluded.last_polled_at,
        last_success_at = coalesce(excluded.last_success_at, feeds.last_success_at),
        next_poll_at = excluded.next_poll_at,
        entries_seen = feeds.entries_seen + excluded.entries_seen,
        effective_url = coalesce(excluded.effective_url, feeds.effective_url),
        run_id = excluded.run_id""",
             [(*_iso(lr.feed_state_row(r)), ts(r.fetched_at), run_id) for r in results])


def _iso(row: lr.Row) -> lr.Row:
    return tuple(ts(v) if isinstance(v, datetime) else v for v in row)


def _times(row: Sequence[Any], at: Sequence[int]) -> lr.Row:
    return tuple(dt(v) if i in at else v for i, v in enumerate(row))


def _when(text: str) -> datetime:
    moment = dt(text)
    assert moment is not None
    return moment


def _alert(r: Sequence[Any], outlets: tuple[str, ...]) -> AlertRecord:
    return AlertRecord(
        alert_id=r[0], article_id=r[1] or "", watchlist=r[2], channel=r[3], status=r[4], attempts=r[5],
        title=r[6] or r[17] or "", url=r[7] or "", source=r[8] or "", published_at=dt(r[9]), score=r[10] or 0.0,
        labels=tuple(json.loads(r[11] or "[]")), evidence=tuple(json.loads(r[12] or "[]")), channel_name=r[13],
        kind=r[14], cluster_id=r[15], outlets=outlets or ((r[8],) if r[8] else ()),
        snippets=tuple(json.loads(r[16] or "[]")), subject=r[17] or "", body=r[18] or "")
