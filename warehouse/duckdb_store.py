"""DuckDB implementation of the warehouse.

DuckDB lets one process write a file, and any open connection in another process (read-only included)
blocks that writer. So this store never keeps the file open, and no reader can stop a run:

- every write (a run's records, alert delivery outcomes) is first spooled to `<warehouse>.spool/` as one
  atomically written JSON file (warehouse/spool.py);
- then one short transaction migrates the file if needed, merges every pending spooled batch in order
  (skipping batch ids already in `store_log`, so each is stored exactly once) and commits; the files are
  deleted after the commit;
- if another process holds the file past `lock_timeout_s`, the batch stays spooled, the run carries on
  (reads fall back to what they can see, alert delivery waits) and the next store merges it.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from newsmon.errors import StorageError, WarehouseLocked
from newsmon.records import AlertRecord, ClusterRecord, FeedState, FeedStatus, RunBatch, StoredEntry
from warehouse import StoreReport, rows, spool
from warehouse.export import export_statements
from warehouse.lock import lock_message
from warehouse.maintenance import MaintenanceMixin
from warehouse.queries import PENDING_ALERTS, STORY_MATCHES
from warehouse.schema import MIGRATIONS, SCHEMA_VERSION

LOCKED_RETRY_S = 1.0  # once the file was found locked, later operations of the same session wait this long
log = logging.getLogger(__name__)


class _Rejected(Exception):
    """A spooled batch that the warehouse refuses (bad data): moved aside so it cannot block later runs."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.path = path


_Written = tuple[spool.SpoolEntry, tuple[RunBatch, datetime] | None]  # a batch this process just spooled


class DuckDBWarehouse(MaintenanceMixin):
    def __init__(self, path: Path, *, lock_timeout_s: float = 60.0, read_only: bool = False) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self.read_only = read_only
        self.spool = spool.spool_dir(self.path)
        self.locked_by: str | None = None  # set once this session found the file locked past the timeout
        if read_only:
            if not self.path.exists():
                raise StorageError(f"{self.path}: no warehouse here yet; run `newsmon run` first")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            spool.clean_stale_temps(self.spool)
            try:
                self._merge()
            except WarehouseLocked as exc:
                self._note_locked(exc)

    # -- connections -------------------------------------------------------------------------------

    @contextmanager
    def _connect(self, *, read_only: bool = False, wait_s: float | None = None
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._open_with_retry(read_only or self.read_only, self._wait() if wait_s is None else wait_s)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        except duckdb.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        finally:
            con.close()

    def _wait(self) -> float:
        return self.lock_timeout_s if self.locked_by is None else min(self.lock_timeout_s, LOCKED_RETRY_S)

    def _open_with_retry(self, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + wait_s
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise StorageError(f"{self.path}: cannot open the warehouse ({exc})") from exc
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(lock_message(self.path, wait_s, exc, writing=not read_only)) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _note_locked(self, exc: WarehouseLocked) -> None:
        if self.locked_by is None:
            log.warning("%s", exc)
        self.locked_by = str(exc)

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StorageError(f"{self.path}: made by a newer newsmon (schema {version} > "
                               f"{SCHEMA_VERSION}); upgrade newsmon")
        for v in range(version, SCHEMA_VERSION):
            con.execute(MIGRATIONS[v])
        con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE "
                    "SET value = excluded.value", [str(SCHEMA_VERSION)])

    # -- the spool and the merge -------------------------------------------------------------------

    def _submit(self, kind: str, batch_id: str, payload: dict[str, Any],
                current: tuple[RunBatch, datetime] | None = None) -> StoreReport:
        """Spool a batch, then merge everything pending; if the file stays locked, it waits spooled."""
        entry = spool.write_entry(self.spool, kind, batch_id, payload, spooled_at=datetime.now(UTC),
                                  schema_version=SCHEMA_VERSION)
        try:
            merged = self._merge({entry.path: (entry, current)})
        except WarehouseLocked as exc:
            self._note_locked(exc)
            return StoreReport(stored=False, merged=0, pending=len(spool.pending(self.spool)),
                               locked_by=str(exc))
        self.locked_by = None
        return StoreReport(stored=True, merged=merged, pending=0, locked_by=None)

    def _merge(self, written: dict[Path, _Written] | None = None) -> int:
        """Migrate, then store every pending spooled batch in one transaction; return how many were new."""
        paths = spool.pending(self.spool)
        try:
            with self._transaction() as con:
                self._migrate(con)
                merged = sum(self._merge_one(con, p, (written or {}).get(p)) for p in paths)
        except _Rejected as rej:
            aside = self.spool / "rejected" / rej.path.name
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(rej.path, aside)
            raise StorageError(f"{self.path}: a spooled batch was refused ({rej}); it was moved to {aside} "
                               "and nothing of that transaction was stored; later runs are not blocked") from rej
        spool.remove(paths)
        return merged

    def _merge_one(self, con: duckdb.DuckDBPyConnection, path: Path, written: _Written | None) -> int:
        try:
            entry = written[0] if written else spool.read_entry(path)
            if _already_stored(con, entry):
                return 0
            records = rows.apply(con, entry, written[1] if written else None)
            con.execute("INSERT INTO store_log VALUES (?, ?, ?, ?, ?)",
                        [entry.batch_id, entry.kind, entry.spooled_at, datetime.now(UTC), records])
        except (duckdb.Error, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, duckdb.IOException):
                raise
            raise _Rejected(path, exc) from exc
        return 1

    def pending_spool(self) -> int:
        """Spooled batches not in the warehouse yet (another process held the file at their store)."""
        return len(spool.pending(self.spool))

    # -- reads -------------------------------------------------------------------------------------

    def feed_states(self) -> dict[str, FeedState]:
        try:
            with self._connect(read_only=True) as con:
                rows = con.execute("SELECT feed_url, etag, last_modified, body_hash, consecutive_failures, "
                                   "next_poll_at, effective_url, last_status FROM feeds").fetchall()
        except WarehouseLocked as exc:  # poll every feed unconditionally this time
            self._note_locked(exc)
            return {}
        return {r[0]: FeedState(*r) for r in rows}

    def known_entries(self, aliases: Iterable[str]) -> dict[str, StoredEntry]:
        """The story behind each known alias (GUID, normalised link or fingerprint), stored or spooled and
        waiting to be: those stories are not fetched again."""
        wanted = sorted(set(aliases))
        if not wanted:
            return {}
        spooled, stories = self._spooled_aliases(set(wanted))
        elsewhere = sorted({aid for aid in spooled.values() if aid not in stories})
        try:
            with self._connect(read_only=True) as con:
                rows = con.execute("SELECT e.alias, a.article_id, a.feed_url, a.title, a.summary "
                                   "FROM entry_aliases e JOIN articles a USING (article_id) "
                                   "WHERE e.alias IN (SELECT unnest(?))", [wanted]).fetchall()
                rows += con.execute("SELECT NULL, article_id, feed_url, title, summary FROM articles "
                                    "WHERE article_id IN (SELECT unnest(?))", [elsewhere]).fetchall()
        except WarehouseLocked as exc:
            self._note_locked(exc)
            rows = []
        for r in rows:
            if r[0] is None:
                stories.setdefault(r[1], StoredEntry(r[1], r[2], r[3] or "", r[4] or ""))
        found = {alias: stories[aid] for alias, aid in spooled.items() if aid in stories}
        return found | {r[0]: StoredEntry(r[1], r[2], r[3] or "", r[4] or "") for r in rows if r[0] is not None}

    def _spooled_aliases(self, wanted: set[str]) -> tuple[dict[str, str], dict[str, StoredEntry]]:
        """From runs waiting in the spool: wanted alias -> article id, and their stories by id."""
        aliases: dict[str, str] = {}
        stories: dict[str, StoredEntry] = {}
        for batch in self._spooled_runs():
            aliases |= {alias: aid for alias, aid in batch.get("aliases", ()) if alias in wanted}
            stories |= {a["article_id"]: StoredEntry(a["article_id"], a["feed_url"], a["title"] or "",
                                                     a["summary"] or "") for a in batch["articles"]}
        return aliases, stories

    def known_article_ids(self, ids: Iterable[str]) -> set[str]:
        """Ids already stored, or spooled and waiting to be: they are not fetched again."""
        wanted = sorted(set(ids))
        if not wanted:
            return set()
        known = self._spooled_article_ids(set(wanted))
        try:
            with self._connect(read_only=True) as con:
                rows = con.execute("SELECT article_id FROM articles WHERE article_id IN (SELECT unnest($1)) UNION "
                                   "SELECT alias_id FROM article_aliases WHERE alias_id IN (SELECT unnest($1))",
                                   [wanted]).fetchall()
        except WarehouseLocked as exc:
            self._note_locked(exc)
            return known
        return known | {r[0] for r in rows}

    def _spooled_article_ids(self, wanted: set[str]) -> set[str]:
        found: set[str] = set()
        for batch in self._spooled_runs():
            found |= {a["article_id"] for a in batch["articles"]} & wanted
            found |= {a["alias_id"] for a in batch.get("url_aliases", ())} & wanted
        return found

    def _spooled_runs(self) -> Iterator[dict[str, Any]]:
        """The JSON of each run waiting in the spool, oldest first."""
        for p in spool.pending(self.spool):
            entry = spool.read_entry(p)
            if entry.kind == "run":
                yield entry.payload["batch"]

    def pending_alerts(self, *, max_attempts: int, now: datetime | None = None) -> list[AlertRecord]:
        """Alerts still to send (not yet given up on, and past their retry backoff when `now` is given),
        with what a message needs: for stories, every outlet of the cluster so far and evidence snippets.
        None while the file is locked or batches wait in the spool: an outcome must be recordable first."""
        if self.locked_by is not None or self.pending_spool():
            return []
        rows_ = self._read(PENDING_ALERTS, [max_attempts, now, now])
        return [AlertRecord(r[0], r[1] or "", r[2] or "", r[3], r[4], r[5], r[6] or r[16] or "", r[7] or "",
                            r[8] or "", r[9], score=r[10] or 0.0, labels=tuple(r[11] or ()),
                            evidence=tuple(sorted(r[12] or ())), channel_name=r[13], kind=r[14],
                            cluster_id=r[15], outlets=tuple(r[18] or ([r[8]] if r[8] else [])),
                            snippets=tuple(r[19] or ()), subject=r[16] or "", body=r[17] or "")
                for r in rows_]

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows, or none when the file stays locked (the caller then acts on nothing, never on a guess)."""
        try:
            with self._connect(read_only=True) as con:
                return con.execute(sql, list(params)).fetchall()
        except WarehouseLocked as exc:
            self._note_locked(exc)
            return []

    def recent_clusters(self, *, since: datetime) -> list[ClusterRecord]:
        """Clusters created since `since` that new articles may join (those with a signature)."""
        found = self._read("SELECT cluster_id, seed_article_id, title, first_published_at, created_at, signature "
                           "FROM clusters WHERE created_at >= ? AND signature IS NOT NULL ORDER BY created_at",
                           [since])
        return [ClusterRecord(*r[:5], signature=tuple(r[5])) for r in found]

    def story_matches(self, *, since: datetime, until: datetime) -> list[AlertRecord]:
        """Matching stories first published in [since, until], one per cluster x watchlist (its best-scored
        article), with every outlet and evidence snippets: what digests list."""
        return [AlertRecord("", r[0], r[1], "", "", 0, r[2] or "", r[3], r[4], r[5], score=r[6],
                            labels=tuple(r[7]), evidence=tuple(sorted(r[8] or ())), cluster_id=r[9],
                            outlets=tuple(r[10] or ()), snippets=tuple(r[11] or ()))
                for r in self._read(STORY_MATCHES, [since, until])]

    def match_history(self, *, since: datetime) -> dict[str, list[tuple[datetime, str]]]:
        """Per watchlist, (first publication time, title) of every matching story cluster since `since`."""
        out: dict[str, list[tuple[datetime, str]]] = {}
        for wl, at, title in self._read("""
                SELECT v.watchlist, c.first_published_at, c.title
                FROM verdicts v JOIN articles a USING (article_id) JOIN clusters c USING (cluster_id)
                WHERE v.match AND c.first_published_at >= ?
                GROUP BY ALL""", [since]):
            out.setdefault(wl, []).append((at, title or ""))
        return out

    def last_alerts(self, kind: str) -> dict[str, datetime]:
        """When an alert of `kind` was last queued, per watchlist (spike quiet periods)."""
        return {r[0]: r[1] for r in self._read(
            "SELECT watchlist, max(created_at) FROM alerts WHERE kind = ? GROUP BY 1", [kind])}

    def feed_statuses(self) -> list[FeedStatus]:
        """Every feed's failure state, with its first poll (for feeds that never succeeded)."""
        return [FeedStatus(*r) for r in self._read("""
                SELECT f.feed_url, f.name, f.consecutive_failures, f.last_success_at,
                       (SELECT min(l.logged_at) FROM fetch_log l WHERE l.kind = 'feed' AND l.url = f.feed_url),
                       f.last_error, h.silent, h.last_new_at, h.usual_gap_hours
                FROM feeds f JOIN feed_health h ON h.url = f.feed_url ORDER BY f.feed_url""")]

    def checkpoint(self) -> None:
        """Write the WAL into the file and reclaim space from deleted rows (maintenance); skipped, with a
        warning, while another process holds the file."""
        try:
            with self._connect() as con:
                con.execute("FORCE CHECKPOINT")
        except WarehouseLocked as exc:
            self._note_locked(exc)

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._connect(read_only=True) as con:
            cur = con.execute(sql, list(params))
            cols = [d[0] for d in cur.description or []]
            return cols, cur.fetchall()

    def export(self, out_dir: Path, fmt: str, *, since: datetime | None = None) -> list[tuple[str, int]]:
        """Copy every table (rows since `since`) to files under `out_dir`; return (table, rows) pairs."""
        out_dir.mkdir(parents=True, exist_ok=True)
        done = []
        with self._connect(read_only=True) as con:
            for table, count_sql, copy_sql, params in export_statements(out_dir, fmt, since):
                row = con.execute(count_sql, params).fetchone()
                con.execute(copy_sql, params)
                done.append((table, int(row[0]) if row else 0))
        return done

    # -- writes ------------------------------------------------------------------------------------

    def store_run(self, batch: RunBatch, *, finished_at: datetime) -> StoreReport:
        """Write a whole run (feeds, log, articles, tags, pending alerts, run row) in one transaction,
        through the spool: if the file stays locked, the run waits there for the next store."""
        return self._submit("run", batch.run_id, spool.encode_run(batch, finished_at), (batch, finished_at))

    def queue_alerts(self, alerts: Sequence[AlertRecord], *, now: datetime) -> int:
        """Add pending alerts outside a poll's store (spike, feed-health, digest); known ids are left as
        they are. Returns how many are new (0 while the file is locked: they wait in the spool)."""
        if not alerts:
            return 0
        before = self._read("SELECT count(*) FROM alerts")
        report = self._submit("alerts", f"alerts-{spool.new_id()}",
                              {"now": now.isoformat(), "alerts": spool.to_json(list(alerts))})
        after = self._read("SELECT count(*) FROM alerts") if report.stored else []
        return int(after[0][0] - before[0][0]) if before and after else 0

    def mark_alerts(self, outcomes: Sequence[tuple[str, str | None]], *, now: datetime, max_attempts: int,
                    retry_s: float = 0.0, delivery_key: str | None = None) -> StoreReport:
        """Record delivery outcomes: (alert_id, None) = sent, (alert_id, error) = one failed attempt, retried
        no sooner than `retry_s` x 2^(attempts before this one) seconds later (capped at a day)."""
        if not outcomes:
            return StoreReport(stored=True, merged=0, pending=self.pending_spool(), locked_by=None)
        payload = {"now": now.isoformat(), "max_attempts": max_attempts, "retry_s": retry_s,
                   "delivery_key": delivery_key, "outcomes": [list(o) for o in outcomes]}
        return self._submit("alert_outcomes", f"marks-{spool.new_id()}", payload)


def _already_stored(con: duckdb.DuckDBPyConnection, entry: spool.SpoolEntry) -> bool:
    if con.execute("SELECT 1 FROM store_log WHERE batch_id = ?", [entry.batch_id]).fetchall():
        return True
    return entry.kind == "run" and bool(
        con.execute("SELECT 1 FROM poll_runs WHERE run_id = ?", [entry.batch_id]).fetchall())
