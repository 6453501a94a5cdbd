"""The warehouse: state database claims, the DuckLake records, recovery, readers that never block."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsmon.config import WarehouseSettings
from newsmon.errors import StorageError
from newsmon.records import (
    AlertRecord,
    Alias,
    Article,
    Entry,
    Evidence,
    FeedResult,
    FeedSpec,
    FeedStatus,
    RawPage,
    RunBatch,
    Verdict,
)
from tests.conftest import make_warehouse
from warehouse import DeliveryOutcome, Warehouse, location, open_warehouse
from warehouse.attach import analyst_sql
from warehouse.lake import writer_turn

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
    ev = (Evidence("az_ru", "Baku", "az", "title", 0, 4, "Baku and Moscow", 2.0),)
    return Verdict(f"a{i}", "az_ru", "2026.1", match, 7.5 if match else 0.5, ("az_ru", "energy") if match else (),
                   (("az_ru", 5.0), ("energy", 2.5), ("cooperation", 0.0)), ev)


def batch(run: str, n: int = 5, alerts: tuple[AlertRecord, ...] = (), start: int = 0) -> RunBatch:
    res = FeedResult(FEED, NOW, status=200, etag=f'"{run}"', body_hash="h1")
    ids = range(start, start + n)
    return RunBatch(run, "test", NOW, (res,), tuple(article(i) for i in ids),
                    tuple(verdict(i, i == 0) for i in ids), alerts,
                    aliases=tuple((f"https://news.example/{i}", f"a{i}") for i in ids))


def alert(i: int) -> AlertRecord:
    return AlertRecord(f"al{i}", f"a{i}", "az_ru", "ch1", "pending", 0, f"Story {i}", "", "", None, 0.0, (), (),
                       channel_name="json://127.0.0.1", cluster_id=f"c{i}")


def q(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.lake.query(sql)[1]


def count(wh: Warehouse, table: str) -> int:
    return q(wh, f"SELECT count(*) FROM {table}")[0][0]


def test_store_once_and_views_answer(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    first = wh.runs.store_run(batch("r1", alerts=(alert(0),)), finished_at=NOW)
    again = wh.runs.store_run(batch("r2", alerts=(alert(0),)), finished_at=NOW)  # the same stories, another run
    assert (first.articles, again.articles, again.claimed_elsewhere) == (5, 0, 5)
    assert count(wh, "articles") == 5 and count(wh, "alerts") == 1 and count(wh, "tags") == 15
    assert q(wh, "SELECT title, score, tags FROM matches") == [("Story 0", 7.5, ["az_ru", "energy"])]
    assert q(wh, "SELECT e.term, e.snippet FROM tags, unnest(evidence) AS u(e) WHERE label = 'az_ru' "
                 "AND article_id = 'a0'") == [("Baku", "Baku and Moscow")]
    assert q(wh, "SELECT url, last_status, consecutive_failures, articles_stored FROM feed_health") == [
        (FEED.url, 200, 0, 5)]
    assert q(wh, "SELECT count(*) FROM feeds") == [(1,)]  # the mirror row was replaced, not added
    assert wh.runs.feed_states()[FEED.url].etag == '"r2"'
    assert set(wh.runs.known_entries(["https://news.example/1", "zz"])) == {"https://news.example/1"}


def test_storing_the_same_run_twice_changes_nothing(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    entries = tuple(Entry(FEED.url, f"k{i}", f"https://news.example/{i}", f"t{i}") for i in range(4))
    res = FeedResult(FEED, NOW, status=200, etag='"e1"', entries=entries)
    run = RunBatch("r1", "test", NOW, (res,), tuple(article(i) for i in range(4)),
                   tuple(verdict(i, True) for i in range(4)), (alert(0),), (("f", "u", "boom"),))
    queries = ("SELECT count(*) FROM articles", "SELECT count(*) FROM fetch_log", "SELECT entries_seen FROM feeds",
               "SELECT count(*) FROM tags", "SELECT count(*) FROM alerts", "SELECT count(*) FROM poll_runs")
    wh.runs.store_run(run, finished_at=NOW)
    snapshot = [q(wh, s) for s in queries]
    assert wh.runs.store_run(run, finished_at=NOW + timedelta(minutes=15)).articles == 0  # a retried task
    assert [q(wh, s) for s in queries] == snapshot
    assert snapshot[1] == [(2,)] and snapshot[2] == [(4,)]


def test_timestamps_are_utc_timestamptz(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(batch("r1", 1), finished_at=NOW)
    (kind, when), = q(wh, "SELECT typeof(published_at), published_at FROM articles")
    assert kind == "TIMESTAMP WITH TIME ZONE" and when.utcoffset() == timedelta(0) and when == NOW
    rows = q(wh, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                 "WHERE (data_type LIKE 'TIMESTAMP%' OR data_type = 'DATE') "
                 "AND table_name NOT IN ('daily_counts', 'match_daily_counts')")
    assert len(rows) >= 15 and {r[2] for r in rows} == {"TIMESTAMP WITH TIME ZONE"}


def test_the_writer_returns_freed_memory_in_the_background(tmp_path: Path) -> None:
    """DuckDB's allocator purges what a store freed from background threads, so the flow process does not keep
    a part's rows while it waits for the next part (BENCHMARKS.md: ~16 MB of a 5,000-page backfill)."""
    wh = make_warehouse(tmp_path / "w.duckdb")
    try:
        wh.runs.store_run(batch("r1", 1), finished_at=NOW)
        assert q(wh, "SELECT current_setting('allocator_background_threads')") == [(True,)]
    finally:
        wh.close()


def test_failures_count_up_and_reset(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    bad = FeedResult(FEED, NOW, status=500, error="HTTP 500")
    for run in ("r1", "r2"):
        wh.runs.store_run(RunBatch(run, "t", NOW, (bad,), (), (), ()), finished_at=NOW)
    assert q(wh, "SELECT consecutive_failures, last_error FROM feed_health") == [(2, "HTTP 500")]
    assert wh.runs.feed_states()[FEED.url].consecutive_failures == 2
    assert wh.feed_statuses() == [FeedStatus(FEED.url, FEED.name, 2, None, NOW, "HTTP 500")]  # the alert's input
    wh.runs.store_run(RunBatch("r3", "t", NOW, (FeedResult(FEED, NOW, status=200),), (), (), ()), finished_at=NOW)
    assert q(wh, "SELECT consecutive_failures, last_error FROM feed_health") == [(0, None)]
    assert wh.feed_statuses() == [FeedStatus(FEED.url, FEED.name, 0, NOW, NOW, None)]


def test_alert_outcomes_sent_retried_then_failed_and_mirrored(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(batch("r1", 2, alerts=(alert(0), alert(1))), finished_at=NOW)
    assert sorted(a.alert_id for a in wh.runs.pending_alerts(max_attempts=2)) == ["al0", "al1"]
    assert q(wh, "SELECT status, count(*) FROM alerts GROUP BY 1") == [("pending", 2)]
    wh.runs.mark_alerts([DeliveryOutcome("al0", None), DeliveryOutcome("al1", "boom")], now=NOW, max_attempts=2,
                        retry_s=60)
    assert wh.runs.pending_alerts(max_attempts=2, now=NOW) == []  # al1 waits for its backoff
    assert [a.alert_id for a in wh.runs.pending_alerts(max_attempts=2, now=NOW + timedelta(minutes=2))] == ["al1"]
    wh.runs.mark_alerts([DeliveryOutcome("al1", "boom")], now=NOW, max_attempts=2)
    assert wh.runs.pending_alerts(max_attempts=2) == []
    assert wh.runs.sync_alerts() == 2 and wh.runs.sync_alerts() == 0
    assert q(wh, "SELECT alert_id, status, attempts, last_error FROM alert_ledger ORDER BY 1") == [
        ("al0", "sent", 1, None), ("al1", "failed", 2, "boom")]


def test_a_failed_lake_write_releases_the_claims_and_the_run_can_be_stored_again(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    good = batch("r1", 3, alerts=(alert(0),))
    bad = replace(good, articles=(*good.articles[:2], article(2, word_count="many")))  # the lake refuses it
    with pytest.raises(StorageError):
        wh.runs.store_run(bad, finished_at=NOW)
    assert count(wh, "articles") == 0 and count(wh, "poll_runs") == 0 and count(wh, "alerts") == 0
    assert wh.runs.known_entries(["https://news.example/0"]) == {}  # the entries are new again
    assert wh.runs.feed_states()[FEED.url].etag is None  # and the feed is fetched whole next time
    assert wh.runs.pending_alerts(max_attempts=5) == []
    assert wh.runs.store_run(good, finished_at=NOW).articles == 3 and count(wh, "articles") == 3
    assert [a.alert_id for a in wh.runs.pending_alerts(max_attempts=5)] == ["al0"]


def test_two_runs_claiming_one_story_store_and_alert_it_once(tmp_path: Path) -> None:
    """Two processes (say two shards) open the same warehouse; the story both saw is stored by the first."""
    one, two = make_warehouse(tmp_path / "w.duckdb"), make_warehouse(tmp_path / "w.duckdb")
    assert one.runs.store_run(batch("r1", 3, alerts=(alert(0),)), finished_at=NOW).articles == 3
    report = two.runs.store_run(batch("r2", 4, alerts=(alert(0),)), finished_at=NOW)
    assert (report.articles, report.claimed_elsewhere) == (1, 3)
    assert q(one, "SELECT count(*), count(DISTINCT article_id) FROM articles") == [(4, 4)]
    assert count(two, "alerts") == 1 and len(two.runs.pending_alerts(max_attempts=5)) == 1


def test_a_copy_another_run_stored_since_the_lookup_is_not_stored_again(tmp_path: Path) -> None:
    """Two shards look up a syndicated story at the same moment (both find it new), under other article ids:
    one shares an entry identity (the title+minute fingerprint), one the page's URL. The run that claims
    second stores neither, and remembers its entries as the stored stories (as a later lookup would have)."""
    one, two = make_warehouse(tmp_path / "w.duckdb"), make_warehouse(tmp_path / "w.duckdb")
    first = replace(batch("r1", 2, alerts=(alert(0),)), aliases=(
        ("https://news.example/0", "a0"), ("fp:story0", "a0"), ("https://news.example/1", "a1")))
    assert one.runs.store_run(first, finished_at=NOW).articles == 2
    copies = (article(10, entry_key="https://other.example/0", url="https://other.example/0"),
              article(11, entry_key="https://other.example/1", url="https://other.example/1",
                      canonical_url="https://news.example/1"),  # its page names the first outlet's
              article(12, entry_key="https://other.example/2", url="https://other.example/2"))
    second = RunBatch("r2", "test", NOW, (), copies, tuple(verdict(i, True) for i in (10, 11, 12)),
                      (alert(10), alert(11)), aliases=(("https://other.example/0", "a10"), ("fp:story0", "a10"),
                                                        ("https://other.example/1", "a11"),
                                                        ("https://other.example/2", "a12")))
    report = two.runs.store_run(second, finished_at=NOW)
    assert (report.articles, report.claimed_elsewhere) == (1, 2)
    assert q(one, "SELECT article_id FROM articles ORDER BY 1") == [("a0",), ("a1",), ("a12",)]
    known = two.runs.known_entries(["https://other.example/0", "https://other.example/1"])
    assert {k: v.article_id for k, v in known.items()} == {"https://other.example/0": "a0",
                                                           "https://other.example/1": "a1"}
    assert count(two, "alerts") == 1  # al0 only: the copies' alerts went with them


def test_evidence_rows_and_daily_counts_need_no_json(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    undated = article(9, published_at=None, feed_name="Other")
    wh.runs.store_run(RunBatch("r1", "t", NOW, (), (article(0), undated), (verdict(0, True), verdict(9, True)), ()),
                      finished_at=NOW)
    assert q(wh, "SELECT article_id, label, term, \"where\", \"start\", \"end\", snippet FROM tag_evidence "
                 "ORDER BY article_id") == [("a0", "az_ru", "Baku", "title", 0, 4, "Baku and Moscow"),
                                            ("a9", "az_ru", "Baku", "title", 0, 4, "Baku and Moscow")]
    assert q(wh, "SELECT day, source, label, articles FROM daily_counts ORDER BY source, label") == [
        (NOW.date(), "Example", "az_ru", 1), (NOW.date(), "Example", "energy", 1),
        (NOW.date(), "Other", "az_ru", 1), (NOW.date(), "Other", "energy", 1)]


LOCAL_RUN = """
import sys
from pathlib import Path
import flows.poll
from tests.test_warehouse import NOW, batch
from tests.conftest import make_warehouse
make_warehouse(Path(sys.argv[1])).runs.store_run(batch("r", 3), finished_at=NOW)
print(sorted(m for m in sys.modules if m.split(".")[0] == "psycopg"))
"""


@pytest.mark.parametrize("body_chars", [40, 4000])
def test_insert_stores_every_value_as_given_with_long_texts_beside_the_json(body_chars: int) -> None:
    """Rows go in through one JSON document; a column of long texts (here 300 x 4000 chars, over
    BULKY_COLUMN_CHARS) goes in beside it as a list. Either way each value arrives as given: quotes,
    backslashes, `$`, newlines, non-Latin scripts, None, timestamps, numbers; and a value that does not fit
    its column still fails the write."""
    import duckdb

    from warehouse.lake import BULKY_COLUMN_CHARS, insert

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE t (id VARCHAR, seen TIMESTAMPTZ, n INTEGER, body VARCHAR, note VARCHAR, score DOUBLE)")
    odd = 'Баку и Москва: "газ" \\ $1 \n Bakı və Moskva 🚢 '
    rows = [(f"r{i}", NOW + timedelta(minutes=i), i, None if i % 7 == 0 else (odd + str(i)) * (body_chars // 40),
             None if i % 5 == 0 else f"note {i} $2", i / 3) for i in range(300)]
    assert (sum(len(r[3] or "") for r in rows) >= BULKY_COLUMN_CHARS) == (body_chars > 40)
    insert(con, "t", rows, ["id", "seen", "n", "body", "note", "score"])
    assert con.execute("SELECT * FROM t ORDER BY n").fetchall() == rows
    insert(con, "t", [("x", NOW, 1, "body", None, 1.0)], ["id", "seen", "n", "body", "note", "score"])  # small
    assert con.execute("SELECT count(*) FROM t").fetchone() == (301,)
    with pytest.raises(duckdb.Error):
        insert(con, "t", [(f"y{i}", NOW, "not a number", "x" * 2000, None, 0.0) for i in range(200)],
               ["id", "seen", "n", "body", "note", "score"])


def test_a_local_warehouse_never_loads_the_postgresql_driver(tmp_path: Path) -> None:
    # psycopg is ~9 MB in every run's process; only a PostgreSQL state or catalog needs it
    out = subprocess.run([sys.executable, "-c", LOCAL_RUN, str(tmp_path / "w.duckdb")], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


KILLED_WRITER = """
import sys
from pathlib import Path
from tests.test_warehouse import NOW, batch
from tests.conftest import make_warehouse
wh = make_warehouse(Path(sys.argv[1]))
big = batch("big", int(sys.argv[2]))
print("ready", flush=True)
wh.runs.store_run(big, finished_at=NOW)
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_writer_killed_mid_store_leaves_no_partial_run_and_the_next_one_recovers(tmp_path: Path) -> None:
    path, n = tmp_path / "w.duckdb", 6000
    make_warehouse(path).runs.store_run(batch("r0", 2, start=n), finished_at=NOW)
    state = sqlite3.connect(tmp_path / "w.state.sqlite")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(n)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=ENV)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not state.execute("SELECT count(*) FROM runs WHERE state = 'claimed'").fetchone()[0]:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert proc.poll() is None, "the writer finished before it could be killed: make the batch bigger"
    proc.kill()
    proc.wait()
    wh = make_warehouse(path)  # the next open finds the dead run: its claims are released (or it is finished)
    articles = count(wh, "articles")
    assert articles in (2, n + 2)  # all or nothing, never part of the run
    assert state.execute("SELECT count(*) FROM stories").fetchone()[0] == articles
    assert state.execute("SELECT state FROM runs WHERE run_id = 'big'").fetchone()[0] in ("released", "stored")
    wh.runs.store_run(batch("again", n), finished_at=NOW)  # the next poll sees the released entries as new
    assert q(wh, "SELECT count(*), count(DISTINCT article_id) FROM articles") == [(n + 2, n + 2)]
    assert count(wh, "tags") == 3 * (n + 2)


def test_lake_version_is_recorded_and_newer_lakes_are_refused(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    assert q(wh, "SELECT value FROM meta WHERE key = 'lake_version'") == [("2",)]
    wh.lake.write(lambda con: con.execute("UPDATE meta SET value = '99' WHERE key = 'lake_version'"))
    wh.close()
    with pytest.raises(StorageError, match="newer newsmon"):
        make_warehouse(tmp_path / "w.duckdb")


HOLD = """
import duckdb, sys
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
con.execute("BEGIN TRANSACTION")
print(con.execute("SELECT count(*) FROM articles").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("SELECT count(*) FROM articles").fetchone()[0], flush=True)
con.execute("COMMIT")
print(con.execute("SELECT count(*) FROM articles").fetchone()[0], flush=True)
"""


def test_a_session_in_an_open_transaction_never_delays_a_store(tmp_path: Path) -> None:
    settings = WarehouseSettings(path=tmp_path / "w.duckdb")
    wh = open_warehouse(settings)
    wh.runs.store_run(batch("r1", 2), finished_at=NOW)
    sql = tmp_path / "attach.sql"
    sql.write_text(analyst_sql(location(settings)))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(sql)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "2"
    t = time.monotonic()
    for k in range(3):
        wh.runs.store_run(batch(f"r{k + 2}", 2, start=2 + 2 * k, alerts=(alert(2 + 2 * k),)), finished_at=NOW)
    stored_in = time.monotonic() - t
    holder.stdin.write("\n")
    holder.stdin.flush()
    inside, after = holder.stdout.readline().strip(), holder.stdout.readline().strip()
    holder.wait(timeout=30)
    assert (inside, after) == ("2", "8")  # its snapshot held, then it saw every run
    assert stored_in < 10 and len(wh.runs.pending_alerts(max_attempts=5)) == 3


def test_replace_verdicts_rewrites_tags_with_surface_text_and_rules_version(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(batch("r1", 2), finished_at=NOW)
    fresh = Verdict("a1", "az_ru", "2026.2", True, 9.0, ("az_ru",), (("az_ru", 9.0),),
                    (Evidence("az_ru", "азербайдж*", "azerbaijan", "title", 0, 13, "Азербайджаном", 2.0,
                              "Азербайджаном"),))
    wh.archive.replace_verdicts([fresh], now=NOW)
    assert wh.archive.stored_verdicts(["a1", "a0"]) == {("a1", "az_ru"): (True, 9.0, "2026.2"),
                                                        ("a0", "az_ru"): (True, 7.5, "2026.1")}
    assert q(wh, "SELECT label, rules_version, evidence[1].text FROM tags WHERE article_id = 'a1'") == [
        ("az_ru", "2026.2", "Азербайджаном")]  # the stale energy/cooperation rows went


def test_raw_pages_round_trip_and_canonical_duplicates_are_known(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    good = batch("r1", 2)
    wh.runs.store_run(replace(good, url_aliases=(Alias("dup", "a0", "https://m.news.example/0", "k"),)),
                      finished_at=NOW)
    page = RawPage("a0", "https://news.example/0", "text/html", "utf-8", "gzip", b"\x1f\x8b..", 300, NOW)
    wh.archive.store_raw_pages([page])
    wh.archive.store_raw_pages([replace(page, raw_bytes=301)])  # fetched again: replaces the older copy
    assert wh.runs.article_ids_by_url_key(["news.example/1", "zzz"]) == {"news.example/1": "a1"}
    assert q(wh, "SELECT alias_id, article_id FROM article_aliases") == [("dup", "a0")]
    (raw, art), = wh.archive.stored_raw_pages(since=None)
    assert raw.body == b"\x1f\x8b.." and raw.codec == "gzip" and raw.raw_bytes == 301
    assert art.article_id == "a0" and art.text.startswith("text 0")
    assert wh.archive.stored_raw_pages(since=NOW + timedelta(days=1)) == []
    assert [a.article_id for a in wh.archive.stored_articles(since=None, after="a0")] == ["a1"]


def test_upkeep_merges_small_files_and_keeps_every_row(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    for k in range(8):  # eight runs of 250 stories (over the inlining limit): each writes its own Parquet files
        wh.runs.store_run(batch(f"r{k}", 250, start=250 * k), finished_at=NOW)
    before = q(wh, "SELECT count(*), count(DISTINCT article_id), sum(length(text)) FROM articles")
    done = wh.upkeep(now=datetime.now(UTC) + timedelta(days=8))
    assert done.files_after < done.files_before and done.snapshots_expired > 0
    assert q(wh, "SELECT count(*), count(DISTINCT article_id), sum(length(text)) FROM articles") == before
    on_disk = list((tmp_path / "w.files").rglob("*.parquet"))
    assert len(on_disk) == done.files_after  # expired files are deleted, not just forgotten


def test_a_catalog_that_cannot_be_created_says_where_and_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="state database|cannot create"):
        make_warehouse(blocker / "w.duckdb")


def test_a_lake_opened_in_the_background_is_ready_at_its_first_use(tmp_path: Path) -> None:
    """While another writer holds the writer's turn, opening in the background returns at once; the first use
    waits for the open and then works."""
    settings = WarehouseSettings(path=tmp_path / "w.duckdb")
    open_warehouse(settings).close()  # the lake exists
    with writer_turn(location(settings)):
        wh = open_warehouse(settings, background=True)  # returns while the turn is held
        assert wh.lake._opening is not None and not wh.lake._opening.done()
    try:
        wh.runs.store_run(batch("r1", 2), finished_at=NOW)
        assert q(wh, "SELECT count(*) FROM articles") == [(2,)]
    finally:
        wh.close()


def test_a_background_open_of_a_damaged_lake_fails_at_its_first_use_and_closes_quietly(tmp_path: Path) -> None:
    settings = WarehouseSettings(path=tmp_path / "w.duckdb")
    open_warehouse(settings).close()
    Path(settings.catalog_target).write_bytes(b"not a catalog, cut short")
    wh = open_warehouse(settings, background=True)
    with pytest.raises(StorageError, match="not a database"):  # as a plain open says it
        wh.archive.feed_silence()
    with pytest.raises(StorageError):  # every use says so, not only the first
        wh.lake.read("SELECT 1")
    wh.close()
