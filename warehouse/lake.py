"""The DuckLake that analysts query: one writer connection per process, snapshot-isolated readers elsewhere.

Every write is one DuckLake transaction (one catalog commit): a session that is open elsewhere keeps its
snapshot and sees the commit on its next query; nothing here waits for it, nor it for this.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from newsmon.errors import StorageError
from newsmon.hints import command
from warehouse.attach import LAKE_ALIAS, LakeLocation, attach_sql, load_sql, redact
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


def connect(loc: LakeLocation, *, read_only: bool, session: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `newsmon` and in use (UTC session time zone); then the
    `session` statements (warehouse.sandbox's lockdown for `newsmon sql`)."""
    if read_only:
        check_catalog(loc)
    # The extension files are the pinned packages' own, in newsmon's environment (warehouse.attach), trusted as
    # the duckdb module itself is: checking their signatures took ~0.4 s per file on every connection (most of an
    # unchanged re-poll). Nothing else can be loaded here: the writer runs no outside SQL, and `newsmon sql`
    # refuses LOAD and turns external access off (warehouse.sandbox).
    #
    # DuckDB's allocator (jemalloc) hands freed memory back to the system only when a later allocation in the same
    # thread gets round to it; its background threads do it within seconds. A run's writer frees a part's rows
    # after each store and then sits idle while the next part is extracted: with them, the flow process held
    # ~16 MB less through a 5,000-page backfill, at no measurable CPU (BENCHMARKS.md). Process-wide.
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "allocator_background_threads": "true"})
    try:
        con.execute("SET TimeZone = 'UTC'")
        for statement in load_sql(loc):
            con.execute(statement)
        con.execute(attach_sql(loc, read_only=read_only))
        con.execute(f"USE {LAKE_ALIAS}")
        for statement in session:
            con.execute(statement)
    except duckdb.Error as exc:
        con.close()
        if any(sign in str(exc) for sign in _DAMAGED_CATALOG):
            raise StorageError(f"{loc.shown}: the warehouse is damaged: its catalog cannot be read "
                               f"({str(exc).splitlines()[0]}); {_RESTORE}") from exc
        raise StorageError(f"{loc.shown}: cannot attach the warehouse ({redact(str(exc))})") from exc
    return con


_DAMAGED_CATALOG = ("database disk image is malformed", "file is not a database")
_RESTORE = "restore the warehouse (catalog and data folder together) from a backup"


def check_catalog(loc: LakeLocation) -> None:
    """A local catalog that is not a SQLite file (cut short, overwritten) is damaged. An empty one is either a
    lake that a first run is creating this instant, or one cut to nothing: the message says both."""
    if loc.is_postgres or not Path(loc.catalog).exists():
        return
    try:
        with open(loc.catalog, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise StorageError(f"{loc.shown}: cannot read the warehouse's catalog ({exc.strerror})") from exc
    if not head:
        raise StorageError(f"{loc.shown}: the warehouse's catalog is empty: the lake does not exist yet (a first "
                           f"run is creating it) or the file was cut short (the warehouse is damaged; {_RESTORE})")
    if head != b"SQLite format 3\x00":
        raise StorageError(f"{loc.shown}: the warehouse is damaged: its catalog is not a SQLite database (cut "
                           f"short or overwritten); {_RESTORE}")


def check_files(con: duckdb.DuckDBPyConnection, loc: LakeLocation) -> None:
    """A reader answers from the whole lake or not at all. DuckLake answers some queries from the catalog alone
    (count(*), inlined rows) and opens a table's Parquet files only when a query needs their columns, so a
    missing or cut file would otherwise go unnoticed, or give answers from what remains. Every data and delete
    file of the current snapshot must be there, with the size the catalog recorded. A file that upkeep merged
    away between the listing and the look is no damage: a second listing (a fresh snapshot) no longer has it."""
    problem = _file_problem(con, loc)
    if problem is not None:
        problem = _file_problem(con, loc)
    if problem is not None:
        raise StorageError(problem)


def _file_problem(con: duckdb.DuckDBPyConnection, loc: LakeLocation) -> str | None:
    try:
        files = _lake_files(con)
    except duckdb.Error as exc:
        damaged = any(sign in str(exc) for sign in _DAMAGED_CATALOG)
        raise StorageError(f"{loc.shown}: {'the warehouse is damaged: ' if damaged else ''}its catalog cannot be "
                           f"read ({str(exc).splitlines()[0]}){'; ' + _RESTORE if damaged else ''}") from exc
    for table, path, size in files:
        if "://" not in path:
            problem = _problem_with(table, Path(path), size)
            if problem:
                return problem
    return None


def _lake_files(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int | None]]:
    """(table, path, size the catalog recorded) of every data and delete file of the current snapshot."""
    tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
                         [LAKE_ALIAS]).fetchall()
    out = []
    for (table,) in tables:
        for row in con.execute("SELECT data_file, data_file_size_bytes, delete_file, delete_file_size_bytes "
                               "FROM ducklake_list_files(?, ?)", [LAKE_ALIAS, table]).fetchall():
            out += [(table, path, size) for path, size in (row[:2], row[2:]) if path]
    return out


def _problem_with(table: str, path: Path, size: int | None) -> str | None:
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return f"{path}: the warehouse is damaged: this file of table {table} is missing; {_RESTORE}"
    except OSError as exc:
        return f"{path}: cannot read this file of table {table} ({exc.strerror})"
    if size is not None and actual != size:
        return (f"{path}: the warehouse is damaged: this file of table {table} has {actual} bytes, the catalog "
                f"recorded {size}; {_RESTORE}")
    return None


@contextmanager
def writer_turn(loc: LakeLocation) -> Iterator[None]:
    """Writers of a SQLite catalog commit one at a time: an flock on `<catalog>-writer.lock`, held for one write
    and released by the kernel if the process dies. Without it, two runs committing at once fail with
    "database is locked": a DuckLake commit upgrades the SQLite read snapshot it began with to a write, and
    SQLite refuses that at once (no busy timeout helps) when another writer committed in between
    (duckdb/ducklake#1309). Creating a new lake (WAL switch, catalog tables) is a write too. Readers never
    take it. A PostgreSQL catalog takes turns too, through an advisory lock on its database (released by the
    server when the holder's session ends): two shards creating a new lake at once race on PostgreSQL's own
    catalog (`duplicate key value violates unique constraint "pg_type_typname_nsp_index"`), and a write that
    replaces rows (the feed and alert mirrors) fails its commit when another writer committed to that table
    meanwhile (DuckLake: "another transaction has deleted inlined data"), again on retry under steady writes."""
    if loc.is_postgres:
        with _advisory_lock(loc):
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


@contextmanager
def _advisory_lock(loc: LakeLocation) -> Iterator[None]:
    import psycopg  # only a PostgreSQL catalog needs it (warehouse.state)

    try:
        con = psycopg.connect(loc.catalog.removeprefix("postgres:"), autocommit=True, connect_timeout=30)
    except psycopg.Error as exc:
        raise StorageError(f"{loc.shown}: cannot attach the warehouse ({redact(str(exc).strip())})") from exc
    try:
        con.execute("SELECT pg_advisory_lock(hashtext('newsmon lake writer'))")
        yield
    finally:
        con.close()  # ends the session, and with it the lock


class Lake:
    """The lake attached in this process. `background`: a writer's attach and migration run in a thread while
    the caller goes on (a run polls its feeds meanwhile: ~0.1 s of every run); the first use waits for them
    and raises what they raised."""

    def __init__(self, loc: LakeLocation, *, read_only: bool = False, session: Sequence[str] = (),
                 background: bool = False) -> None:
        self.loc = loc
        self.read_only = read_only
        self._lock = threading.RLock()
        self._writing = False  # this Lake holds the writer turn (so a write inside the open takes it once)
        self._opening: Future[None] | None = None
        if read_only and not loc.exists():
            raise StorageError(f"{loc.shown}: no warehouse here yet; run `{command()} run` first")
        if read_only:
            self._con = connect(loc, read_only=True, session=session)
            try:
                check_files(self._con, loc)
            except BaseException:
                self._con.close()
                raise
            return
        if not background:
            self._open_writer()
            return
        self._opening = Future()
        threading.Thread(target=self._open_in_background, name="newsmon-lake-open", daemon=True).start()

    def _open_writer(self) -> None:
        with self._turn():
            _prepare(self.loc)
            self._con = connect(self.loc, read_only=False)
            self._migrate()

    def _open_in_background(self) -> None:
        assert self._opening is not None
        try:
            self._open_writer()
        except BaseException as exc:  # handed to the first use
            self._opening.set_exception(exc)
        else:
            self._opening.set_result(None)

    def _ready(self) -> None:
        """Wait for a background open; raise its error. (The open itself writes through _transaction.)"""
        if self._opening is not None:
            self._opening.result()

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
        if self._opening is not None and self._opening.exception() is not None:
            return  # an open that failed has nothing to close; its error goes to every use
        with self._lock:
            self._con.close()

    def write(self, body: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `body` in one DuckLake transaction; re-run it when a concurrent writer's commit conflicts."""
        self._ready()
        return self._transaction(body)

    def _transaction(self, body: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._turn():
            for attempt in range(_CONFLICT_RETRIES + 1):
                con = self._con
                started = time.time()
                try:
                    con.execute("BEGIN TRANSACTION")
                    out = body(con)
                    con.execute("COMMIT")
                    return out
                except duckdb.Error as exc:
                    _rollback(con)
                    self._remove_unregistered(since=started)
                    retry = isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()
                    if not retry or attempt == _CONFLICT_RETRIES:
                        raise StorageError(f"{self.loc.shown}: {redact(str(exc))}") from exc
                    time.sleep(0.05 * 2 ** attempt)
                except BaseException:
                    _rollback(con)
                    raise
            raise AssertionError("unreachable")

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._ready()
        with self._lock:
            try:
                return self._con.execute(sql, list(params)).fetchall()
            except duckdb.Error as exc:
                raise StorageError(f"{self.loc.shown}: {redact(str(exc))}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """An analyst's SQL, as given (newsmon sql, the report): names and rows."""
        self._ready()
        with self._lock:
            try:
                cur = self._con.execute(sql, list(params))
                names = [d[0] for d in cur.description or []]
                return names, cur.fetchall()
            except duckdb.Error as exc:
                raise StorageError(redact(str(exc))) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A statement outside a transaction that may write the catalog (upkeep's CALLs), in the writer's turn
        (a reader's COPY takes no turn); returns its rows."""
        self._ready()
        with self._turn():
            started = time.time()
            try:
                return self._con.execute(sql, list(params)).fetchall()
            except duckdb.Error as exc:
                if not self.read_only:
                    self._remove_unregistered(since=started)
                raise StorageError(f"{self.loc.shown}: {redact(str(exc))}") from exc

    def _remove_unregistered(self, *, since: float) -> None:
        """Delete the data files a failed write left behind: a Parquet file cut short by a full disk, or whole ones
        its commit never registered. Called in the writer's turn, so no other writer has a commit in flight: a
        file written since `since` (less a second of file-time granularity) that the catalog does not list is
        this write's. Best effort: the next upkeep's ducklake_delete_orphaned_files catches the rest."""
        try:
            recent = [p for p in self.loc.data_path.rglob("*") if p.is_file() and p.stat().st_mtime >= since - 1]
            if not recent:
                return
            listed = {Path(path) for _, path, _ in _lake_files(self._con)}
            for path in recent:
                if path not in listed:
                    path.unlink(missing_ok=True)
        except (OSError, duckdb.Error):
            pass

    def _migrate(self) -> None:
        self._transaction(_migrate)


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
    """One INSERT per table: the columns go in as one JSON document, parsed by DuckDB into the table's own
    column types and unnested in step; a column of long texts (articles' text) goes in beside it as one list.

    Bound as Python values instead (a list parameter per column), DuckDB 1.5 tries `import pandas` twice for
    every value, and each failed try raises an exception through its binding: ~6 us a value, ~6 s of the flow
    process for a 5,000-article backfill (~960k values, most of them tag evidence), against ~0.7 us a value
    through JSON. Long texts are few values but most of the bytes: through JSON they are escaped, copied and
    parsed again (~20 MB more of the flow process's memory for a 500-article part); as a list, copied once.
    Rows holding what JSON cannot carry as is (bytes, NaN) are bound as values."""
    if not rows:
        return
    values = columns(rows)
    cols = f"({', '.join(names)})" if names else ""
    bulky = [i for i, column in enumerate(values) if _texts_size(column) >= BULKY_COLUMN_CHARS]
    try:
        document = json.dumps({f"c{i}": column for i, column in enumerate(values) if i not in bulky},
                              default=_json_value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        select = ", ".join(f"unnest(${i})" for i in range(1, len(values) + 1))
        con.execute(f"INSERT INTO {table} {cols} SELECT {select}", values)
        return
    described = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    kinds = [described[n] for n in names] if names else list(described.values())
    shape = json.dumps({f"c{i}": f"{kind}[]" for i, kind in enumerate(kinds) if i not in bulky}).replace("'", "''")
    params = {i: f"${n}" for n, i in enumerate(bulky, start=2)}
    select = ", ".join(f"unnest({params[i]})" if i in params else f"unnest(j.c{i})" for i in range(len(values)))
    con.execute(f"INSERT INTO {table} {cols} SELECT {select} FROM (SELECT json_transform_strict($1, '{shape}') AS j)",
                [document, *(values[i] for i in bulky)])


BULKY_COLUMN_CHARS = 1 << 18  # a text column holding this much in all goes in as a list, not through the JSON


def _texts_size(column: Sequence[Any]) -> int:
    """Characters in a column of texts (None allowed); 0 for any other column."""
    size = 0
    for value in column:
        if isinstance(value, str):
            size += len(value)
        elif value is not None:
            return 0
    return size


def _json_value(value: object) -> str:
    """Datetimes as ISO 8601 (DuckDB reads them into TIMESTAMPTZ; a naive one as UTC, the session's zone)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


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
