"""The warehouse: one DuckDB file behind a small interface named in domain terms."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from newsmon.records import (
    AlertRecord,
    Article,
    ClusterRecord,
    FeedState,
    FeedStatus,
    RawPage,
    RunBatch,
    StoredEntry,
    Verdict,
)


@dataclass(frozen=True)
class StoreReport:
    """What a write did: stored (with `merged` batches, earlier spooled ones included), or left spooled
    because another process held the file (`locked_by` says who; `pending` batches wait for the next store)."""

    stored: bool
    merged: int
    pending: int
    locked_by: str | None

    def describe(self) -> str:
        if self.stored:
            return "stored" + (f" (with {self.merged - 1} earlier spooled batches)" if self.merged > 1 else "")
        return f"spooled ({self.pending} batches wait for the next run): {self.locked_by}"


class Warehouse(Protocol):
    path: Path

    def feed_states(self) -> dict[str, FeedState]: ...
    def known_article_ids(self, ids: Iterable[str]) -> set[str]: ...
    def known_entries(self, aliases: Iterable[str]) -> dict[str, StoredEntry]: ...
    def article_ids_by_url_key(self, keys: Iterable[str]) -> dict[str, str]: ...
    def store_run(self, batch: RunBatch, *, finished_at: datetime) -> StoreReport: ...
    def pending_alerts(self, *, max_attempts: int, now: datetime | None = None) -> list[AlertRecord]: ...
    def mark_alerts(self, outcomes: Sequence[tuple[str, str | None]], *, now: datetime, max_attempts: int,
                    retry_s: float = 0.0, delivery_key: str | None = None) -> StoreReport: ...
    def queue_alerts(self, alerts: Sequence[AlertRecord], *, now: datetime) -> int: ...
    # story clusters, digests, spikes and feed health
    def recent_clusters(self, *, since: datetime) -> list[ClusterRecord]: ...
    def story_matches(self, *, since: datetime, until: datetime) -> list[AlertRecord]: ...
    def match_history(self, *, since: datetime) -> dict[str, list[tuple[datetime, str]]]: ...
    def last_alerts(self, kind: str) -> dict[str, datetime]: ...
    def feed_statuses(self) -> list[FeedStatus]: ...
    def checkpoint(self) -> None: ...
    # the spool and exports
    def pending_spool(self) -> int: ...
    def export(self, out_dir: Path, fmt: str, *, since: datetime | None = None) -> list[tuple[str, int]]: ...
    # re-extraction and re-tagging (newsmon reextract / retag)
    def store_raw_pages(self, pages: Sequence[RawPage]) -> StoreReport: ...
    def stored_articles(self, *, since: datetime | None, after: str = "", limit: int = 500) -> list[Article]: ...
    def stored_raw_pages(self, *, since: datetime | None, after: str = "",
                         limit: int = 100) -> list[tuple[RawPage, Article]]: ...
    def stored_verdicts(self, article_ids: Iterable[str]) -> dict[tuple[str, str], tuple[bool, float, str]]: ...
    def update_articles(self, articles: Sequence[Article]) -> StoreReport: ...
    def replace_verdicts(self, verdicts: Sequence[Verdict], *, now: datetime) -> StoreReport: ...
    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]: ...


def open_warehouse(path: Path, *, lock_timeout_s: float = 60.0, read_only: bool = False) -> Warehouse:
    """Open (and, unless read-only, create or migrate) the DuckDB warehouse at `path`."""
    from warehouse.duckdb_store import DuckDBWarehouse

    return DuckDBWarehouse(path, lock_timeout_s=lock_timeout_s, read_only=read_only)
