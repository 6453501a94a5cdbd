"""The DuckLake that analysts query: one writer connection per process, snapshot-isolated readers elsewhere.

Every write is one DuckLake transaction (one catalog commit): a session that is open elsewhere keeps its
snapshot and sees the commit on its next query; nothing here waits for it, nor it for this.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from newsmon.errors import StorageError
from warehouse.attach import LAKE_ALIAS, LakeLocation, attach_sql, load_sql
from warehouse.lake_rows import Row, columns
from warehouse.schema import LAKE_VERSION, MIGRATIONS

T = TypeVar("T")


def _mark_pandas_absent() -> None:
    """DuckDB 1.5's parameter binding tries `import pandas` for every bound value; without pandas installed each
    try searches sys.path again (storing 1,000 articles took ~40 s, 3,000 small rows 5.9 s against 0.45 s).
    When pandas is not installed, record it as absent once, so those tries fail at once."""
    if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
        sys.modules["pandas"] = None  # type: ignore[assignment]


_mark_pandas_absent()
_CONFLICT_RETRIES = 5  # two writers updating one table at once: DuckLake fails the later commit; try again


def connect(loc: LakeLocation, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `newsmon` and in use (UTC session time zone)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for statement in load_sql():
            con.execute(statement)
        con.execute(attach_sql(loc, read_only=read_only))
        con.execute(f"USE {LAKE_ALIAS}")
    except duckdb.Error as exc:
        con.close()
        raise StorageError(f"{loc.shown}: cannot attach the warehouse ({exc})") from exc
    return con


@contextmanager
def writer_turn(loc: LakeLocation) -> Iterator[None]:
    """Writers of a SQLite catalog commit one at a time: an flock on `<catalog>-writer.lock`, held for one write
    and released by the kernel if the process dies. Without it, two runs committing at once fail with
    "database is locked": a DuckLake commit upgrades the SQLite read snapshot it began with to a write, and
    SQLite refuses that at once (no busy timeout helps) when another writer committed in between
    (duckdb/ducklake#1309). Creating a new lake (WAL switch, catalog tables) is a write too. Readers never
    take it, and PostgreSQL catalogs need none."""
    if loc.is_postgres:
        yield
        return
    path = Path(f"{loc.catalog}-writer.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"{loc.shown}: cannot create the warehouse here ({exc}); check [warehouse] in "
                           "the config and that the folder is writable") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


class Lake:
    def __init__(self, loc: LakeLocation, *, read_only: bool = False) -> None:
        self.loc = loc
        self.read_only = read_only
        self._lock = threading.RLock()
        self._writing = False  # this Lake holds the writer turn (so a write inside the open takes it once)
        if read_only and not loc.exists():
            raise StorageError(f"{loc.shown}: no warehouse here yet; run `newsmon run` first")
        if read_only:
            self._con = connect(loc, read_only=True)
            return
        with self._turn():
            _prepare(loc)
            self._con = connect(loc, read_only=False)
            self._migrate()

    @contextmanager
    def _turn(self) -> Iterator[None]:
        with self._lock:
            if self._writing or self.read_only:
                yield
                return
            with writer_turn(self.loc):
                self._writing = True
                try:
                    yield
                finally:
                    self._writing = False

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def write(self, body: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `body` in one DuckLake transaction; re-run it when a concurrent writer's commit conflicts."""
        with self._turn():
            for attempt in range(_CONFLICT_RETRIES + 1):
                con = self._con
                try:
                    con.execute("BEGIN TRANSACTION")
                    out = body(con)
                    con.execute("COMMIT")
                    return out
                except duckdb.Error as exc:
                    _rollback(con)
                    retry = isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()
                    if not retry or attempt == _CONFLICT_RETRIES:
                        raise StorageError(f"{self.loc.shown}: {exc}") from exc
                    time.sleep(0.05 * 2 ** attempt)
                except BaseException:
                    _rollback(con)
                    raise
            raise AssertionError("unreachable")

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._con.execute(sql, list(params)).fetchall()
            except duckdb.Error as exc:
                raise StorageError(f"{self.loc.shown}: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """An analyst's SQL, as given (newsmon sql, the report): names and rows."""
        with self._lock:
            try:
                cur = self._con.execute(sql, list(params))
                names = [d[0] for d in cur.description or []]
                return names, cur.fetchall()
            except duckdb.Error as exc:
                raise StorageError(f"{exc}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A statement outside a transaction that may write the catalog (upkeep's CALLs), in the writer's turn
        (a reader's COPY takes no turn); returns its rows."""
        with self._turn():
            try:
                return self._con.execute(sql, list(params)).fetchall()
            except duckdb.Error as exc:
                raise StorageError(f"{self.loc.shown}: {exc}") from exc

    def _migrate(self) -> None:
        self.write(_migrate)


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR NOT NULL, value VARCHAR)")
    row = con.execute("SELECT max(CAST(value AS INTEGER)) FROM meta WHERE key = 'lake_version'").fetchone()
    version = int(row[0]) if row and row[0] is not None else 0
    if version > LAKE_VERSION:
        raise StorageError(f"the warehouse was made by a newer newsmon (lake schema {version} > {LAKE_VERSION}); "
                           "upgrade newsmon")
    for v in range(version, LAKE_VERSION):
        for statement in MIGRATIONS[v].split(";\n"):
            con.execute(statement)
    if version < LAKE_VERSION:
        con.execute("DELETE FROM meta WHERE key = 'lake_version'")
        con.execute("INSERT INTO meta VALUES ('lake_version', ?)", [str(LAKE_VERSION)])


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Row], names: Sequence[str] = ()) -> None:
    """One INSERT per table, bound column-wise (each column one list parameter, unnested in step)."""
    if not rows:
        return
    values = columns(rows)
    select = ", ".join(f"unnest(${i})" for i in range(1, len(values) + 1))
    cols = f"({', '.join(names)})" if names else ""
    con.execute(f"INSERT INTO {table} {cols} SELECT {select}", values)


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, key: str, rows: Sequence[Row],
                 names: Sequence[str]) -> None:
    """Mirror rows keyed by their first column: delete the old versions, insert the new ones."""
    if not rows:
        return
    con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?))", [sorted({r[0] for r in rows})])
    insert(con, table, rows, names)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _prepare(loc: LakeLocation) -> None:
    """Create the local catalog's folders and put the SQLite catalog in WAL mode: an analyst's open transaction
    then never blocks a run's commit (in SQLite's default journal mode it does: "database is locked")."""
    if loc.is_postgres:
        return
    try:
        Path(loc.catalog).parent.mkdir(parents=True, exist_ok=True)
        loc.data_path.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(loc.catalog, timeout=60) as db:
            db.execute("PRAGMA journal_mode = WAL")
        db.close()
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"{loc.shown}: cannot create the warehouse here ({exc}); check [warehouse] in "
                           "the config and that the folder is writable") from exc
