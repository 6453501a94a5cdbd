"""Lake upkeep: small files merged, old snapshots expired, their files deleted, and Parquet exports.

Each run commits a few small files (or rows inlined in the catalog); upkeep folds them into larger Parquet
files. Snapshots older than `keep` are expired (time travel reaches back that far) and files no snapshot
needs are deleted. Readers with an open snapshot are unaffected: files they may read are kept until expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warehouse.attach import LAKE_ALIAS
from warehouse.export import EMPTY_PARTITION, NOT_EXPORTED, export_statements, is_nested
from warehouse.lake import Lake

# Parquet files no snapshot names and this old (by their mtime) are a dead writer's; younger ones may belong to
# a write that has not committed yet (measured: deleting those loses the rows the write then commits)
ORPHAN_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class Upkeep:
    files_before: int
    files_after: int
    snapshots_expired: int


def data_files(lake: Lake) -> int:
    """Parquet files the current snapshot reads: data files and delete files (rows deleted or replaced)."""
    meta = f"__ducklake_metadata_{LAKE_ALIAS}"
    return int(lake.read(f"SELECT (SELECT count(*) FROM {meta}.ducklake_data_file WHERE end_snapshot IS NULL) + "
                         f"(SELECT count(*) FROM {meta}.ducklake_delete_file WHERE end_snapshot IS NULL)")[0][0])


def compact(lake: Lake, *, now: datetime, keep: timedelta = timedelta(days=7)) -> Upkeep:
    """Flush inlined rows to Parquet, merge adjacent small files, expire snapshots older than `keep`, delete
    the files nothing refers to any more."""
    before = data_files(lake)
    lake.execute(f"CALL ducklake_flush_inlined_data('{LAKE_ALIAS}')")
    lake.execute(f"CALL ducklake_merge_adjacent_files('{LAKE_ALIAS}')")
    expired = lake.execute(f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', older_than => ?)", [now - keep])
    lake.execute(f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', cleanup_all => true)")
    # a write in progress has its Parquet files on disk before its commit names them; newsmon's writers wait
    # for upkeep's turn, but a writer that takes none (another tool, an older newsmon on one worker) may be in
    # one now: only files unnamed for ORPHAN_AGE are orphans
    lake.execute(f"CALL ducklake_delete_orphaned_files('{LAKE_ALIAS}', older_than => ?)",
                 [datetime.now(UTC) - ORPHAN_AGE])
    return Upkeep(before, data_files(lake), len(expired))


def export(lake: Lake, out_dir: Path, fmt: str, *, since: datetime | None = None) -> list[tuple[str, int]]:
    """Copy every table and view (rows since `since`) to files under `out_dir`; return (name, rows) pairs. In
    CSV, text cells that a spreadsheet would run as formulas are neutralised and nested values written as JSON
    (warehouse/export.py)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [r[0] for r in lake.read(
        f"SELECT table_name FROM duckdb_tables() WHERE database_name = '{LAKE_ALIAS}' AND schema_name = 'main' "
        f"UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = '{LAKE_ALIAS}' "
        "AND schema_name = 'main' AND NOT internal")]
    text = nested = None
    if fmt == "csv":  # each table's text columns (the CSV formula rule) and nested ones (written as JSON)
        types = {t: lake.read(f'DESCRIBE SELECT * FROM "{t}"') for t in names if t not in NOT_EXPORTED}
        text = {t: [r[0] for r in cols if r[1] == "VARCHAR"] for t, cols in types.items()}
        nested = {t: [r[0] for r in cols if is_nested(str(r[1]))] for t, cols in types.items()}
    done = []
    for step in export_statements(out_dir, fmt, since, text, nested, names):
        row = lake.read(step.count_sql, step.params)
        lake.execute(step.copy_sql, step.params)
        if step.if_empty and not any((out_dir / step.table).glob("*/*.parquet")):
            (out_dir / step.table / EMPTY_PARTITION).mkdir(parents=True, exist_ok=True)
            lake.execute(step.if_empty, step.params)
        done.append((step.table, int(row[0][0]) if row else 0))
    return done
