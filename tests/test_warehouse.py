from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from newsmon.errors import StorageError
from newsmon.records import AlertRecord, Article, Entry, FeedResult, FeedSpec, RunBatch, Verdict
from warehouse import open_warehouse
from warehouse.duckdb_store import DuckDBWarehouse
from warehouse.lock import run_lock
from warehouse.schema import MIGRATIONS, SCHEMA_VERSION
from warehouse.spool import pending, spool_dir

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
FEED = FeedSpec("Example", "https://news.example/rss")


def article(i: int, **kw: object) -> Article:
    base = dict(article_id=f"a{i}", feed_url=FEED.url, feed_name=FEED.name, entry_key=f"https://news.example/{i}",
                url=f"https://news.example/{i}", title=f"Story {i}", summary="s", text=f"text {i} " * 50,
                fetched_at=NOW, published_at=NOW - timedelta(hours=i), word_count=100)
    base.update(kw)
    return Article(**base)  # type: ignore[arg-type]


def verdict(i: int, match: bool) -> Verdict:
    ev = ({"label": "az_ru", "term": "Baku", "concept": "az", "where": "title", "start": 0, "end": 4,
           "snippet": "Baku and Moscow", "weight": 2.0},)
    return Verdict(f"a{i}", "az_ru", "2026.1", match, 7.5 if match else 0.5, ("az_ru", "energy") if match else (),
                   (("az_ru", 5.0), ("energy", 2.5), ("cooperation", 0.0)), ev)


def batch(run: str, n: int = 5, alerts: tuple[AlertRecord, ...] = (), start: int = 0) -> RunBatch:
    res = FeedResult(FEED, NOW, status=200, etag=f'"{run}"', body_hash="h1")
    ids = range(start, start + n)
    return RunBatch(run, "test", NOW, (res,), tuple(article(i) for i in ids),
                    tuple(verdict(i, i == 0) for i in ids), alerts,
                    aliases=tuple((f"https://news.example/{i}", f"a{i}") for i in ids))


def alert(i: int) -> AlertRecord:
    return AlertRecord(f"al{i}", f"a{i}", "az_ru", "ch1", "pending", 0, "", "", "", None, 0.0, (), (),
                       channel_name="json://127.0.0.1")


def v1_file(path: Path) -> duckdb.DuckDBPyConnection:
    """A warehouse file as version 1 of the schema made it, open for the test to add old rows."""
    con = duckdb.connect(str(path))
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    return con


def count(wh: DuckDBWarehouse, table: str) -> int:
    return wh.query(f"SELECT count(*) FROM {table}")[1][0][0]


def test_store_is_idempotent_and_views_answer(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.store_run(batch("r1", alerts=(alert(0),)), finished_at=NOW)
    wh.store_run(batch("r2", alerts=(alert(0),)), finished_at=NOW)
    assert count(wh, "articles") == 5
    assert count(wh, "alerts") == 1
    assert count(wh, "tags") == 15
    cols, rows = wh.query("SELECT title, score, tags FROM matches")
    assert rows == [("Story 0", 7.5, ["az_ru", "energy"])]
    _, ev = wh.query("SELECT e.term, e.snippet FROM tags, unnest(evidence) AS u(e) WHERE label = 'az_ru' "
                     "AND article_id = 'a0'")
    assert ev == [("Baku", "Baku and Moscow")]
    _, health = wh.query("SELECT url, last_status, consecutive_failures, articles_stored FROM feed_health")
    assert health == [(FEED.url, 200, 0, 5)]
    assert wh.feed_states()[FEED.url].etag == '"r2"'
    assert wh.known_article_ids(["a1", "zz"]) == {"a1"}


def test_timestamps_are_utc_timestamptz(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.store_run(batch("r1", 1), finished_at=NOW)
    _, rows = wh.query("SELECT typeof(published_at), published_at FROM articles")
    assert rows[0][0] == "TIMESTAMP WITH TIME ZONE"
    assert rows[0][1].utcoffset() == timedelta(0) and rows[0][1] == NOW


def test_failures_count_up_and_reset(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    bad = FeedResult(FEED, NOW, status=500, error="HTTP 500")
    for run in ("r1", "r2"):
        wh.store_run(RunBatch(run, "t", NOW, (bad,), (), (), ()), finished_at=NOW)
    assert wh.query("SELECT consecutive_failures, last_error FROM feed_health")[1] == [(2, "HTTP 500")]
    wh.store_run(RunBatch("r3", "t", NOW, (FeedResult(FEED, NOW, status=200),), (), (), ()), finished_at=NOW)
    assert wh.query("SELECT consecutive_failures, last_error FROM feed_health")[1] == [(0, None)]


def test_alert_outcomes_sent_retried_then_failed(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.store_run(batch("r1", 2, alerts=(alert(0), alert(1))), finished_at=NOW)
    assert sorted(a.alert_id for a in wh.pending_alerts(max_attempts=2)) == ["al0", "al1"]
    wh.mark_alerts([("al0", None), ("al1", "boom")], now=NOW, max_attempts=2)
    assert [a.alert_id for a in wh.pending_alerts(max_attempts=2)] == ["al1"]
    wh.mark_alerts([("al1", "boom")], now=NOW, max_attempts=2)
    assert wh.pending_alerts(max_attempts=2) == []
    _, rows = wh.query("SELECT alert_id, status, attempts FROM alert_ledger ORDER BY 1")
    assert rows == [("al0", "sent", 1), ("al1", "failed", 2)]


def test_a_failed_transaction_leaves_nothing_and_does_not_block_the_next_run(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    good = batch("r1", 3)
    # the third article's date is garbage: the insert fails after feeds and the log were written
    bad = RunBatch(**{**good.__dict__, "articles": (*good.articles[:2], article(2, published_at="not a date"))})
    with pytest.raises(StorageError, match="moved to .*rejected"):
        wh.store_run(bad, finished_at=NOW)
    assert count(wh, "articles") == 0 and count(wh, "feeds") == 0 and count(wh, "poll_runs") == 0
    assert wh.pending_spool() == 0 and len(list((spool_dir(wh.path) / "rejected").iterdir())) == 1
    assert wh.store_run(batch("r2", 3), finished_at=NOW).stored and count(wh, "articles") == 3


def test_storing_the_same_run_twice_changes_nothing(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    entries = tuple(Entry(FEED.url, f"k{i}", f"https://news.example/{i}", f"t{i}") for i in range(4))
    res = FeedResult(FEED, NOW, status=200, etag='"e1"', entries=entries)
    run = RunBatch("r1", "test", NOW, (res,), tuple(article(i) for i in range(4)),
                   tuple(verdict(i, True) for i in range(4)), (alert(0),), (("f", "u", "boom"),))
    wh.store_run(run, finished_at=NOW)
    snapshot = [wh.query(q)[1] for q in (*STATE_QUERIES, "SELECT entries_seen FROM feeds",
                                             "SELECT count(*) FROM tags", "SELECT count(*) FROM verdicts")]
    second = wh.store_run(run, finished_at=NOW + timedelta(minutes=15))
    assert second.stored and second.merged == 0
    assert [wh.query(q)[1] for q in (*STATE_QUERIES, "SELECT entries_seen FROM feeds",
                                     "SELECT count(*) FROM tags", "SELECT count(*) FROM verdicts")] == snapshot
    assert snapshot[2] == [(2,)] and snapshot[5] == [(4,)]


def test_every_timestamp_column_is_timestamptz(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _, rows = wh.query("SELECT table_name, column_name, data_type FROM information_schema.columns "
                       "WHERE data_type LIKE 'TIMESTAMP%' OR data_type = 'DATE' AND table_name NOT IN "
                       "('daily_counts')")
    assert len(rows) >= 15 and {r[2] for r in rows} == {"TIMESTAMP WITH TIME ZONE"}


def test_evidence_rows_and_daily_counts_need_no_json(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    undated = article(9, published_at=None, feed_name="Other")
    wh.store_run(RunBatch("r1", "t", NOW, (), (article(0), undated), (verdict(0, True), verdict(9, True)), ()),
                 finished_at=NOW)
    _, ev = wh.query("SELECT article_id, label, term, \"where\", \"start\", \"end\", snippet FROM tag_evidence "
                     "ORDER BY article_id")
    assert ev == [("a0", "az_ru", "Baku", "title", 0, 4, "Baku and Moscow"),
                  ("a9", "az_ru", "Baku", "title", 0, 4, "Baku and Moscow")]
    _, daily = wh.query("SELECT day, source, label, articles FROM daily_counts ORDER BY source, label")
    assert daily == [(NOW.date(), "Example", "az_ru", 1), (NOW.date(), "Example", "energy", 1),
                     (NOW.date(), "Other", "az_ru", 1), (NOW.date(), "Other", "energy", 1)]


def test_a_v1_file_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = v1_file(path)
    con.execute("INSERT INTO feeds (feed_url, name, etag) VALUES ('https://news.example/rss', 'Example', 'e0')")
    con.execute("INSERT INTO articles (article_id, url, feed_url, feed_name, entry_key, title, text, fetched_at, "
                "run_id) VALUES ('old1', 'https://news.example/old', 'https://news.example/rss', 'Example', 'k', "
                "'Old story', 'Baku', TIMESTAMPTZ '2026-01-05 10:00:00+00', 'r-old')")
    con.execute("INSERT INTO tags VALUES ('old1', 'az_ru', 'az_ru', 5.0, true, '2025.9', "
                "[{'term': 'Baku', 'concept': 'az', 'where': 'body', 'start': 0, 'end': 4, 'snippet': 'Baku', "
                "'weight': 1.0}], TIMESTAMPTZ '2026-01-05 10:00:00+00')")
    con.execute("INSERT INTO poll_runs (run_id, started_at) VALUES ('r-old', TIMESTAMPTZ '2026-01-05 10:00:00+00')")
    con.close()

    wh = DuckDBWarehouse(path)
    assert wh.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(SCHEMA_VERSION),)]
    assert wh.query("SELECT title, text FROM articles")[1] == [("Old story", "Baku")]
    assert wh.query("SELECT etag FROM feeds")[1] == [("e0",)]
    assert wh.query("SELECT article_id, term, rules_version FROM tag_evidence")[1] == [("old1", "Baku", "2025.9")]
    assert wh.query("SELECT day, articles FROM daily_counts")[1] == [(datetime(2026, 1, 5).date(), 1)]
    assert wh.query("SELECT count(*) FROM store_log")[1] == [(0,)]
    # a run stored before the upgrade is still recognised: storing it again is a no-op
    old_run = RunBatch("r-old", "t", NOW, (), (article(1),), (), ())
    assert wh.store_run(old_run, finished_at=NOW).merged == 0 and count(wh, "articles") == 1
    assert wh.store_run(batch("r-new", 2), finished_at=NOW).merged == 1 and count(wh, "articles") == 3


KILLED_WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from tests.test_warehouse import NOW, batch
from warehouse.duckdb_store import DuckDBWarehouse
wh = DuckDBWarehouse(Path(sys.argv[1]))
big = batch("big", int(sys.argv[2]))
print("ready", flush=True)
wh.store_run(big, finished_at=NOW)
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_writer_killed_mid_store_leaves_no_partial_batch(tmp_path: Path) -> None:
    path, n = tmp_path / "w.duckdb", 6000
    DuckDBWarehouse(path).store_run(batch("r0", 2, start=n), finished_at=NOW)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(n)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=ENV)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while not pending(spool_dir(path)) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the spooled batch is complete; the transaction is under way
    assert proc.poll() is None, "the writer finished before it could be killed: make the batch bigger"
    proc.kill()
    proc.wait()
    con = duckdb.connect(str(path), read_only=True)  # what the file holds right after the kill
    articles, runs = con.execute("SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM poll_runs)"
                                 ).fetchone()
    con.close()
    assert (articles, runs) in ((2, 1), (n, 2))  # all or nothing, never part of the batch
    wh = DuckDBWarehouse(path)  # the next run merges the spooled batch: now it is all there, once
    assert wh.query("SELECT count(*), count(DISTINCT article_id) FROM articles")[1] == [(n + 2, n + 2)]
    assert count(wh, "poll_runs") == 2 and count(wh, "tags") == 3 * (n + 2) and wh.pending_spool() == 0


def test_schema_version_is_recorded_and_newer_files_are_refused(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert wh.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(SCHEMA_VERSION),)]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StorageError, match="newer newsmon"):
        DuckDBWarehouse(tmp_path / "w.duckdb")


HOLD = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("holding", flush=True)
sys.stdin.readline()
"""


@contextmanager
def held(path: Path, mode: str) -> Iterator[subprocess.Popen[str]]:
    """Another process keeps the file open (read-only 'ro' or read-write 'rw') until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)


def test_a_short_hold_delays_but_does_not_spool_a_write(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path)
    proc = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\n"
                             "c = duckdb.connect(sys.argv[1], read_only=True); print('h', flush=True); time.sleep(1)",
                             str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "h"
    t0 = time.monotonic()
    report = DuckDBWarehouse(path, lock_timeout_s=20).store_run(batch("r1"), finished_at=NOW)
    assert time.monotonic() - t0 > 0.3 and report.stored and report.pending == 0
    proc.wait()
    assert count(DuckDBWarehouse(path), "articles") == 5


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_run_while_another_process_holds_the_file_loses_nothing_and_doubles_nothing(
        tmp_path: Path, mode: str) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path).store_run(batch("r0", 5, alerts=(alert(0),)), finished_at=NOW)
    with held(path, mode) as proc:
        t0 = time.monotonic()
        wh = DuckDBWarehouse(path, lock_timeout_s=0.3)
        assert wh.locked_by is not None and f"process {proc.pid}" in wh.locked_by
        assert bool(wh.feed_states()) == (mode == "ro")  # a read-write holder hides even the feed state
        first = wh.store_run(batch("r1", 5, alerts=(alert(7),), start=3), finished_at=NOW)
        assert not first.stored and first.pending == 1 and "next run stores them" in str(first.locked_by)
        assert wh.known_article_ids(["a3", "a7", "a8"]) == {"a3", "a7"}  # spooled ones are not fetched again
        known = wh.known_entries([f"https://news.example/{i}" for i in (3, 7, 8)])
        assert {k: v.article_id for k, v in known.items()} == {"https://news.example/3": "a3",
                                                               "https://news.example/7": "a7"}
        assert wh.pending_alerts(max_attempts=5) == []  # no delivery until an outcome can be recorded
        wh.mark_alerts([("al0", None)], now=NOW, max_attempts=5)  # an outcome recorded late is spooled
        again = wh.store_run(batch("r1", 5, alerts=(alert(7),), start=3), finished_at=NOW)  # a retried store
        later = wh.store_run(batch("r2", 5, start=6), finished_at=NOW)
        assert (again.pending, later.pending) == (3, 4)
        assert time.monotonic() - t0 < 10
    after = DuckDBWarehouse(path, lock_timeout_s=5)  # the next run, after the release, merges first
    assert after.locked_by is None and after.pending_spool() == 0
    assert not list(spool_dir(path).iterdir())
    snapshot = [after.query(q)[1] for q in STATE_QUERIES]
    assert snapshot[0] == [(11, 11)]  # a0..a10, each once
    assert snapshot[1] == [("r0",), ("r1",), ("r2",)]
    assert snapshot[2] == [(3,)]  # one fetch_log row per run: the retried r1 was not applied twice
    assert snapshot[3] == [("al0", "sent", 1), ("al7", "pending", 0)]
    assert snapshot[4] == [('"r2"', 0)]  # the last run's feed state won
    assert [r[0] for r in after.query("SELECT kind FROM store_log ORDER BY spooled_at, batch_id")[1]] == \
        ["run", "run", "alert_outcomes", "run"]
    assert [DuckDBWarehouse(path).query(q)[1] for q in STATE_QUERIES] == snapshot  # reopening changes nothing


def test_alerts_queued_while_the_file_is_held_wait_in_the_spool(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path)
    spike = AlertRecord("sp1", "", "az_ru", "ch1", "pending", 0, "", "", "", None, 0.0, (), (), kind="spike",
                        subject="az_ru spike", body="12 stories in 6 h", channel_name="json://127.0.0.1")
    with held(path, "rw"):
        wh = DuckDBWarehouse(path, lock_timeout_s=0.2)
        assert wh.queue_alerts([spike], now=NOW) == 0 and wh.pending_spool() == 1
    after = DuckDBWarehouse(path)
    assert after.queue_alerts([spike], now=NOW) == 0  # already there: the spooled batch was stored first
    assert after.query("SELECT alert_id, kind, subject, status FROM alerts")[1] == [
        ("sp1", "spike", "az_ru spike", "pending")]
    assert after.query("SELECT kind, records FROM store_log ORDER BY spooled_at")[1] == [("alerts", 1), ("alerts", 1)]


def test_kept_pages_and_rewrites_while_the_file_is_held_wait_in_the_spool(tmp_path: Path) -> None:
    from newsmon.records import RawPage

    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path).store_run(batch("r1", 2), finished_at=NOW)
    fresh = Verdict("a1", "az_ru", "2026.2", True, 9.0, ("az_ru",), (("az_ru", 9.0),),
                    ({"label": "az_ru", "term": "baku*", "text": "Bakuvian", "start": 0, "end": 8},))
    with held(path, "rw"):
        wh = DuckDBWarehouse(path, lock_timeout_s=0.2)
        assert not wh.store_raw_pages([RawPage("a0", "https://news.example/0", None, None, "gzip", b"\x00\xff",
                                               2, NOW)]).stored
        assert not wh.update_articles([article(0, text="new text", canonical_url="https://news.example/c0")]).stored
        assert not wh.replace_verdicts([fresh], now=NOW).stored
        assert wh.pending_spool() == 3
    after = DuckDBWarehouse(path)
    assert after.pending_spool() == 0
    assert after.query("SELECT body, codec FROM raw_pages")[1] == [(b"\x00\xff", "gzip")]
    assert after.query("SELECT text, url_key FROM articles WHERE article_id = 'a0'")[1] == [
        ("new text", "news.example/c0")]
    assert after.query("SELECT label, term, text FROM tag_evidence WHERE article_id = 'a1'")[1] == [
        ("az_ru", "baku*", "Bakuvian")]
    assert [r[0] for r in after.query("SELECT kind FROM store_log ORDER BY spooled_at")[1]] == [
        "run", "raw_pages", "article_updates", "verdicts"]


STATE_QUERIES = (
    "SELECT count(*), count(DISTINCT article_id) FROM articles",
    "SELECT run_id FROM poll_runs ORDER BY 1",
    "SELECT count(*) FROM fetch_log",
    "SELECT alert_id, status, attempts FROM alerts ORDER BY 1",
    "SELECT etag, consecutive_failures FROM feeds",
)


def test_sql_names_the_process_holding_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\nlock_timeout_s = 0.5\n', encoding="utf-8")
    DuckDBWarehouse(tmp_path / "w.duckdb")
    with held(tmp_path / "w.duckdb", "rw") as proc:
        out = subprocess.run([sys.executable, "-m", "newsmon.cli", "sql", "-c", str(cfg), "SELECT 1"],
                             capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert out.returncode == 3
    err = " ".join(out.stderr.split())
    assert f"still locked after 0.5 s by process {proc.pid}" in err and "close that DuckDB session" in err


def test_read_only_open_of_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="newsmon run"):
        open_warehouse(tmp_path / "none.duckdb", read_only=True)


def test_run_lock_excludes_a_second_run(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with run_lock(path, wait_s=0):
        code = ("import sys; from pathlib import Path; from warehouse.lock import run_lock\n"
                "try:\n  with run_lock(Path(sys.argv[1]), wait_s=0.2): print('got')\n"
                "except Exception as e: print(type(e).__name__, e)")
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                             cwd=Path(__file__).parents[1]).stdout
    assert out.startswith("WarehouseLocked") and "this run is skipped" in out
    with run_lock(path, wait_s=0):
        pass


def test_a_version_1_file_is_upgraded_with_each_old_story_its_own_cluster(tmp_path: Path) -> None:


    path = tmp_path / "v1.duckdb"
    con = v1_file(path)
    con.execute("INSERT INTO articles (article_id, url, feed_url, feed_name, entry_key, title, fetched_at) "
                "VALUES ('a0', 'https://n.example/0', 'https://n.example/rss', 'N', 'k0', 'Old', ?)", [NOW])
    con.execute("INSERT INTO verdicts VALUES ('a0', 'az_ru', '1', true, 5.0, ['az_ru'], ?)", [NOW])
    con.execute("INSERT INTO alerts (alert_id, article_id, watchlist, channel, channel_name, status, created_at) "
                "VALUES ('al0', 'a0', 'az_ru', 'ch', 'json://h', 'sent', ?)", [NOW])
    con.close()
    wh = DuckDBWarehouse(path)
    from newsmon.records import stable_id

    cid = stable_id("cluster", "a0")
    assert wh.query("SELECT cluster_id FROM matches")[1] == [(cid,)]
    assert wh.query("SELECT cluster_id, articles, outlets FROM story_clusters")[1] == [(cid, 1, ["N"])]
    assert wh.query("SELECT kind, cluster_id, status, outlets FROM alert_ledger")[1] == [("story", cid, "sent", ["N"])]
    assert wh.recent_clusters(since=NOW - timedelta(days=1)) == []  # no signature: new copies never join it


def test_a_v1_file_is_migrated_keeping_tags_and_backfilling_url_keys(tmp_path: Path) -> None:

    path = tmp_path / "old.duckdb"
    con = v1_file(path)
    con.execute("INSERT INTO articles (article_id, url, canonical_url, feed_url, entry_key, fetched_at) VALUES "
                "('a1', 'https://www.News.example/x/?utm=1', 'https://www.news.example/story/#top', 'f', 'k', now())")
    con.execute("""INSERT INTO tags VALUES ('a1', 'az_ru', 'az_ru', 5.0, true, '2025.1',
        [{'term': 'baku', 'concept': 'azerbaijan', 'where': 'title', 'start': 0, 'end': 4, 'snippet': 'Baku',
          'weight': 2.0}], now())""")
    con.close()
    wh = DuckDBWarehouse(path)
    assert wh.query("SELECT url_key FROM articles")[1] == [("news.example/story",)]
    ev = wh.query("SELECT evidence FROM tags")[1][0][0]
    assert ev[0]["term"] == "baku" and ev[0]["text"] is None
    assert wh.article_ids_by_url_key(["news.example/story", "nope"]) == {"news.example/story": "a1"}


def test_replace_verdicts_rewrites_tags_with_surface_text_and_rules_version(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.store_run(batch("r1", 2), finished_at=NOW)
    fresh = Verdict("a1", "az_ru", "2026.2", True, 9.0, ("az_ru",), (("az_ru", 9.0),),
                    ({"label": "az_ru", "term": "азербайдж*", "concept": "azerbaijan", "where": "title", "start": 0,
                      "end": 13, "snippet": "Азербайджаном", "weight": 2.0, "text": "Азербайджаном"},))
    wh.replace_verdicts([fresh], now=NOW)
    assert wh.stored_verdicts(["a1", "a0"]) == {("a1", "az_ru"): (True, 9.0, "2026.2"),
                                                ("a0", "az_ru"): (True, 7.5, "2026.1")}
    tags = wh.query("SELECT label, rules_version, evidence[1].text FROM tags WHERE article_id = 'a1'")[1]
    assert tags == [("az_ru", "2026.2", "Азербайджаном")]  # the stale energy/cooperation rows went


def test_raw_pages_round_trip_and_aliases_count_as_known(tmp_path: Path) -> None:
    from newsmon.records import Alias, RawPage

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    good = batch("r1", 2)
    wh.store_run(RunBatch(**{**good.__dict__, "url_aliases": (Alias("dup", "a0", "https://m.news.example/0", "k"),)}),
                 finished_at=NOW)
    wh.store_raw_pages([RawPage("a0", "https://news.example/0", "text/html", "utf-8", "gzip", b"\x1f\x8b..", 300,
                                NOW)])
    assert wh.known_article_ids(["dup", "a1", "zzz"]) == {"dup", "a1"}
    (raw, art), = wh.stored_raw_pages(since=None)
    assert raw.body == b"\x1f\x8b.." and raw.codec == "gzip"
    assert art.article_id == "a0" and art.text.startswith("text 0")
    assert wh.stored_raw_pages(since=NOW + timedelta(days=1)) == []
    assert [a.article_id for a in wh.stored_articles(since=None, after="a0")] == ["a1"]
