"""Moving a single-file DuckDB warehouse of an earlier release (schema v1..v5) into the state database and lake.

Automatic on first use: `[warehouse] path` still names the old file; its tables are exported to Parquet by
DuckDB 2.x in a side process (warehouse/legacy_export.py), then loaded here: the lake gets every record, the
state database the feed state, the identity index, clusters with signatures, the match history and the alert
ledger. The old file is then renamed `<name>.migrated` (kept, never deleted). Safe to repeat after a crash:
the lake records which file it took in, and the state rows go in under their unique keys.
"""

from __future__ import annotations

import tempfile
from array import array
from pathlib import Path
from typing import Any

import duckdb

from newsmon.config import WarehouseSettings
from newsmon.records import url_key
from warehouse.lake import Lake
from warehouse.schema import TABLES
from warehouse.state import StateDB, ts

MIGRATED_SUFFIX = ".migrated"


def legacy_file(settings: WarehouseSettings) -> Path | None:
    """The earlier release's DuckDB file at `[warehouse] path`, if one is there and not migrated yet."""
    path = settings.path
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return None
    return path if head[8:12] == b"DUCK" else None


def migrate_if_needed(settings: WarehouseSettings, state: StateDB, lake: Lake) -> bool:
    old = legacy_file(settings)
    if old is None:
        return False
    from warehouse.legacy_export import export_legacy

    with tempfile.TemporaryDirectory(prefix="newsmon-migrate-") as tmp:
        files = _upgrade(export_legacy(old, Path(tmp)), Path(tmp) / "v5")
        if not _lake_has(lake, old):
            lake.write(lambda con: _load_lake(con, files, old))
        _load_state(state, files)
    old.rename(old.with_name(old.name + MIGRATED_SUFFIX))
    return True


# What migrations 2..5 of the single-file warehouse added, filled in as they filled it in: a file of schema
# 1..4 is exported as it stands and brought to schema 5's shape here, before anything is loaded.
_CLUSTER_OF = "left(sha256('cluster' || chr(31) || article_id), 24)"  # records.stable_id("cluster", article_id)
_URL_KEY = ("rtrim(split_part(regexp_replace(lower(trim(coalesce(canonical_url, url))), "
            "'^[a-z][a-z0-9+.-]*://(www\\.)?', ''), '#', 1), '/')")  # records.url_key, as migration 5 had it
_ADDED_COLUMNS = {
    "articles": {"cluster_id": _CLUSTER_OF, "first_seen_at": "fetched_at", "updated_at": "NULL::TIMESTAMPTZ",
                 "guid": "NULL::VARCHAR", "edits": "0", "url_key": _URL_KEY},
    "alerts": {"kind": "'story'", "cluster_id": _CLUSTER_OF, "subject": "NULL::VARCHAR", "body": "NULL::VARCHAR",
               "next_attempt_at": "NULL::TIMESTAMPTZ", "delivery_key": "NULL::VARCHAR"},
    "feeds": {"effective_url": "NULL::VARCHAR"},
}
_ADDED_TABLES = {  # from the (upgraded) articles: each stored article seeds its own cluster; entry keys are aliases
    "clusters": "SELECT cluster_id, article_id AS seed_article_id, title, coalesce(published_at, fetched_at) "
                "AS first_published_at, fetched_at AS created_at, NULL::UINTEGER[] AS signature FROM {articles}",
    "entry_aliases": "SELECT entry_key AS alias, min(article_id) AS article_id FROM {articles} GROUP BY entry_key",
}


def _upgrade(files: dict[str, Path], out: Path) -> dict[str, Path]:
    """The exported tables in schema 5's shape (rewritten under `out`; a schema-5 export is returned as is)."""
    files = dict(files)
    con = duckdb.connect()

    def rewrite(table: str, select: str) -> None:
        out.mkdir(exist_ok=True)
        target = out / f"{table}.parquet"
        con.execute(f"COPY ({select}) TO '{target}' (FORMAT parquet)")
        files[table] = target

    def cols(table: str) -> dict[str, str]:
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{files[table]}')").fetchall()}

    try:
        con.execute("SET TimeZone = 'UTC'")
        for table, added in _ADDED_COLUMNS.items():
            have = cols(table) if table in files else {}
            extra = [f"{sql} AS {name}" for name, sql in added.items() if have and name not in have]
            if extra:
                rewrite(table, f"SELECT *, {', '.join(extra)} FROM read_parquet('{files[table]}')")
        if "tags" in files and " text VARCHAR" not in cols("tags").get("evidence", " text VARCHAR").replace('"', ""):
            rewrite("tags", "SELECT * REPLACE (list_transform(evidence, lambda e: struct_insert(e, text := "
                            f"NULL::VARCHAR)) AS evidence) FROM read_parquet('{files['tags']}')")
        for table, select in _ADDED_TABLES.items():
            if table not in files and "articles" in files:
                rewrite(table, select.format(articles=f"read_parquet('{files['articles']}')"))
    finally:
        con.close()
    return files


def _lake_has(lake: Lake, old: Path) -> bool:
    return bool(lake.read("SELECT count(*) FROM meta WHERE key = 'migrated_from' AND value = ?",
                          [str(old.resolve())])[0][0])


def _load_lake(con: duckdb.DuckDBPyConnection, files: dict[str, Path], old: Path) -> None:
    for table in TABLES:
        if table == "meta" or table not in files:
            continue
        have = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(files[table])]).fetchall()}
        wanted = [c.split()[0] for c in _column_defs(table)]
        names = [c for c in wanted if c.strip('"') in have]
        cols = ", ".join(names)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM read_parquet(?)", [str(files[table])])
    con.execute("INSERT INTO meta VALUES ('migrated_from', ?)", [str(old.resolve())])


def _column_defs(table: str) -> list[str]:
    """'name TYPE ...' of each column (splitting on top-level commas; STRUCT types hold commas)."""
    out, depth, cur = [], 0, ""
    for ch in TABLES[table]:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*out, cur.strip()] if cur.strip() else out


def _rows(files: dict[str, Path], sql: str, *tables: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` over the exported Parquet files ({name} stands for read_parquet of that table)."""
    if any(t not in files for t in tables):
        return []
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql.format(**{t: f"read_parquet('{files[t]}')" for t in tables})).fetchall()
    finally:
        con.close()


def _iso(row: tuple[Any, ...]) -> list[Any]:
    return [ts(v) if hasattr(v, "astimezone") else v for v in row]


def _load_state(state: StateDB, files: dict[str, Path]) -> None:
    feeds = _rows(files, """SELECT f.feed_url, f.name, f.etag, f.last_modified, f.body_hash, f.last_status,
            f.last_error, f.consecutive_failures, f.last_polled_at, f.last_success_at, f.next_poll_at, f.entries_seen,
            {eff}, (SELECT min(l.logged_at) FROM {{fetch_log}} l WHERE l.url = f.feed_url), 'migrated'
            FROM {{feeds}} f""".format(eff="f.effective_url" if _has(files, "feeds", "effective_url") else "NULL"),
                  "feeds", "fetch_log")
    stories = _rows(files, """SELECT article_id, coalesce(run_id, 'migrated'), feed_url, feed_name, title, summary,
            url_key, url, cluster_id, coalesce(published_at, fetched_at) FROM {articles}""", "articles")
    aliases = _rows(files, "SELECT alias, article_id, 'migrated' FROM {entry_aliases}", "entry_aliases")
    aliases += _rows(files, "SELECT 'id:' || alias_id, article_id, 'migrated' FROM {article_aliases}",
                     "article_aliases")
    clusters = _rows(files, """SELECT cluster_id, seed_article_id, title, first_published_at, created_at, signature,
            'migrated' FROM {clusters}""", "clusters")
    matched = _rows(files, """SELECT c.cluster_id, v.watchlist, min(c.first_published_at), min(c.title), 'migrated'
            FROM {verdicts} v JOIN {articles} a USING (article_id) JOIN {clusters} c USING (cluster_id)
            WHERE v.match GROUP BY ALL""", "verdicts", "articles", "clusters")
    alerts = _rows(files, """SELECT al.alert_id, coalesce(al.kind, 'story'), al.article_id, al.cluster_id, al.watchlist,
            al.channel, al.channel_name, al.status, al.attempts, al.last_error, al.created_at, al.last_attempt_at,
            al.sent_at, al.next_attempt_at, al.delivery_key, a.title, a.url, a.feed_name, a.published_at, v.score,
            to_json(coalesce(v.tags, [])),
            to_json(coalesce((SELECT list(DISTINCT coalesce(e.text, e.term) ORDER BY coalesce(e.text, e.term))
                     FROM {tags} t, unnest(t.evidence) AS u(e)
                     WHERE t.article_id = al.article_id AND t.watchlist = al.watchlist), [])),
            to_json(coalesce((SELECT list(DISTINCT e.snippet ORDER BY e.snippet)
                     FROM {tags} t, unnest(t.evidence) AS u(e)
                     WHERE t.article_id = al.article_id AND t.watchlist = al.watchlist AND t.passed
                     AND e.snippet <> ''), [])),
            al.subject, al.body, 'migrated', 1
            FROM {alerts} al LEFT JOIN {articles} a USING (article_id)
            LEFT JOIN {verdicts} v ON v.article_id = al.article_id AND v.watchlist = al.watchlist""",
                   "alerts", "articles", "verdicts", "tags")
    runs = _rows(files, "SELECT run_id, config, started_at, coalesce(finished_at, started_at), finished_at, 'stored', "
                        "'migrated', 0 FROM {poll_runs}", "poll_runs")
    with state.tx() as cur:
        cur.many("INSERT INTO feeds VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (feed_url) DO NOTHING",
                 [_iso(r) for r in feeds])
        cur.many("INSERT INTO stories VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (article_id) DO NOTHING",
                 [_iso((*r[:7], url_key(r[7]), *r[8:])) for r in stories])
        cur.many("INSERT INTO aliases VALUES (?,?,?) ON CONFLICT (alias) DO NOTHING", aliases)
        cur.many("INSERT INTO clusters VALUES (?,?,?,?,?,?,?) ON CONFLICT (cluster_id) DO NOTHING",
                 [_iso((*r[:5], array("I", r[5]).tobytes() if r[5] else None, r[6])) for r in clusters])
        cur.many("INSERT INTO matched VALUES (?,?,?,?,?) ON CONFLICT (cluster_id, watchlist) DO NOTHING",
                 [_iso(r) for r in matched])
        cur.many("INSERT INTO alerts (alert_id, kind, article_id, cluster_id, watchlist, channel, channel_name, "
                 "status, attempts, last_error, created_at, last_attempt_at, sent_at, next_attempt_at, delivery_key, "
                 "title, url, source, published_at, score, labels, evidence, snippets, subject, body, run_id, synced) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (alert_id) DO NOTHING",
                 [_iso(r) for r in alerts])
        cur.many("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO NOTHING", [_iso(r) for r in runs])


def _has(files: dict[str, Path], table: str, column: str) -> bool:
    got = _rows(files, f"SELECT count(*) FROM (DESCRIBE SELECT * FROM {{{table}}}) WHERE column_name = '{column}'",
                table)
    return bool(got and got[0][0])
