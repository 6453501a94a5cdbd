"""Counts that mean what they say, and output other tools read: matches per day apart from label passes, the
feed status that says what failed, `newsmon sql` piped, and exports of every table and view that CSV, JSON and
Parquet readers take as they are."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import duckdb
import pytest

from newsmon import cli
from newsmon.config import HttpSettings
from newsmon.demo.server import SiteServer, demo_site_root
from newsmon.records import FeedSpec, RunBatch, Verdict
from tests.conftest import RouteServer, config_text, lake_query, make_warehouse
from tests.test_cli import newsmon
from tests.test_warehouse import NOW, article
from warehouse.export import NOT_EXPORTED

LONG_TITLE = ("Azerbaijan and Russia sign a long-term gas swap agreement covering pipeline capacity, storage, "
              "transit tariffs and a joint venture for Caspian offshore fields")


@dataclass(frozen=True)
class SiteRun:
    cfg: Path
    summary: dict


@pytest.fixture(scope="module")
def site_run(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[SiteRun]:
    """One real poll of the demo news site (English and Russian feeds, and one that does not parse)."""
    from flows.poll import poll_feeds

    tmp = tmp_path_factory.mktemp("site")
    with SiteServer(demo_site_root()) as site:
        cfg = tmp / "newsmon.toml"
        cfg.write_text(config_text([("en", site.url("/feeds/en.xml")), ("ru", site.url("/feeds/ru.xml")),
                                    ("broken", site.url("/feeds/broken.xml"))]), encoding="utf-8")
        summary = poll_feeds(config=str(cfg))
    yield SiteRun(cfg, summary)


def table_rows(out: str) -> dict[str, list[str]]:
    """A rich table's body rows (one line each), keyed by their first cell."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells
    return rows


# ------------------------------------------------------------------------------------- matches per day


def test_match_daily_counts_counts_matches_where_daily_counts_counts_label_passes(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    scores = (("az_ru", 5.0), ("energy", 2.5), ("cooperation", 0.0))
    match = Verdict("a0", "az_ru", "2026.1", True, 7.5, ("az_ru", "energy"), scores, ())
    # a football story about "Neftchi" passes `energy` (neft*) but the watchlist does not match it
    football = Verdict("a1", "az_ru", "2026.1", False, 2.5, ("energy",), scores, ())
    other_day = Verdict("a2", "az_ru", "2026.1", True, 7.5, ("az_ru", "energy"), scores, ())
    wh.runs.store_run(RunBatch("r1", "t", NOW, (), (article(0), article(1, title="Neftchi beat Qarabag 2-1"),
                                                   article(2, published_at=NOW - timedelta(days=1))),
                               (match, football, other_day), ()), finished_at=NOW)
    rows = wh.lake.query("SELECT day, source, watchlist, matches FROM match_daily_counts ORDER BY day")[1]
    assert rows == [(NOW.date() - timedelta(days=1), "Example", "az_ru", 1), (NOW.date(), "Example", "az_ru", 1)]
    passes = wh.lake.query("SELECT articles FROM daily_counts WHERE label = 'energy' AND day = ?", [NOW.date()])[1]
    assert passes == [(2,)]  # the football story is counted there: it passed the label, it is not a match
    wh.close()


def test_match_daily_counts_agree_with_the_matches_of_a_real_run(site_run: SiteRun) -> None:
    per_day = lake_query(site_run.cfg, "SELECT coalesce(sum(matches), 0) FROM match_daily_counts")[0][0]
    matches = lake_query(site_run.cfg, "SELECT count(DISTINCT article_id) FROM matches")[0][0]
    assert per_day == matches == len(site_run.summary["matches"]) >= 1
    by_source = dict(lake_query(site_run.cfg, "SELECT source, sum(matches) FROM match_daily_counts GROUP BY 1"))
    assert by_source == dict(lake_query(site_run.cfg, "SELECT source, count(*) FROM matches GROUP BY 1"))
    # the demo site has stories that pass a label without matching: daily_counts counts them, the matches do not
    passes = lake_query(site_run.cfg, "SELECT sum(articles) FROM daily_counts WHERE label = 'energy'")[0][0]
    energy_matches = lake_query(site_run.cfg, "SELECT count(*) FROM matches WHERE list_contains(tags, 'energy')")
    assert passes > energy_matches[0][0]


def test_a_lake_of_the_previous_release_gets_the_new_view_when_a_reader_opens_it(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(RunBatch("r1", "t", NOW, (), (article(0),), (
        Verdict("a0", "az_ru", "2026.1", True, 7.5, ("az_ru",), (("az_ru", 5.0),), ()),), ()), finished_at=NOW)

    def as_before(con: duckdb.DuckDBPyConnection) -> None:  # what the previous release left: no new view
        con.execute("DROP VIEW match_daily_counts")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'lake_version'")
    wh.lake.write(as_before)
    wh.close()
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    res = newsmon("sql", "--config", str(cfg), "SELECT day, matches FROM match_daily_counts")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["day,matches", f"{NOW.date()},1"]
    assert lake_query(cfg, "SELECT value FROM meta WHERE key = 'lake_version'") == [("2",)]


def test_the_report_says_which_rule_rows_count_label_passes_and_which_counts_matches(
        site_run: SiteRun, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert cli.main(["report", "--config", str(site_run.cfg), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    rules = html.split('<table class="rules">', 1)[1].split("</table>", 1)[0]
    assert "<th>counted</th>" in rules
    rows = {cells[2]: cells for cells in (re.findall(r"<td>(.*?)</td>", r) for r in rules.split("<tr>")[2:])}
    assert rows["energy"][3] == "stories passing this label"
    assert rows["(watchlist match)"][3] == "matching stories"
    assert int(rows["energy"][4]) > 0 and int(rows["(watchlist match)"][4]) >= 1
    assert "only the (watchlist match) row counts matches" in html


# ------------------------------------------------------------------------------------------ feed status


def test_newsmon_feeds_says_parse_error_not_200_after_a_real_run(site_run: SiteRun,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    assert cli.main(["feeds", "--config", str(site_run.cfg)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows["broken"][1] == "parse error (HTTP 200)"
    assert rows["en"][1] == rows["ru"][1] == "ok (HTTP 200)"
    assert "broken.xml" in rows["broken"][-1]  # the error itself, as stored
    assert lake_query(site_run.cfg, "SELECT last_status, last_result FROM feed_health WHERE name = 'broken'") == [
        (200, "parse error (HTTP 200)")]


def _slow(h: BaseHTTPRequestHandler) -> None:
    time.sleep(4)  # past the poll's 1 s timeout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_kind_of_failure_is_named_in_feeds_and_in_feed_health(
        routes: RouteServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from extractors.poller import poll_feeds

    rss = (b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item><title>Baku</title>"
           b"<link>https://news.example/1</link><guid>g1</guid></item></channel></rss>")
    feeds = [FeedSpec("ok", routes.add("/ok.xml", body=rss)),
             FeedSpec("html", routes.add("/page", body=b"<!doctype html><html><body>hi</body></html>",
                                         content_type="text/html")),
             FeedSpec("server", routes.add("/err.xml", status=500, body=b"oops")),
             FeedSpec("missing", routes.base_url + "/none.xml"),
             FeedSpec("big", routes.add("/big.xml", body=rss + b" " * 4000)),
             FeedSpec("slow", routes.base_url + "/slow.xml"),
             FeedSpec("refused", f"http://127.0.0.1:{_closed_port()}/feed.xml")]
    routes.routes["/slow.xml"] = _slow
    http = HttpSettings(allow_private_networks=True, timeout_s=1, max_feed_bytes=2048, per_host_delay_s=0,
                        jitter_s=0)
    results = poll_feeds(feeds, {}, http, now=datetime.now(UTC))
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(RunBatch("r1", "t", datetime.now(UTC), tuple(results), (), (), ()),
                      finished_at=datetime.now(UTC))
    wh.close()
    expected = {"ok": "ok (HTTP 200)", "html": "parse error (HTTP 200)", "server": "HTTP 500", "missing": "HTTP 404",
                "big": "too large (HTTP 200)", "slow": "timeout", "refused": "fetch failed"}
    assert dict(lake_query(tmp_path / "w.duckdb", "SELECT name, last_result FROM feed_health")) == expected
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "400")
    assert cli.main(["feeds", "--config", str(cfg)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows["name"][1] == "status"
    assert {name: rows[name][1] for name in expected} == expected


# ------------------------------------------------------------------------------------------ newsmon sql


@pytest.fixture
def long_values(tmp_path: Path) -> Path:
    """A warehouse whose story has a title longer than any terminal line, text with a comma, quote and newline."""
    wh = make_warehouse(tmp_path / "w.duckdb")
    scores = (("az_ru", 5.0), ("energy", 2.5))
    wh.runs.store_run(RunBatch("r1", "t", NOW, (), (
        article(0, title=LONG_TITLE, summary='one, "two"\nthree\tfour \\ five'),),
        (Verdict("a0", "az_ru", "2026.1", True, 7.5, ("az_ru", "energy"), scores, ()),), ()), finished_at=NOW)
    wh.close()
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    return cfg


QUERY = "SELECT m.title, m.tags, a.summary, m.score FROM matches m JOIN articles a USING (article_id)"


def test_newsmon_sql_piped_prints_csv_with_every_value_whole(long_values: Path) -> None:
    res = newsmon("sql", "--config", str(long_values), QUERY)  # stdout is a pipe, not a terminal
    assert res.returncode == 0, res.stderr
    assert "…" not in res.stdout and "┃" not in res.stdout
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert rows == [["title", "tags", "summary", "score"],
                    [LONG_TITLE, '["az_ru","energy"]', 'one, "two"\nthree\tfour \\ five', "7.5"]]
    assert json.loads(rows[1][1]) == ["az_ru", "energy"]


def test_newsmon_sql_tsv_json_and_table_on_request(long_values: Path) -> None:
    tsv = newsmon("sql", "--config", str(long_values), "--format", "tsv", QUERY)
    assert tsv.returncode == 0, tsv.stderr
    lines = tsv.stdout.splitlines()
    assert [line.split("\t") for line in lines] == [
        ["title", "tags", "summary", "score"],
        [LONG_TITLE, '["az_ru","energy"]', 'one, "two"\\nthree\\tfour \\\\ five', "7.5"]]
    as_json = json.loads(newsmon("sql", "--config", str(long_values), "--format", "json", QUERY).stdout)
    assert as_json == [{"title": LONG_TITLE, "tags": ["az_ru", "energy"], "summary": 'one, "two"\nthree\tfour \\ five',
                        "score": 7.5}]
    table = newsmon("sql", "--config", str(long_values), "--format", "table", QUERY)
    assert table.returncode == 0 and "(1 row)" in table.stdout and "┃" in table.stdout


def test_newsmon_sql_on_a_terminal_still_prints_the_table(long_values: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    from tests.test_cli import ROOT

    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "newsmon.cli", "sql", "--config", str(long_values), QUERY],
                            stdout=follower, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal is closed once the command has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    out = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode("utf-8"))  # the terminal's bold header
    assert "┃ title" in out and "(1 row)" in out and "title,tags" not in out


def test_newsmon_sql_help_says_what_a_pipe_gets() -> None:
    out = " ".join(newsmon("sql", "--help").stdout.split())
    assert "{table,csv,tsv,json}" in out
    assert "Default: table when stdout is a terminal, else csv" in out and "a header row" in out


# --------------------------------------------------------------------------------------------- export


def lake_names(cfg: Path) -> set[str]:
    return {r[0] for r in lake_query(cfg, "SELECT table_name FROM duckdb_tables() WHERE database_name = 'newsmon' "
                                          "UNION ALL SELECT view_name FROM duckdb_views() "
                                          "WHERE database_name = 'newsmon' AND NOT internal")}


def test_csv_export_writes_every_table_and_view_with_nested_columns_as_json(site_run: SiteRun,
                                                                           tmp_path: Path) -> None:
    out = tmp_path / "csv"
    assert cli.main(["export", "--config", str(site_run.cfg), "--format", "csv", str(out)]) == 0
    names = lake_names(site_run.cfg)
    assert {"matches", "tag_evidence", "match_daily_counts", "feed_health", "clusters", "meta"} <= names
    assert {p.stem for p in out.glob("*.csv")} == names - NOT_EXPORTED

    def read(name: str) -> list[dict[str, str]]:
        with (out / f"{name}.csv").open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    tags = read("tags")
    assert len(tags) == lake_query(site_run.cfg, "SELECT count(*) FROM tags")[0][0]
    evidence = [e for t in tags for e in json.loads(t["evidence"])]
    assert evidence and {"term", "concept", "where", "start", "end", "snippet", "weight", "text"} <= set(evidence[0])
    stored = lake_query(site_run.cfg, "SELECT count(*) FROM tag_evidence")[0][0]
    assert len(evidence) == stored == len(read("tag_evidence"))
    matches = read("matches")
    assert sorted(m["article_id"] for m in matches) == sorted(
        r[0] for r in lake_query(site_run.cfg, "SELECT article_id FROM matches"))
    assert all(isinstance(json.loads(m["tags"]), list) and json.loads(m["tags"]) for m in matches)
    assert {v["tags"][:1] for v in read("verdicts")} == {"["}
    assert all(isinstance(json.loads(c["outlets"]), list) for c in read("story_clusters"))
    assert sum(int(r["matches"]) for r in read("match_daily_counts")) == len(matches)
    assert {r["name"]: r["last_result"] for r in read("feed_health")}["broken"] == "parse error (HTTP 200)"
    assert read("alerts") == [] and (out / "alerts.csv").read_text(encoding="utf-8").startswith("alert_id,")


def test_parquet_export_reads_back_with_the_documented_glob_even_when_empty(site_run: SiteRun,
                                                                           tmp_path: Path) -> None:
    out = tmp_path / "pq"
    assert cli.main(["export", "--config", str(site_run.cfg), str(out)]) == 0
    con = duckdb.connect()
    names = lake_names(site_run.cfg) - NOT_EXPORTED
    undated = {"feeds", "meta", "feed_health"}
    assert {p.name for p in out.iterdir()} == (names - undated) | {f"{n}.parquet" for n in undated}

    def count(name: str) -> int:
        source = f"'{out}/{name}.parquet'" if name in undated else \
            f"read_parquet('{out}/{name}/*/*.parquet', hive_partitioning = true)"
        return int(con.execute(f"SELECT count(*) FROM {source}").fetchone()[0])

    for name in names:
        assert count(name) == lake_query(site_run.cfg, f"SELECT count(*) FROM {name}")[0][0], name
    assert count("alerts") == 0  # no alert channel: an empty table, still one file the glob reads
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out}/alerts/*/*.parquet', "
                                         "hive_partitioning = true)").fetchall()]
    assert columns[:3] == ["alert_id", "article_id", "watchlist"] and "day" in columns
    evidence = con.execute(f"SELECT len(evidence) FROM read_parquet('{out}/tags/*/*.parquet') "
                           "WHERE len(evidence) > 0 LIMIT 1").fetchall()
    assert evidence  # nested columns stay nested in Parquet

    # a period with no stories: every dated table and view is empty, and each still reads back
    later = tmp_path / "later"
    assert cli.main(["export", "--config", str(site_run.cfg), "--since", "2999-01-01", str(later)]) == 0
    for name in names - undated:
        got = con.execute(f"SELECT count(*) FROM read_parquet('{later}/{name}/*/*.parquet', hive_partitioning = true)")
        assert got.fetchone() == (0,), name
    # exporting again into the same folder replaces the empty file with the rows
    assert cli.main(["export", "--config", str(site_run.cfg), str(later)]) == 0
    out = later
    assert count("articles") == lake_query(site_run.cfg, "SELECT count(*) FROM articles")[0][0] > 0
