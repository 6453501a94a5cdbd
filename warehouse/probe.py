"""Is the warehouse reachable? The checks behind `newsmon doctor` for the state database, the lake's catalog
and its data folder. They create, change and lock nothing: a SQLite file is opened read-only, a PostgreSQL
server is only connected to, the lake is attached read-only, and a folder's writability is tried with a
temporary file that is removed at once. Messages never carry a password.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg

from newsmon.config import WarehouseSettings
from newsmon.errors import StorageError
from warehouse.attach import LakeLocation, redact
from warehouse.lake import connect
from warehouse.state import is_postgres

TIMEOUT_S = 5


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str


def _first_line(exc: BaseException) -> str:
    return redact((str(exc).strip().splitlines() or [type(exc).__name__])[0])


def writable_folder(folder: Path) -> str | None:
    """None when files can be made in `folder` (or in the folder it would be created under), else why not."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return f"no part of {folder} exists"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".newsmon-doctor-"):
            pass
    except OSError as exc:
        return f"cannot write in {probe} ({exc.strerror or exc})"
    return None


def probe_state(settings: WarehouseSettings) -> Probe:
    """The state database: a PostgreSQL server that answers, or a SQLite file that opens (or can be made)."""
    target = settings.state_target
    if is_postgres(target):
        try:
            with psycopg.connect(target, connect_timeout=TIMEOUT_S, autocommit=True) as con:
                server = con.execute("SHOW server_version").fetchone()
                made = con.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
                version = (con.execute("SELECT value FROM meta WHERE key = 'state_version'").fetchone()
                           if made and made[0] else None)
        except psycopg.Error as exc:
            return Probe(False, f"cannot connect ({_first_line(exc)})")
        what = f"state version {version[0]}" if version else "no tables yet (the first run makes them)"
        return Probe(True, f"PostgreSQL {server[0] if server else '?'} connected; {what}")
    path = Path(target)
    if not path.exists():
        problem = writable_folder(path.parent)
        return Probe(problem is None, problem or "SQLite, not made yet (the first run makes it here)")
    problem = writable_folder(path.parent)  # WAL: the -wal and -shm files go beside it
    if problem:
        return Probe(False, problem)
    try:
        lite = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=TIMEOUT_S)
        try:
            row = lite.execute("SELECT value FROM meta WHERE key = 'state_version'").fetchone()
            feeds = lite.execute("SELECT count(*) FROM feeds").fetchone()
        finally:
            lite.close()
    except sqlite3.Error as exc:
        return Probe(False, f"not a newsmon state database ({_first_line(exc)})")
    return Probe(True, f"SQLite, state version {row[0] if row else '?'}, {feeds[0] if feeds else 0} feeds polled")


def probe_catalog(settings: WarehouseSettings) -> Probe:
    """The lake's catalog: attached read-only (a catalog server that answers but holds no lake yet is fine)."""
    loc = LakeLocation(settings.catalog_target, settings.data_folder)
    if loc.is_postgres:
        try:
            psycopg.connect(loc.catalog.removeprefix("postgres:"), connect_timeout=TIMEOUT_S).close()
        except psycopg.Error as exc:
            return Probe(False, f"cannot connect ({_first_line(exc)})")
    elif not Path(loc.catalog).exists():
        problem = writable_folder(Path(loc.catalog).parent)
        return Probe(problem is None, problem or "SQLite catalog, not made yet (the first run makes it here)")
    try:
        con = connect(loc, read_only=True)
    except StorageError as exc:
        if loc.is_postgres and "does not exist" in str(exc):
            return Probe(True, "PostgreSQL connected; no lake yet (the first run makes it)")
        return Probe(False, f"cannot attach the lake ({_first_line(exc.__cause__ or exc)})")
    try:
        version = con.execute("SELECT max(value) FROM meta WHERE key = 'lake_version'").fetchone()
        articles = con.execute("SELECT count(*) FROM articles").fetchone()
    except duckdb.Error:
        version = articles = None
    finally:
        con.close()
    kind = "PostgreSQL catalog" if loc.is_postgres else "SQLite catalog"
    if not version or version[0] is None:
        return Probe(True, f"{kind} attached; no tables yet (the first run makes them)")
    return Probe(True, f"{kind} attached, lake version {version[0]}, {articles[0] if articles else 0} articles")


def probe_data_path(settings: WarehouseSettings) -> Probe:
    """The folder of the lake's Parquet files: writable (every writer must see it at this path)."""
    folder = settings.data_folder
    problem = writable_folder(folder)
    if problem:
        return Probe(False, problem)
    shared = " (every worker must see this folder at this path)" if settings.catalog.startswith("postgres:") else ""
    return Probe(True, ("writable" if folder.exists() else "not made yet; its parent is writable") + shared)
