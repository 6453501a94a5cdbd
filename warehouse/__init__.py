"""The warehouse: one DuckDB file behind a small interface named in domain terms."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from newsmon.records import AlertRecord, FeedState, RunBatch


class Warehouse(Protocol):
    path: Path

    def feed_states(self) -> dict[str, FeedState]: ...
    def known_article_ids(self, ids: Iterable[str]) -> set[str]: ...
    def store_run(self, batch: RunBatch, *, finished_at: datetime) -> None: ...
    def pending_alerts(self, *, max_attempts: int) -> list[AlertRecord]: ...
    def mark_alerts(self, outcomes: Sequence[tuple[str, str | None]], *, now: datetime,
                    max_attempts: int) -> None: ...
    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]: ...


def open_warehouse(path: Path, *, lock_timeout_s: float = 60.0, read_only: bool = False) -> Warehouse:
    """Open (and, unless read-only, create or migrate) the DuckDB warehouse at `path`."""
    from warehouse.duckdb_store import DuckDBWarehouse

    return DuckDBWarehouse(path, lock_timeout_s=lock_timeout_s, read_only=read_only)
