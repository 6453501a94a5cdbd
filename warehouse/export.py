"""`newsmon export`: every table and view to Parquet (partitioned by UTC day), CSV or JSON lines, with DuckDB
COPY.

Articles and everything about them (tags, verdicts, story alerts, `matches`, `tag_evidence`) are dated by the
story: its publication time, else the time it was fetched; other alerts and the alert ledger by when they were
queued; clusters by their first publication; runs and the fetch log by their own time; the daily counts by their
day; feeds, `feed_health` and `meta` are exported whole. A dated table with no rows (in the period) still gets
one Parquet file, with its columns and no rows, so `read_parquet('DIR/<table>/*/*.parquet')` reads it.

In CSV, a LIST or STRUCT column (`tags.evidence`, `verdicts.tags`, `matches.tags`, `outlets`) is written as JSON
text (`[{"term":"Baku",...}]`), which any CSV reader hands over whole and any JSON parser reads.

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
from typing import Any, NamedTuple

FORMATS = ("parquet", "csv", "jsonl")
_STORY_TIME = "coalesce(a.published_at, a.fetched_at)"
_BY_STORY = "SELECT x.*, {t} AS _t FROM {table} x JOIN articles a USING (article_id)"
_BY_DAY = "SELECT d.* EXCLUDE (day), CAST(d.day AS TIMESTAMPTZ) AS _t FROM {table} d"  # the lake's zone is UTC
# the hive folder DuckDB itself writes for a NULL partition value: where an empty table's one file goes
EMPTY_PARTITION = "day=__HIVE_DEFAULT_PARTITION__"

# table or view -> (query with a `_t` timestamp column, or None for an undated one); tables first, then views
SOURCES: dict[str, str | None] = {
    "articles": f"SELECT a.*, {_STORY_TIME} AS _t FROM articles a",
    "tags": _BY_STORY.format(t=_STORY_TIME, table="tags"),
    "verdicts": _BY_STORY.format(t=_STORY_TIME, table="verdicts"),
    "alerts": "SELECT x.*, coalesce(a.published_at, a.fetched_at, x.created_at) AS _t "
              "FROM alerts x LEFT JOIN articles a USING (article_id)",  # spike, feed, digest: no article
    "entry_aliases": _BY_STORY.format(t=_STORY_TIME, table="entry_aliases"),
    "article_aliases": _BY_STORY.format(t=_STORY_TIME, table="article_aliases"),
    "clusters": "SELECT c.*, c.first_published_at AS _t FROM clusters c",
    "poll_runs": "SELECT r.*, r.started_at AS _t FROM poll_runs r",
    "fetch_log": "SELECT l.*, l.logged_at AS _t FROM fetch_log l",
    "feeds": None,
    "meta": None,
    "matches": "SELECT m.*, coalesce(m.published_at, m.fetched_at) AS _t FROM matches m",
    "tag_evidence": _BY_STORY.format(t=_STORY_TIME, table="tag_evidence"),
    "story_clusters": "SELECT s.*, s.first_published_at AS _t FROM story_clusters s",
    "alert_ledger": "SELECT l.*, l.created_at AS _t FROM alert_ledger l",
    "failed_alerts": "SELECT l.*, l.created_at AS _t FROM failed_alerts l",
    "feed_health": None,
    "daily_counts": _BY_DAY.format(table="daily_counts"),
    "match_daily_counts": _BY_DAY.format(table="match_daily_counts"),
}
# compressed HTML kept for `newsmon reextract`: not for other tools
NOT_EXPORTED = frozenset({"raw_pages"})


class ExportStep(NamedTuple):
    """One table's export: count its rows, COPY them; `if_empty` (partitioned Parquet) writes the one file of
    columns and no rows when the COPY wrote none."""

    table: str
    count_sql: str
    copy_sql: str
    params: list[object]
    if_empty: str | None = None


# A cell that starts with one of these is a formula to a spreadsheet (OWASP CSV injection guidance).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: text that a spreadsheet would run as a formula gets a leading single quote;
    anything that is not text (numbers, negative ones included, times, None) is returned as it is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def export_statements(out_dir: Path, fmt: str, since: datetime | None,
                      text_columns: Mapping[str, Sequence[str]] | None = None,
                      nested_columns: Mapping[str, Sequence[str]] | None = None,
                      names: Sequence[str] | None = None) -> list[ExportStep]:
    """One ExportStep per exported table and view. Pure: builds SQL only.

    For CSV, `text_columns` names each table's VARCHAR columns and `nested_columns` its LIST, STRUCT and MAP
    columns (the caller asks the database): text cells are neutralised with the rule of `csv_cell`, nested ones
    written as JSON text. `names` (the lake's tables and views) limits the export to those present, and adds any
    that SOURCES does not know, exported whole.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    present = list(SOURCES) if names is None else [n for n in SOURCES if n in names]
    present += [n for n in names or () if n not in SOURCES and n not in NOT_EXPORTED]
    out: list[ExportStep] = []
    for table in present:
        source = SOURCES.get(table)
        if source is None:
            query = f"SELECT * FROM {_identifier(table)}"
        else:
            where = f" WHERE _t >= {_timestamp_literal(since)}" if since else ""
            query = (f"SELECT * EXCLUDE (_t), CAST(_t AT TIME ZONE 'UTC' AS DATE) AS day "
                     f"FROM ({source}){where}")
        count = f"SELECT count(*) FROM ({query})"
        if_empty = None
        if fmt == "parquet" and source is not None:
            target = out_dir / table / EMPTY_PARTITION / "data_0.parquet"
            if_empty = (f"COPY (SELECT * EXCLUDE (day) FROM ({query}) LIMIT 0) TO "
                        f"{_string_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)")
        if fmt == "csv":
            query = _csv_safe(query, (text_columns or {}).get(table, ()), (nested_columns or {}).get(table, ()))
        out.append(ExportStep(table, count, _copy(query, out_dir, table, fmt, partitioned=source is not None), [],
                              if_empty))
    return out


def is_nested(column_type: str) -> bool:
    """Whether a DuckDB column type (as DESCRIBE prints it) is a LIST, fixed-size ARRAY, STRUCT, MAP or UNION."""
    return column_type.endswith("]") or column_type.startswith(("STRUCT", "MAP", "UNION"))


def _csv_safe(query: str, text_columns: Sequence[str], nested_columns: Sequence[str] = ()) -> str:
    """`query` with each named text column prefixed with ' where it starts like a formula (see csv_cell), and
    each nested column as JSON text."""
    if not text_columns and not nested_columns:
        return query
    starts = ", ".join(_string_literal(c) if c.isprintable() else f"chr({ord(c)})" for c in FORMULA_START)
    quote = _string_literal("'")
    swaps = [f"CASE WHEN left({q}, 1) IN ({starts}) THEN {quote} || {q} ELSE {q} END AS {q}"
             for q in (_identifier(c) for c in text_columns)]
    swaps += [f"CAST(to_json({q}) AS VARCHAR) AS {q}" for q in (_identifier(c) for c in nested_columns)]
    return f"SELECT * REPLACE ({', '.join(swaps)}) FROM ({query})"


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
