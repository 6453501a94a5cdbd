"""The warehouse: the pipeline's state database plus a DuckLake of the records analysts query.

- `open_warehouse(settings)` -> `Warehouse`: what runs, digests and jobs use (state + lake, read-write).
- `open_reader(settings)` -> `Reader`: the report, exports and feed health, on a read-only lake snapshot.
- `open_sql_session(settings)` -> `SqlSession`: analysts' SQL, read-only and locked down (warehouse/sandbox.py).
No reader ever holds anything a run waits for, and a run never holds anything a reader waits for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from newsmon.config import WarehouseSettings
from newsmon.records import FeedStatus
from warehouse.archive import Archive
from warehouse.attach import LakeLocation
from warehouse.lake import Lake
from warehouse.legacy import legacy_file, migrate_if_needed
from warehouse.maintenance import Upkeep, compact, export
from warehouse.sandbox import SqlSession
from warehouse.schema import LAKE_VERSION
from warehouse.state import StateDB
from warehouse.store import DeliveryOutcome, RunStore, StoreReport

__all__ = ["DeliveryOutcome", "Reader", "SqlSession", "StoreReport", "Warehouse", "open_reader",
           "open_sql_session", "open_warehouse"]


class Warehouse:
    """The pipeline's side: `runs` (identity, feed state, claims, the alert ledger) and `archive` (the lake's
    records: digests, feed health, re-tagging, raw pages)."""

    def __init__(self, runs: RunStore, archive: Archive, lake: Lake, settings: WarehouseSettings) -> None:
        self.runs = runs
        self.archive = archive
        self.lake = lake
        self.settings = settings

    def feed_statuses(self) -> list[FeedStatus]:
        """Every feed's failure state (the state database: nothing of the lake's growing tables to read) and its
        silence (the lake's `feed_health`, from the stored articles)."""
        silence = self.archive.feed_silence()
        return [FeedStatus(*r, *silence.get(r[0], (False, None, None))) for r in self.runs.feed_failures()]

    def upkeep(self, *, now: datetime) -> Upkeep:
        return compact(self.lake, now=now)

    def close(self) -> None:
        self.runs.state.close()
        self.lake.close()


class Reader:
    """A read-only snapshot view of the lake for SQL, the report and exports."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.archive = Archive(lake)

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.lake.query(sql, params)

    def export(self, out_dir: Path, fmt: str, *, since: datetime | None = None) -> list[tuple[str, int]]:
        return export(self.lake, out_dir, fmt, since=since)

    def close(self) -> None:
        self.lake.close()


def location(settings: WarehouseSettings) -> LakeLocation:
    return LakeLocation(settings.catalog_target, settings.data_folder)


def open_warehouse(settings: WarehouseSettings, *, background: bool = False) -> Warehouse:
    """Open (creating or migrating as needed) the state database and the lake; with `background`, the lake is
    attached in a thread and its first use waits for it (warehouse.lake.Lake)."""
    state = StateDB(settings.state_target)
    lake = Lake(location(settings), background=background)
    migrate_if_needed(settings, state, lake)
    return Warehouse(RunStore(state, lake), Archive(lake), lake, settings)


def open_reader(settings: WarehouseSettings) -> Reader:
    """The lake attached read-only (a fresh snapshot per query outside a transaction)."""
    if legacy_file(settings) is not None:  # not migrated yet: the first run (or `newsmon migrate`) does it
        open_warehouse(settings).close()
    lake = Lake(location(settings), read_only=True)
    if _behind(lake):  # made by an earlier release: brought up to date (new views) as a run would
        lake.close()
        open_warehouse(settings).close()
        lake = Lake(location(settings), read_only=True)
    return Reader(lake)


def _behind(lake: Lake) -> bool:
    """Whether the lake's schema is older than this release's (a run has not migrated it yet)."""
    row = lake.read("SELECT max(CAST(value AS INTEGER)) FROM meta WHERE key = 'lake_version'")
    return bool(row) and row[0][0] is not None and int(row[0][0]) < LAKE_VERSION


def open_sql_session(settings: WarehouseSettings) -> SqlSession:
    """An analyst's SQL (`newsmon sql`): the lake read-only and locked down, one read-only query per call (no
    files, databases or servers outside the lake, no settings; warehouse/sandbox.py). The state database is
    never attached to it."""
    if legacy_file(settings) is not None:
        open_warehouse(settings).close()
    session = SqlSession(location(settings))
    if _behind(session.lake):
        session.close()
        open_warehouse(settings).close()
        session = SqlSession(location(settings))
    return session
