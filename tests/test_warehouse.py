from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsmon.errors import StorageError, WarehouseLocked
from newsmon.records import AlertRecord, Article, FeedResult, FeedSpec, RunBatch, Verdict
from warehouse import open_warehouse
from warehouse.duckdb_store import DuckDBWarehouse
from warehouse.lock import run_lock
from warehouse.schema import MIGRATIONS, SCHEMA_VERSION

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
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


def batch(run: str, n: int = 5, alerts: tuple[AlertRecord, ...] = ()) -> RunBatch:
    res = FeedResult(FEED, NOW, status=200, etag='"e1"', body_hash="h1")
    return RunBatch(run, "test", NOW, (res,), tuple(article(i) for i in range(n)),
                    tuple(verdict(i, i == 0) for i in range(n)), alerts)


def alert(i: int) -> AlertRecord:
    return AlertRecord(f"al{i}", f"a{i}", "az_ru", "ch1", "pending", 0, "", "", "", None, 0.0, (), (),
                       channel_name="json://127.0.0.1")


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
    assert wh.feed_states()[FEED.url].etag == '"e1"'
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


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    good = batch("r1", 3)
    # the third article's date is garbage: the insert fails after feeds and the log were written
    bad = RunBatch(**{**good.__dict__, "articles": (*good.articles[:2], article(2, published_at="not a date"))})
    with pytest.raises(StorageError):
        wh.store_run(bad, finished_at=NOW)
    assert count(wh, "articles") == 0 and count(wh, "feeds") == 0 and count(wh, "poll_runs") == 0


def test_schema_version_is_recorded_and_newer_files_are_refused(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert wh.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(SCHEMA_VERSION),)]
    import duckdb
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StorageError, match="newer newsmon"):
        DuckDBWarehouse(tmp_path / "w.duckdb")


HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_a_reader_in_another_process_delays_but_does_not_lose_a_write(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path)
    proc = hold(path, 1.5)
    t0 = time.monotonic()
    wh = DuckDBWarehouse(path, lock_timeout_s=20)
    wh.store_run(batch("r1"), finished_at=NOW)
    assert time.monotonic() - t0 > 0.5
    proc.wait()
    assert count(wh, "articles") == 5


def test_lock_timeout_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path)
    proc = hold(path, 5)
    try:
        with pytest.raises(WarehouseLocked, match=rf"process {proc.pid}") as err:
            DuckDBWarehouse(path, lock_timeout_s=0.3)
        assert "close that DuckDB session" in str(err.value)
    finally:
        proc.kill()


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
    import duckdb

    from warehouse.schema import MIGRATIONS

    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
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
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
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
    wh.store_run(RunBatch(**{**good.__dict__, "aliases": (Alias("dup", "a0", "https://m.news.example/0", "k"),)}),
                 finished_at=NOW)
    wh.store_raw_pages([RawPage("a0", "https://news.example/0", "text/html", "utf-8", "gzip", b"\x1f\x8b..", 300,
                                NOW)])
    assert wh.known_article_ids(["dup", "a1", "zzz"]) == {"dup", "a1"}
    (raw, art), = wh.stored_raw_pages(since=None)
    assert raw.body == b"\x1f\x8b.." and raw.codec == "gzip"
    assert art.article_id == "a0" and art.text.startswith("text 0")
    assert wh.stored_raw_pages(since=NOW + timedelta(days=1)) == []
    assert [a.article_id for a in wh.stored_articles(since=None, after="a0")] == ["a1"]
