"""`newsmon sql`: an analyst's one query on the lake, and nothing else.

Two layers, because neither holds alone in DuckDB 1.5.5 (docs/reliability.md, "`newsmon sql`"):

- The statement: DuckDB's own parser must find exactly one statement, of type SELECT (SELECT, WITH, FROM,
  VALUES, SHOW, DESCRIBE, SUMMARIZE), and every table function in its syntax tree must be one that only reads
  (`READ_ONLY_TABLE_FUNCTIONS`). This refuses COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, EXPORT, several
  statements, and the table functions the lockdown below does not stop: `sqlite_scan`/`sqlite_attach` (any
  SQLite file, the state database included), `postgres_scan`/`postgres_attach` (any server on the network),
  `query()` (SQL hidden in a string), and DuckLake's maintenance calls, which write Parquet files into the data
  folder even on a READ_ONLY attach.
- The connection: after the lake is attached, external access is switched off except for the lake's data
  folder (DuckDB adds the catalog and its WAL itself) and a private temporary folder, extensions can be neither
  installed nor auto-loaded, Python objects are not scanned, and the configuration is locked.

The state database (claims, the alert ledger, feed validators: what the next run acts on) is never attached to
this connection, and the lake is attached READ_ONLY.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from newsmon.errors import StorageError
from warehouse.attach import LakeLocation, quote
from warehouse.lake import Lake

# Table functions that only read: generators, DuckDB's and DuckLake's metadata, and file readers (which the
# lockdown confines to the lake's data folder). Anything else in a FROM clause is refused.
READ_ONLY_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "summary", "histogram", "histogram_values",
    "json_each", "json_tree", "glob", "read_text", "read_blob", "sniff_csv",
    "read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_json_objects", "read_json_objects_auto",
    "read_ndjson", "read_ndjson_auto", "read_ndjson_objects", "read_parquet", "parquet_scan", "parquet_metadata",
    "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata", "parquet_full_metadata",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies", "duckdb_functions",
    "duckdb_indexes", "duckdb_keywords", "duckdb_schemas", "duckdb_sequences", "duckdb_settings", "duckdb_tables",
    "duckdb_types", "duckdb_views", "duckdb_memory", "duckdb_optimizers", "duckdb_temporary_files",
    "duckdb_variables", "duckdb_table_sample", "pragma_collations", "pragma_database_size", "pragma_metadata_info",
    "pragma_platform", "pragma_show", "pragma_storage_info", "pragma_table_info", "pragma_user_agent",
    "pragma_version", "icu_calendar_names", "pg_timezone_names", "test_all_types",
    "ducklake_snapshots", "ducklake_table_info", "ducklake_table_changes", "ducklake_table_insertions",
    "ducklake_table_deletions", "ducklake_list_files", "ducklake_current_snapshot",
    "ducklake_last_committed_snapshot", "ducklake_options", "ducklake_settings",
})
WHAT_RUNS = "one read-only query (SELECT, WITH, FROM, VALUES, SHOW, DESCRIBE or SUMMARIZE)"


def lockdown_sql(loc: LakeLocation, temp_dir: Path) -> list[str]:
    """Run after the lake is attached, in this order: the last one freezes the rest."""
    return [
        f"SET temp_directory = {quote(str(temp_dir))}",
        f"SET allowed_directories = [{quote(str(loc.data_path) + '/')}]",
        "SET python_enable_replacements = false",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET lock_configuration = true",
    ]


class SqlSession:
    """The lake, read-only and locked down, for one analyst's queries (`newsmon sql`). Reports, exports and feed
    health are newsmon's own SQL and use `warehouse.Reader` instead."""

    def __init__(self, loc: LakeLocation) -> None:
        self._temp = Path(tempfile.mkdtemp(prefix="newsmon-sql-"))
        try:
            self.lake = Lake(loc, read_only=True, session=lockdown_sql(loc, self._temp))
        except BaseException:
            shutil.rmtree(self._temp, ignore_errors=True)
            raise

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        check_query(sql)
        return self.lake.query(sql)

    def close(self) -> None:
        try:
            self.lake.close()
        finally:
            shutil.rmtree(self._temp, ignore_errors=True)


def check_query(sql: str) -> None:
    """Refuse (StorageError) anything but one SELECT whose table functions all only read. Parsed by DuckDB's
    own parser, on a connection of its own (parsing needs no catalog)."""
    parser = duckdb.connect()
    try:
        try:
            statements = parser.extract_statements(sql)
        except duckdb.Error as exc:
            raise StorageError(f"the query does not parse: {exc}") from exc
        if len(statements) != 1:
            raise StorageError(f"newsmon sql runs {WHAT_RUNS}; this text holds {len(statements)} statements")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise StorageError(f"newsmon sql is read-only: it runs {WHAT_RUNS}, not {kind.name}")
        row = parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    finally:
        parser.close()
    tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if tree.get("error") or len(tree.get("statements", ())) != 1:
        raise StorageError(f"newsmon sql runs {WHAT_RUNS}; this one cannot be checked "
                           f"({tree.get('error_message', 'no syntax tree')})")
    for name in sorted(set(table_functions(tree))):
        if name not in READ_ONLY_TABLE_FUNCTIONS:
            raise StorageError(f"newsmon sql is read-only: the table function {name}() is not allowed (it can "
                               "reach files, databases or servers outside the warehouse, or write); query the "
                               "warehouse's tables and views")


def table_functions(node: Any) -> Iterator[str]:
    """Lower-case names of every table function in a json_serialize_sql tree (subqueries, CTEs, SHOW included)."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":  # a call we cannot name is refused too ("" is not allowed)
            function = node.get("function")
            yield str(function.get("function_name", "") if isinstance(function, dict) else "").lower()
        for value in node.values():
            yield from table_functions(value)
    elif isinstance(node, list):
        for value in node:
            yield from table_functions(value)
