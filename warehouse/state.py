"""The pipeline's state database: what a run needs to decide, apart from the records analysts query.

Feed poll state and validators, the identity index of stories and entries, cluster signatures, the alert
ledger (with each message's content) and run records. Exactly-once rests here: one story per article id and
one alert per story cluster x channel are unique keys, claimed inside one transaction per run.

A local SQLite file (WAL) by default; analysts never open it, so nothing but another run ever waits on it,
and only for the milliseconds of a transaction. The SQL is the subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import sqlite3
import sys
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsmon.errors import StorageError

STATE_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    feed_url TEXT PRIMARY KEY, name TEXT, etag TEXT, last_modified TEXT, body_hash TEXT,
    last_status INTEGER, last_error TEXT, consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_polled_at TEXT, last_success_at TEXT, next_poll_at TEXT, entries_seen BIGINT NOT NULL DEFAULT 0,
    effective_url TEXT, first_polled_at TEXT, run_id TEXT);
CREATE TABLE IF NOT EXISTS stories (
    article_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, feed_url TEXT NOT NULL, feed_name TEXT, title TEXT,
    summary TEXT, url_key TEXT, link_key TEXT, cluster_id TEXT, published_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS stories_url_key ON stories (url_key);
CREATE INDEX IF NOT EXISTS stories_link_key ON stories (link_key);
CREATE INDEX IF NOT EXISTS stories_cluster ON stories (cluster_id);
CREATE INDEX IF NOT EXISTS stories_run ON stories (run_id);
CREATE TABLE IF NOT EXISTS aliases (alias TEXT PRIMARY KEY, article_id TEXT NOT NULL, run_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS aliases_run ON aliases (run_id);
CREATE TABLE IF NOT EXISTS clusters (
    cluster_id TEXT PRIMARY KEY, seed_article_id TEXT NOT NULL, title TEXT, first_published_at TEXT NOT NULL,
    created_at TEXT NOT NULL, signature {blob}, run_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS clusters_created ON clusters (created_at);
CREATE TABLE IF NOT EXISTS matched (
    cluster_id TEXT NOT NULL, watchlist TEXT NOT NULL, first_published_at TEXT NOT NULL, title TEXT,
    run_id TEXT NOT NULL, PRIMARY KEY (cluster_id, watchlist));
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY, kind TEXT NOT NULL, article_id TEXT, cluster_id TEXT, watchlist TEXT NOT NULL,
    channel TEXT NOT NULL, channel_name TEXT NOT NULL,
    status TEXT NOT NULL,            -- held (its run is not stored yet) | pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at TEXT NOT NULL, last_attempt_at TEXT,
    sent_at TEXT, next_attempt_at TEXT, delivery_key TEXT,
    title TEXT, url TEXT, source TEXT, published_at TEXT, score {real}, labels TEXT, evidence TEXT,
    snippets TEXT, subject TEXT, body TEXT,
    run_id TEXT, synced INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status);
CREATE INDEX IF NOT EXISTS alerts_unsynced ON alerts (synced);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, config TEXT, started_at TEXT NOT NULL, claimed_at TEXT NOT NULL,
    finished_at TEXT, state TEXT NOT NULL,   -- claimed | stored | released
    host TEXT NOT NULL, pid INTEGER NOT NULL);
"""


def ts(moment: datetime | None) -> str | None:
    """A moment as fixed-width ISO text in UTC: compares as text, reads the same in SQLite and PostgreSQL."""
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def is_postgres(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def shown(target: str | Path) -> str:
    """The state database's name for messages: a path, or a PostgreSQL URL without its password."""
    text = str(target)
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", text) if is_postgres(text) else text


class StateDB:
    """One connection, serialised by a lock (Prefect may call tasks from worker threads): a SQLite file, or a
    PostgreSQL database (`postgresql://...`) that shards on several machines share."""

    def __init__(self, target: str | Path) -> None:
        self.pg = is_postgres(target)
        self.path = Path("/nonexistent") if self.pg else Path(target)
        self.name = shown(target)
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        try:
            self._con = _connect_pg(str(target)) if self.pg else _connect_sqlite(self.path)
            with self.tx() as cur:
                if self.pg:  # two shards creating the tables at once would race on PostgreSQL's catalog
                    cur.execute("SELECT pg_advisory_xact_lock(4242)")
                cur.executescript_ddl(_DDL.format(blob="BYTEA" if self.pg else "BLOB",
                                                  real="DOUBLE PRECISION" if self.pg else "REAL"))
                cur.execute("INSERT INTO meta VALUES ('state_version', ?) ON CONFLICT (key) DO NOTHING",
                            [str(STATE_VERSION)])
                found = cur.one("SELECT value FROM meta WHERE key = 'state_version'")
        except (OSError, StorageError) + _driver_errors() as exc:
            raise StorageError(f"{self.name}: cannot open the pipeline's state database ({_first_line(exc)}); "
                               "check [warehouse] state in the config (a writable folder, or a reachable "
                               "PostgreSQL server)") from exc
        if found and int(found[0]) > STATE_VERSION:
            raise StorageError(f"{self.name}: made by a newer newsmon (state {found[0]}); upgrade newsmon")

    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so two runs never deadlock upgrading a lock)."""
        with self._lock:
            cur = Cursor(self._con.cursor(), self.pg, self.name)
            try:
                cur.execute("BEGIN" if self.pg else "BEGIN IMMEDIATE")
                yield cur
            except BaseException:
                try:
                    self._con.rollback()
                except _driver_errors():
                    pass
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cur = Cursor(self._con.cursor(), self.pg, self.name)
            try:
                return cur.execute(sql, params)
            finally:
                cur.close()

    def read_in(self, sql: str, values: Iterable[str], params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """`sql` with `{in_}` standing for a list of placeholders; runs in chunks (SQLite caps parameters)."""
        wanted = sorted(set(values))
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            out += self.read(sql.format(in_=",".join("?" * len(chunk))), [*params, *chunk])
        return out

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """One holder at a time across processes (and machines, on PostgreSQL): an flock beside a SQLite file,
        a session advisory lock on PostgreSQL. Released when the holder dies (the kernel closes the file; the
        server ends the session)."""
        if self.pg:
            key = zlib.crc32(name.encode())
            self.read("SELECT pg_advisory_lock(?)", [key])
            try:
                yield
            finally:
                self.read("SELECT pg_advisory_unlock(?)", [key])
            return
        fd = os.open(f"{self.path}-{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def alive_here(self, host: str, pid: int) -> bool:
        """Whether a run recorded with (host, pid) may still be running (a dead local process is not)."""
        if host != self.host:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _connect_sqlite(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    return con


def _connect_pg(url: str) -> Any:
    import psycopg  # only a PostgreSQL target needs it: ~9 MB in every run's process otherwise

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def _driver_errors() -> tuple[type[Exception], ...]:
    """sqlite3's errors, and psycopg's once a PostgreSQL target imported it (until then none can be raised)."""
    pg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if pg is None else (sqlite3.Error, pg.Error)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Cursor:
    """A thin cursor: `?` parameters on both drivers, row helpers, StorageError for driver errors."""

    def __init__(self, cur: Any, pg: bool, name: str) -> None:
        self._cur = cur
        self._pg = pg
        self._name = name

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            self._cur.execute(self._sql(sql), list(params))
            return [tuple(r) for r in self._cur.fetchall()] if self._cur.description else []
        except _driver_errors() as exc:
            raise StorageError(f"{self._name}: {_first_line(exc)}") from exc

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            try:
                self._cur.executemany(self._sql(sql), [list(r) for r in rows])
            except _driver_errors() as exc:
                raise StorageError(f"{self._name}: {_first_line(exc)}") from exc

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        found = self.execute(sql, params)
        return found[0] if found else None

    def executescript_ddl(self, ddl: str) -> None:
        for statement in ddl.split(";"):
            if statement.strip():
                self.execute(statement)

    def close(self) -> None:
        self._cur.close()
