"""Hostile output, a hostile analyst and a hostile disk (issue 16).

- Outside text (feed titles, server headers, stored errors, query results) is printed as text by every command:
  never read as rich markup (`[/x]`, `[bold red]`, `[link=...]`, `:emoji:`), and no character that acts on a
  terminal (OSC/CSI escapes, C0/C1 controls, bidi overrides) reaches it raw.
- `newsmon sql` runs one read-only query on a locked-down connection: nothing outside the lake can be read,
  nothing at all written, the state database never attached.
- A full disk makes `newsmon run` and `newsmon report` exit 3 with one line, leaving nothing half-written; a
  damaged warehouse (catalog or Parquet file cut or gone) is refused, never answered from what remains.

Real parts only: a feed site on 127.0.0.1, `newsmon` processes against the test Prefect API server, real
warehouse files, a real small tmpfs for the full disk (RLIMIT_FSIZE where mounting is not allowed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from newsmon import cli
from newsmon.config import load_settings
from tests.conftest import RouteServer, config_text
from tests.hostile_servers import MATCH_TEXT

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC).replace(microsecond=0)

# One title per class of hostile text; each article's page matches the watchlist, so each title is printed.
TITLES = [
    "Azerbaijan and Russia sign an energy deal [/x] a stray closing tag",
    "Baku and Moscow agree [bold red]red[/] and [link=http://evil.example/]a link[/link] [/]",
    "Caspian gas talks :red_circle: :warning: \\[escaped] [http] allow_hosts",
    "Energy talks \x1b]0;pwned window title\x07 OSC, \x1b[31mred\x1b[0m CSI, \x1b[2J clear",
    "Energy talks C1 \u009b31m CSI, \u0085 NEL, DEL \x7f, backspace \x08\x08, bell \x07 and a \x0b tab",
    "Energy talks bidi \u202eesrever\u202c \u2066isolate\u2069 \u200fmark \u061c",
]
# What may never reach a terminal raw: C0 (tab, newline aside), DEL, C1, bidi controls, line separators.
UNSAFE = {chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]} | set(
    "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
BAD_ENCODING = "[/x] [bold]x"  # a Content-Encoding header: its error is stored, then shown by `newsmon feeds`
METADATA_FEED = "http://169.254.169.254/latest/feed.xml"  # refused before any request; the advice names [http]


def visible(text: str, *, one_line: bool = True) -> str:
    """The oracle: `text` with every unsafe character written as a visible escape (\\x1b, \\u202e)."""
    out = []
    for ch in text:
        if ch in UNSAFE or (one_line and ch in "\t\n"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def raw_unsafe(text: str) -> set[str]:
    return {repr(ch) for ch in text if ch in UNSAFE}


def rss(base: str, items: list[tuple[str, str]]) -> bytes:
    when = format_datetime(NOW, usegmt=True)
    body = "".join(f"<item><title>{t}</title><link>{base}{path}</link><pubDate>{when}</pubDate></item>"
                   for t, path in items)
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>wire</title>"
            f"<link>{base}/</link><description>d</description>{body}</channel></rss>").encode()


PAGE = f"<html><body><article><p>{MATCH_TEXT}</p><p>{MATCH_TEXT}</p></article></body></html>".encode()




@pytest.fixture(scope="module")
def api_env(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for `newsmon` subprocesses: the harness's Prefect API server, a wide terminal (no wrapping)."""
    from prefect.settings import PREFECT_API_URL

    return os.environ | {"PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                         "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")), "COLUMNS": "3000",
                         "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}


def newsmon(args: list[str], env: dict[str, str], *, fsize: int | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """A real `newsmon` process; `fsize` caps the size of every file it writes (RLIMIT_FSIZE: writes fail EFBIG)."""
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-m", "newsmon.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


class HostileSite:
    """A news site on 127.0.0.1: the hostile-title feed (with matching article pages) and a feed answering with
    a hostile Content-Encoding header."""

    def __init__(self) -> None:
        self.server = RouteServer()
        base = self.server.base_url
        for n in range(len(TITLES)):
            self.server.add(f"/story/{n}", body=PAGE, content_type="text/html")
        self.feed = self.server.add("/hostile.xml", body=rss(base, [(t, f"/story/{n}") for n, t in
                                                                   enumerate(TITLES)]))
        self.encoded = self.server.add("/encoded.xml", body=b"\x00" * 64, headers={"Content-Encoding": BAD_ENCODING})


class Hostile:
    """The module's shared run: its config, its output, and the stored titles (the output's oracle)."""

    def __init__(self, cfg: Path, run: subprocess.CompletedProcess[str]) -> None:
        self.cfg = cfg
        self.run = run
        self.settings = load_settings(cfg).warehouse


@pytest.fixture(scope="module")
def hostile(api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    site = HostileSite()
    folder = tmp_path_factory.mktemp("hostile")
    cfg = folder / "newsmon.toml"
    cfg.write_text(config_text([("hostile wire", site.feed), ("encoded", site.encoded),
                                ("metadata", METADATA_FEED)]), encoding="utf-8")
    try:
        run = newsmon(["run", "--config", str(cfg)], api_env)
    finally:
        site.server.close()
    yield Hostile(cfg, run)


def stored(cfg: Path, sql: str) -> list[tuple[Any, ...]]:
    from tests.conftest import lake_query

    return lake_query(cfg, sql)


# ---------------------------------------------------------------------------------------------- output as text


def test_newsmon_run_prints_hostile_titles_and_errors_as_text(hostile: Hostile) -> None:
    out, err = hostile.run.stdout, hostile.run.stderr
    assert hostile.run.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "MarkupError" not in err
    titles = dict(stored(hostile.cfg, "SELECT url, title FROM articles"))
    assert len(titles) == len(TITLES)
    assert any("\x1b" in t for t in titles.values()) and any("\u202e" in t for t in titles.values()), \
        "the feed parser dropped the controls: the test would prove nothing"
    for title in titles.values():
        assert visible(title) in out, f"title not printed as text: {title!r}"
    assert "[/x] a stray closing tag" in out and "[bold red]red[/]" in out and "[link=http://evil.example/]" in out
    assert ":red_circle:" in out and "\\[escaped] [http] allow_hosts" in out
    assert not raw_unsafe(out.replace("\n", "")), raw_unsafe(out)
    assert "\x1b]0;" not in err and "\u202e" not in err
    errors = dict(stored(hostile.cfg, "SELECT name, last_error FROM feeds"))
    assert BAD_ENCODING in errors["encoded"] and "[http]" in errors["metadata"]
    for name in ("encoded", "metadata"):  # our own advice ("[http] allow_hosts") and a server's header, whole
        assert f"failed {name}: {visible(errors[name])}" in out


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_newsmon_sql_prints_hostile_values_as_text_in_every_format(
        hostile: Hostile, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "3000")
    titles = [r[0] for r in stored(hostile.cfg, "SELECT title FROM articles ORDER BY title")]
    query = 'SELECT title AS "[/x] :smile: [bold]\x1b[31m", title FROM articles ORDER BY title'
    assert cli.main(["sql", "--config", str(hostile.cfg), "--format", fmt, query]) == cli.EXIT_OK
    out = capsys.readouterr().out
    if fmt == "json":  # lossless: the data read back is exactly what is stored, and still nothing raw
        rows = json.loads(out)
        assert [r["title"] for r in rows] == titles
        assert list(rows[0]) == ["[/x] :smile: [bold]\x1b[31m", "title"]
        assert not raw_unsafe(out)
        return
    assert not raw_unsafe(out.replace("\n", "").replace("\r", "") if fmt == "csv" else out.replace("\n", "")), \
        raw_unsafe(out)
    assert visible("[/x] :smile: [bold]\x1b[31m") in out
    for title in titles:
        assert visible(title) in out


def test_newsmon_feeds_shows_a_stored_error_with_markup_as_text(hostile: Hostile,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "3000")
    assert cli.main(["feeds", "--config", str(hostile.cfg)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    errors = dict(stored(hostile.cfg, "SELECT name, last_error FROM feeds"))
    assert BAD_ENCODING in errors["encoded"]
    assert visible(errors["encoded"], one_line=False) in out and visible(errors["metadata"], one_line=False) in out


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_newsmon_digest_prints_hostile_titles_without_controls(hostile: Hostile, fmt: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["digest", "--config", str(hostile.cfg), "--since", "7d", "--format", fmt]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert not raw_unsafe(out.replace("\n", "")), raw_unsafe(out)
    if fmt == "text":  # one story (the six articles are one cluster): its title shown with its brackets
        assert any(f in out for f in ("[/x] a stray closing tag", "[bold red]red[/]", "\\[escaped] [http]")), out


HOSTILE_FIELD = "[/x] [bold red]x[/] :smile: \x1b]0;t\x07\x1b[31m\u009b2J\r\u202eevil [http]\nsecond line"


@pytest.mark.parametrize("console", ["default rich console", "newsmon's own"])
def test_every_console_printer_shows_outside_text_as_text(console: str, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The class, not the calls: each printer of newsmon.console given hostile text in every outside field, on a
    console with markup, emoji codes and highlighting switched on (a caller's) and on newsmon's own."""
    from flows.jobs import Flip, JobReport
    from newsmon.console import print_job_report, print_rows, print_summary

    monkeypatch.setenv("COLUMNS", "3000")  # no wrapping: each field's text is found whole
    h = HOSTILE_FIELD
    buf = io.StringIO()
    con = Console(file=buf, width=3000, force_terminal=False) if console.startswith("default") else None
    summary = {"run_id": h, "feeds_total": 2, "feeds_ok": 1, "feeds_not_modified": 0, "new_articles": 1,
               "pages_fell_back": 0, "alerts_queued": 0, "alerts_sent": 0, "alert_errors": [h], "storage": h,
               "seconds": {"poll": 0.1}, "matches": [{"score": 3.0, "tags": [h], "title": h, "url": h}],
               "failed_feeds": [{"name": h, "url": h, "error": h}], "gone_feeds": [{"name": h, "url": h}]}
    report = JobReport(examined=1, rules_versions={h: h}, dry_run=True, failed=[(h, h)],
                       flips=[Flip("a", h, h, h, None, None, True, 2.0)])
    print_summary(summary, con)
    print_summary({"skipped": h}, con)
    print_job_report(report, con)
    print_rows([h], [(h,), (None,), ([{"term": h}],)], "table")
    out = buf.getvalue() + capsys.readouterr().out
    assert not raw_unsafe(out.replace("\n", "")), raw_unsafe(out)
    one_line = visible(h)
    assert out.count(one_line) >= 12, out  # every field of the summary and the job report, on one line each
    assert visible(h, one_line=False).split("\n")[0] in out  # a table cell keeps its line break


def test_only_newsmon_console_talks_to_rich() -> None:
    """Safe by construction: every rich call sits in newsmon/console.py, where outside text becomes Text."""
    users = sorted(str(p.relative_to(ROOT)) for d in ("newsmon", "flows", "extractors", "warehouse")
                   for p in (ROOT / d).rglob("*.py") if "from rich" in p.read_text() or "import rich" in p.read_text())
    assert users == ["newsmon/console.py"]


# ------------------------------------------------------------------------------------------ newsmon sql locked


@pytest.fixture(scope="module")
def lake(hostile: Hostile) -> Hostile:
    """The shared warehouse with its rows flushed to Parquet (so queries read the data folder)."""
    from warehouse import open_warehouse

    wh = open_warehouse(hostile.settings)
    try:
        wh.upkeep(now=datetime.now(UTC))
    finally:
        wh.close()
    assert list(hostile.settings.data_folder.rglob("*.parquet")), "upkeep wrote no Parquet files"
    return hostile


def fingerprint(*folders: Path) -> dict[str, str]:
    """Every file under the folders with a hash of its bytes (what a refused statement must leave as it was).
    SQLite's shared-memory index and an empty WAL are what any reader of a WAL database creates: not data."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith((".lock", "-shm"))
            and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


@contextmanager
def listener() -> Iterator[tuple[int, list[int]]]:
    """A TCP port that counts connections (a PostgreSQL server that a query must never reach)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    hits: list[int] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            hits.append(1)
            conn.close()
    threading.Thread(target=accept, daemon=True).start()
    try:
        yield srv.getsockname()[1], hits
    finally:
        srv.close()


def refused_statements(s: Any, outside: Path, port: int) -> list[str]:
    wh, data, state = Path(s.path).parent, s.data_folder, s.state_path
    parquet = next(data.rglob("*.parquet"))
    return [
        # writing files: anywhere, and into the lake's own data folder (which DuckDB's lockdown allows)
        f"COPY (SELECT 1) TO '{outside}/out.csv'",
        f"COPY (SELECT * FROM alerts) TO '{data}/main/alerts/forged.parquet'",
        f"COPY (SELECT 1 AS x) TO '{wh}/spool.json' (FORMAT json)",
        f"EXPORT DATABASE '{outside}/export'",
        # reading other files
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{s.path.parent.parent / 'newsmon.toml'}')",
        f"SELECT * FROM read_blob('{state}')",
        f"SELECT * FROM read_parquet('{outside}/*.parquet')",
        f"SELECT * FROM read_text('{data}/../newsmon.state.sqlite')",
        "WITH x AS (SELECT * FROM read_text('/etc/hostname')) SELECT * FROM x",
        # other databases: the state database (SQLite) above all
        f"ATTACH '{outside}/other.duckdb' AS o",
        f"ATTACH '{state}' AS st (TYPE sqlite)",
        f"SELECT * FROM sqlite_scan('{state}', 'alerts')",
        f"SELECT * FROM sqlite_attach('{state}')",
        f"SELECT * FROM sqlite_query('{state}', 'DELETE FROM alerts')",
        f"SELECT count(*) FROM (SELECT * FROM system.main.sqlite_scan('{state}', 'stories'))",
        f"DESCRIBE SELECT * FROM sqlite_scan('{state}', 'alerts')",
        f"SELECT * FROM query('SELECT * FROM sqlite_scan(''{state}'', ''alerts'')')",
        f"SELECT * FROM postgres_scan('host=127.0.0.1 port={port} dbname=x connect_timeout=2', 'public', 't')",
        f"SELECT * FROM postgres_attach('host=127.0.0.1 port={port} dbname=x connect_timeout=2')",
        # the lake itself: DuckLake's maintenance writes Parquet files even on a READ_ONLY attach
        "CALL ducklake_flush_inlined_data('newsmon')",
        "SELECT * FROM ducklake_flush_inlined_data('newsmon')",
        "SELECT * FROM ducklake_delete_orphaned_files('newsmon', cleanup_all => true)",
        "SELECT * FROM ducklake_cleanup_old_files('newsmon', cleanup_all => true)",
        "SELECT * FROM ducklake_merge_adjacent_files('newsmon')",
        "SELECT * FROM checkpoint()",
        "CHECKPOINT",
        "DELETE FROM alerts", "DROP TABLE articles", "UPDATE feeds SET name = 'x'", "CREATE TEMP TABLE t AS SELECT 1",
        "INSERT INTO meta VALUES ('k', 'v')",
        # extensions, settings, pragmas, several statements
        "INSTALL httpfs", "LOAD httpfs", "LOAD json", f"LOAD '{parquet}'", "SET threads = 1",
        "SET enable_external_access = true", "RESET lock_configuration", "PRAGMA enable_profiling",
        "PRAGMA database_list", "SELECT 1; SELECT 2", "SELECT 1; DELETE FROM alerts",
        f"SELECT 1; COPY (SELECT 1) TO '{outside}/x.csv'", "EXPLAIN ANALYZE DELETE FROM alerts", "DETACH newsmon",
        "USE memory", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')",
        "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
    ]


def test_newsmon_sql_refuses_everything_but_one_read_only_query(lake: Hostile, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    s = lake.settings
    wh = Path(s.path).parent
    before = fingerprint(wh)
    with listener() as (port, hits):
        for statement in refused_statements(s, tmp_path, port):
            code = cli.main(["sql", "--config", str(lake.cfg), statement])
            out, err = capsys.readouterr()
            assert code == cli.EXIT_WAREHOUSE, f"not refused: {statement}\n{out}"
            assert out == "" and err.startswith("newsmon: warehouse error: ") and "Traceback" not in err, err
        assert hits == [], "a query reached a server"
    assert fingerprint(wh) == before, "a refused statement changed the warehouse"
    assert list(tmp_path.iterdir()) == [], "a refused statement wrote a file"


def test_newsmon_sql_answers_every_table_and_view_and_sees_no_state_database(
        lake: Hostile, capsys: pytest.CaptureFixture[str]) -> None:
    s = lake.settings

    def sql(query: str) -> list[dict[str, Any]]:
        assert cli.main(["sql", "--config", str(lake.cfg), "--format", "json", query]) == cli.EXIT_OK, \
            capsys.readouterr().err
        rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
        return rows

    names = [r["name"] for r in sql("SELECT table_name AS name FROM duckdb_tables() WHERE database_name = 'newsmon' "
                                    "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'newsmon' "
                                    "AND NOT internal ORDER BY 1")]
    assert {"articles", "tags", "alerts", "feeds", "matches", "feed_health"} <= set(names)
    for name in names:
        assert sql(f"SELECT count(*) AS n FROM {name}")[0]["n"] >= 0
        sql(f"SELECT * FROM {name} LIMIT 3")
    evidence = sql("SELECT t.evidence[1].term AS term, len(t.evidence) AS n FROM tags t WHERE len(t.evidence) > 0")
    assert evidence and all(r["term"] and r["n"] >= 1 for r in evidence)
    assert sql("SELECT count(*) AS n FROM (SELECT unnest(evidence) AS e FROM tags)")[0]["n"] >= len(evidence)
    for query in ("SUMMARIZE articles", "DESCRIBE tags", "SHOW TABLES", "FROM feeds LIMIT 1", "VALUES (1)",
                  "SELECT * FROM ducklake_snapshots('newsmon')", "SELECT 1;",
                  f"SELECT count(*) AS n FROM read_parquet('{s.data_folder}/main/articles/*.parquet')"):
        sql(query)
    databases = sql("SELECT database_name, path FROM duckdb_databases()")
    assert str(s.state_path) not in json.dumps(databases), "the state database is attached to newsmon sql"
    assert {d["database_name"] for d in databases} <= {"memory", "newsmon", "__ducklake_metadata_newsmon",
                                                       "system", "temp"}
    settings = {r["name"]: r["value"] for r in sql("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                                   "('enable_external_access', 'lock_configuration', "
                                                   "'autoinstall_known_extensions', 'autoload_known_extensions', "
                                                   "'allowed_directories')")}
    assert settings["enable_external_access"] == "false" and settings["lock_configuration"] == "true"
    assert settings["autoinstall_known_extensions"] == settings["autoload_known_extensions"] == "false"
    assert str(s.data_folder) in settings["allowed_directories"]


def test_duckdb_lockdown_by_itself_refuses_files_attach_extensions_and_settings(lake: Hostile,
                                                                                tmp_path: Path) -> None:
    """What DuckDB 1.5.5's own settings refuse on the `newsmon sql` connection, below newsmon's statement check
    (queried on the session's lake directly): the second wall, if the first ever lets a statement through."""
    import duckdb

    from warehouse import open_sql_session

    session = open_sql_session(lake.settings)
    try:
        for statement, refusal in [
                (f"COPY (SELECT 1) TO '{tmp_path}/out.csv'", duckdb.PermissionException),
                ("SELECT * FROM read_csv('/etc/passwd')", duckdb.PermissionException),
                (f"SELECT * FROM read_text('{lake.cfg}')", duckdb.PermissionException),
                (f"SELECT * FROM read_text('{lake.settings.data_folder}/../newsmon.state.sqlite')",
                 duckdb.PermissionException),
                (f"ATTACH '{tmp_path}/other.duckdb' AS o", duckdb.PermissionException),
                ("INSTALL httpfs", duckdb.PermissionException),
                ("LOAD httpfs", duckdb.PermissionException),
                ("SET enable_external_access = true", duckdb.InvalidInputException),
                ("SET allowed_directories = ['/']", duckdb.InvalidInputException),
                ("RESET lock_configuration", duckdb.InvalidInputException)]:
            with pytest.raises(Exception) as caught:
                session.lake.query(statement)
            assert isinstance(caught.value.__cause__, refusal), (statement, caught.value)
    finally:
        session.close()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- damaged lake


def copy_warehouse(src: Hostile, dst: Path) -> Path:
    """A copy of the shared warehouse (its catalog pointed at the copied data folder) and a config naming it."""
    wh = Path(src.settings.path).parent
    shutil.copytree(wh, dst / "wh")
    catalog = dst / "wh" / Path(src.settings.catalog_target).name
    db = sqlite3.connect(catalog)
    db.execute("UPDATE ducklake_metadata SET value = replace(value, ?, ?) WHERE key = 'data_path'",
               [str(wh) + "/", str(dst / "wh") + "/"])
    db.commit()
    db.close()
    cfg = dst / "newsmon.toml"
    cfg.write_text(config_text([]), encoding="utf-8")
    return cfg


def cut(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(max(size, 0))


def article_file(cfg: Path) -> Path:
    return Path(stored(cfg, "SELECT data_file FROM ducklake_list_files('newsmon', 'articles')")[0][0])


DAMAGES = ["parquet file cut in half", "parquet file cut to nothing", "parquet file deleted",
           "catalog cut by one page", "catalog cut in half", "catalog cut inside its header",
           "catalog cut after its header", "catalog overwritten", "catalog cut to nothing"]


def do_damage(damage: str, cfg: Path, catalog: Path) -> Path:
    """Damage the copy as named; returns the file damaged (the one the error must name)."""
    target = article_file(cfg) if damage.startswith("parquet") else catalog
    size = target.stat().st_size
    if damage.endswith("deleted"):
        target.unlink()
    elif damage.endswith("overwritten"):
        target.write_bytes(b"\x00garbage" * 512)
    else:
        cut(target, {"cut in half": size // 2, "cut to nothing": 0, "cut by one page": size - 4096,
                     "cut inside its header": 10, "cut after its header": 100}["cut" + damage.split(" cut", 1)[1]])
    return target


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_warehouse_is_refused_naming_the_file_never_answered_from_what_remains(
        lake: Hostile, damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = copy_warehouse(lake, tmp_path)
    catalog = tmp_path / "wh" / "newsmon.ducklake"
    queries = ["SELECT count(*) FROM articles", "SELECT count(*) FROM feeds", "SELECT title FROM articles"]
    for q in queries:  # the copy answers before the damage
        assert cli.main(["sql", "--config", str(cfg), q]) == cli.EXIT_OK, capsys.readouterr().err
    capsys.readouterr()
    broken = do_damage(damage, cfg, catalog)
    for command in [["sql", q] for q in queries] + [["feeds"], ["report", "--out", str(tmp_path / "r.html")]]:
        code = cli.main([command[0], "--config", str(cfg), *command[1:]])
        out, err = capsys.readouterr()
        assert code == cli.EXIT_WAREHOUSE, (command, out)
        assert out == "", f"{command} answered from a damaged warehouse: {out}"
        assert err.startswith("newsmon: warehouse error: ") and str(broken) in err and "damaged" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------------------- full disk


@contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[str]:
    """A real small file system at `folder`: a tmpfs of `size_kb` when this process may mount (root), else
    plain `folder` and the word "rlimit": callers then cap file sizes with RLIMIT_FSIZE instead."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0 if shutil.which("mount") else False
    try:
        yield "tmpfs" if mounted else "rlimit"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system of `folder` up to `leave_bytes` of free space; returns the filler (delete it to free)."""
    filler = folder / "filler"
    with open(filler, "ab") as f:
        while True:
            st = os.statvfs(folder)
            free = st.f_bavail * st.f_frsize
            if free <= leave_bytes:
                break
            try:
                f.write(b"\0" * min(free - leave_bytes, 1 << 20))
                f.flush()
            except OSError:
                break
    return filler


def leftovers(folder: Path) -> list[str]:
    """Files a failed write must not leave: empty ones (lock files and SQLite's own -wal/-shm aside) and temps."""
    out = []
    for p in folder.rglob("*"):
        if not p.is_file() or p.name == "filler" or p.name.endswith((".lock", "-wal", "-shm")):
            continue
        if p.stat().st_size == 0 or p.name.endswith(".tmp") or p.name.startswith("tmp"):
            out.append(str(p))
    return out


def one_error_line(err: str) -> str:
    """The one error line of `err`, besides `run`'s line saying what starts and its warning about the test
    config's placeholder contact (both printed before anything can fail)."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ANNOUNCED.fullmatch(ln)
             and not (ln.startswith("newsmon: warning: ") and "contact_url is a placeholder" in ln)]
    assert "Traceback" not in err, err[-4000:]
    assert len(lines) == 1 and lines[0].startswith("newsmon: "), err[-4000:]  # nothing else: no Prefect lines
    return lines[0]


ANNOUNCED = re.compile(r"newsmon: polling .* starting Prefect\.\.\.")

FULL_DISK = {  # case: (folder on the small disk, bytes left free, stories in the second run's batch)
    "state-full-at-open": ("state", 0, 24),
    "lake-full-at-open": ("lake", 0, 24),
    "state-full-while-writing": ("state", 40 << 10, 24),
    "lake-catalog-full-while-writing": ("lake", 40 << 10, 24),  # up to 200 rows a table are inlined in the catalog
    "lake-parquet-full-while-writing": ("lake", 600 << 10, 230),  # 230 articles: a ~1 MB Parquet file, cut short
}


def story_page(n: int) -> bytes:
    """A matching article with text of its own (random, so its Parquet column does not compress away)."""
    noise = hashlib.shake_256(str(n).encode()).hexdigest(2000)
    return f"<html><body><article><p>{MATCH_TEXT}</p><p>{noise}</p></article></body></html>".encode()


@pytest.mark.slow
@pytest.mark.parametrize("case", list(FULL_DISK))
def test_a_full_disk_fails_the_run_with_one_line_and_the_next_run_stores_everything(
        api_env: dict[str, str], case: str, tmp_path: Path) -> None:
    """The state database, or the lake (catalog and Parquet), on a small disk: the first run fits, the second
    finds the disk full (exit 3, one line, nothing half-written left: no empty file, no temporary file, no data
    file the catalog does not list), the third, with room again, stores the entries the second could not: each
    story once. With 40 KB left, SQLite can open its WAL databases (their 32 KB shared-memory file fits) and
    the run fails while writing; with none, it fails opening them."""
    target, leave, stories = FULL_DISK[case]
    disk = tmp_path / "disk"
    with small_disk(disk, 8192) as how:
        site = RouteServer()
        try:
            for n in range(stories):
                site.add(f"/story/{n}", body=story_page(n), content_type="text/html")
            site.add("/feed.xml", body=rss(site.base_url, [("Azerbaijan Russia energy story 0", "/story/0")]))
            on_disk = {"state": f'path = "{tmp_path}/wh/newsmon.duckdb"\nstate = "{disk}/newsmon.state.sqlite"',
                       "lake": f'path = "{tmp_path}/wh/newsmon.duckdb"\ncatalog = "{disk}/newsmon.ducklake"\n'
                               f'data_path = "{disk}/newsmon.files"'}[target]
            cfg = tmp_path / "newsmon.toml"
            cfg.write_text(config_text([("wire", site.base_url + "/feed.xml")], warehouse=on_disk),
                           encoding="utf-8")
            first = newsmon(["run", "--config", str(cfg), "--json"], api_env)
            assert first.returncode == 0, first.stderr[-3000:]
            site.add("/feed.xml", body=rss(site.base_url, [(f"Azerbaijan Russia energy story {n}", f"/story/{n}")
                                                           for n in range(stories)]))
            if how == "tmpfs":
                filler = fill(disk, leave)
                second = newsmon(["run", "--config", str(cfg), "--json"], api_env)
            else:
                filler = disk / "filler"
                biggest = max(p.stat().st_size for p in disk.rglob("*") if p.is_file())
                second = newsmon(["run", "--config", str(cfg), "--json"], api_env, fsize=biggest + leave)
            line = one_error_line(second.stderr)
            assert second.returncode == cli.EXIT_WAREHOUSE, second.stderr[-3000:]
            assert line.startswith("newsmon: warehouse error: ") and "disk is full" in line, second.stderr[-3000:]
            assert second.stdout == ""
            if stories > 200:  # the case is what it says: the disk filled while DuckLake wrote a Parquet file
                assert ".parquet" in line and "No space left on device" in line, line
            assert leftovers(disk) == []
            filler.unlink(missing_ok=True)
            if target == "lake":  # every data file left is one the catalog lists (none cut short, none orphaned)
                listed = {Path(r[0]) for t in ("articles", "tags", "verdicts", "entry_aliases", "fetch_log", "feeds")
                          for r in stored(cfg, f"SELECT data_file FROM ducklake_list_files('newsmon', '{t}')")}
                on_disk_files = {p for p in (disk / "newsmon.files").rglob("*") if p.is_file()}
                assert on_disk_files <= listed, on_disk_files - listed
            third = newsmon(["run", "--config", str(cfg), "--json"], api_env)
            assert third.returncode == 0, third.stderr[-3000:]
        finally:
            site.close()
        urls = [r[0] for r in stored(cfg, "SELECT url FROM articles")]
        assert sorted(urls) == sorted(f"{site.base_url}/story/{n}" for n in range(stories)), urls
        print(f"full disk simulated with {how}")


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_newsmon_report_on_a_full_disk_exits_3_with_one_line_and_leaves_no_temporary_file(
        lake: Hostile, api_env: dict[str, str], how: str, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk, 64) as got:
        if how == "tmpfs" and got != "tmpfs":
            pytest.skip("cannot mount a tmpfs here (not root); the rlimit case covers a full disk")
        out = disk / "reports" / "report.html"
        if how == "tmpfs":
            fill(disk)
            done = newsmon(["report", "--config", str(lake.cfg), "--out", str(out)], api_env, timeout=120)
        else:  # every file the process writes is capped at 1 KB; SQLite's 32 KB index of the catalog's WAL is
            # kept in existence by an open reader here (a process under the cap could not create it)
            reader = sqlite3.connect(lake.settings.catalog_target)
            try:
                reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
                done = newsmon(["report", "--config", str(lake.cfg), "--out", str(out)], api_env, fsize=1024,
                               timeout=120)
            finally:
                reader.close()
        line = one_error_line(done.stderr)
        assert done.returncode == cli.EXIT_WAREHOUSE, done.stderr[-3000:]
        assert str(out) in line and "disk is full" in line, line
        assert not out.exists() and list(out.parent.glob("*")) == [], list(out.parent.glob("*"))
        assert done.stdout == ""


def test_newsmon_sql_on_a_postgresql_catalog_answers_locked_down(postgres: Any, tmp_path: Path) -> None:
    """The lockdown with the catalog in PostgreSQL: the lake still answers; the scanner's own functions (a query on
    the attached catalog database, or a connection to any server) are refused before they run."""
    from newsmon.errors import StorageError
    from tests.test_postgres import pg_settings
    from tests.test_warehouse import NOW as STORED_AT
    from tests.test_warehouse import batch
    from warehouse import open_sql_session, open_warehouse

    settings = pg_settings(postgres, tmp_path)
    wh = open_warehouse(settings)
    try:
        wh.runs.store_run(batch("r1", 3), finished_at=STORED_AT)
        wh.upkeep(now=datetime.now(UTC))
    finally:
        wh.close()
    session = open_sql_session(settings)
    try:
        assert session.query("SELECT count(*) FROM articles")[1] == [(3,)]
        assert session.query("SELECT count(*) FROM tags")[1][0][0] >= 0
        with listener() as (port, hits):
            for statement in [
                    "SELECT * FROM postgres_query('__ducklake_metadata_newsmon', 'SELECT 1')",
                    "SELECT * FROM postgres_execute('__ducklake_metadata_newsmon', 'DROP TABLE ducklake_snapshot')",
                    f"SELECT * FROM postgres_scan('host=127.0.0.1 port={port} dbname=x', 'public', 't')",
                    f"SELECT * FROM read_text('{tmp_path}/w.duckdb')"]:
                with pytest.raises(StorageError):
                    session.query(statement)
            assert hits == []
        assert session.query("SELECT count(*) FROM ducklake_snapshots('newsmon')")[1][0][0] >= 1
    finally:
        session.close()
