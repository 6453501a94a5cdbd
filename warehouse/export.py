"""`newsmon export`: every table to Parquet (partitioned by UTC day), CSV or JSON lines, with DuckDB COPY.

Articles and everything about them (tags, verdicts, alerts) are dated by the story: its publication time,
else the time it was fetched; runs and the fetch log by their own time; feeds are exported whole.

CSV is opened by spreadsheets, which run a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage
return as a formula (OWASP "CSV injection"; feed titles and page text come from strangers). In CSV, such a
text cell is written with a single quote in front (`'=HYPERLINK(...)`); numbers, times and lists are written
as they are (a negative number stays a number). `newsmon sql --format csv` applies the same rule
(`csv_cell`). Parquet and JSON lines keep every value exactly as stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMATS = ("parquet", "csv", "jsonl")
_STORY_TIME = "coalesce(a.published_at, a.fetched_at)"
_BY_STORY = "SELECT x.*, {t} AS _t FROM {table} x JOIN articles a USING (article_id)"

# table -> (query with a `_t` timestamp column, or None for an undated table)
SOURCES: dict[str, str | None] = {
    "articles": f"SELECT a.*, {_STORY_TIME} AS _t FROM articles a",
    "tags": _BY_STORY.format(t=_STORY_TIME, table="tags"),
    "verdicts": _BY_STORY.format(t=_STORY_TIME, table="verdicts"),
    "alerts": _BY_STORY.format(t=_STORY_TIME, table="alerts"),
    "entry_aliases": _BY_STORY.format(t=_STORY_TIME, table="entry_aliases"),
    "article_aliases": _BY_STORY.format(t=_STORY_TIME, table="article_aliases"),
    "poll_runs": "SELECT r.*, r.started_at AS _t FROM poll_runs r",
    "fetch_log": "SELECT l.*, l.logged_at AS _t FROM fetch_log l",
    "feeds": None,
}


# A cell that starts with one of these is a formula to a spreadsheet (OWASP CSV injection guidance).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: text that a spreadsheet would run as a formula gets a leading single quote;
    anything that is not text (numbers, negative ones included, times, None) is returned as it is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def export_statements(out_dir: Path, fmt: str, since: datetime | None,
                      text_columns: Mapping[str, Sequence[str]] | None = None
                      ) -> list[tuple[str, str, str, list[object]]]:
    """(table, count SQL, COPY SQL, params) for every exported table. Pure: builds SQL only.

    For CSV, `text_columns` names each table's VARCHAR columns (the caller asks the database): those cells
    are neutralised with the rule of `csv_cell`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out: list[tuple[str, str, str, list[object]]] = []
    for table, source in SOURCES.items():
        if source is None:
            query = f"SELECT * FROM {table}"
        else:
            where = f" WHERE _t >= {_timestamp_literal(since)}" if since else ""
            query = (f"SELECT * EXCLUDE (_t), CAST(_t AT TIME ZONE 'UTC' AS DATE) AS day "
                     f"FROM ({source}){where}")
        count = f"SELECT count(*) FROM ({query})"
        if fmt == "csv":
            query = _formula_safe(query, (text_columns or {}).get(table, ()))
        out.append((table, count, _copy(query, out_dir, table, fmt, partitioned=source is not None), []))
    return out


def _formula_safe(query: str, text_columns: Sequence[str]) -> str:
    """`query` with each named text column prefixed with ' where it starts like a formula (see csv_cell)."""
    if not text_columns:
        return query
    starts = ", ".join(_string_literal(c) if c.isprintable() else f"chr({ord(c)})" for c in FORMULA_START)
    quote = _string_literal("'")
    swaps = ", ".join(f"CASE WHEN left({q}, 1) IN ({starts}) THEN {quote} || {q} ELSE {q} END AS {q}"
                      for q in (_identifier(c) for c in text_columns))
    return f"SELECT * REPLACE ({swaps}) FROM ({query})"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy(query: str, out_dir: Path, table: str, fmt: str, *, partitioned: bool) -> str:
    if fmt == "parquet" and partitioned:
        target, options = out_dir / table, "FORMAT parquet, COMPRESSION zstd, PARTITION_BY (day), OVERWRITE true"
    elif fmt == "parquet":
        target, options = out_dir / f"{table}.parquet", "FORMAT parquet, COMPRESSION zstd"
    elif fmt == "csv":
        target, options = out_dir / f"{table}.csv", "FORMAT csv, HEADER true"
    else:
        target, options = out_dir / f"{table}.jsonl", "FORMAT json"
    return f"COPY ({query}) TO {_string_literal(str(target))} ({options})"


def _string_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _timestamp_literal(t: datetime) -> str:
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return f"TIMESTAMPTZ {_string_literal(t.astimezone(UTC).isoformat())}"
