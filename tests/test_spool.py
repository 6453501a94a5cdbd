from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from newsmon.records import (
    Alias,
    Article,
    ClusterRecord,
    Entry,
    EntryEdit,
    FeedResult,
    FeedSpec,
    RawPage,
    RunBatch,
    Verdict,
)
from warehouse import spool

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FEED = FeedSpec("Example", "https://news.example/rss")

text = st.text(max_size=40)
when = st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(timezone(
    timedelta(hours=4)))))


@given(title=text, body=text, published=when, summary=text, tags=st.lists(text, max_size=3),
       score=st.floats(allow_nan=False, allow_infinity=False))
def test_a_run_survives_the_spool_round_trip(title: str, body: str, published: datetime | None, summary: str,
                                             tags: list[str], score: float) -> None:
    entry = Entry(FEED.url, "k", "https://news.example/1", title, summary, published_at=published,
                  aliases=("guid:1", "https://news.example/1"))
    result = FeedResult(FEED, NOW, status=200, entries=(entry,), etag=None, bozo="warning", next_poll_at=published,
                        effective_url="https://news.example/feed")
    art = Article("a1", FEED.url, FEED.name, "k", "https://news.example/1", title, summary, body, NOW,
                  published_at=published, word_count=3, updated_at=published, guid="1", cluster_id="c1")
    verdict = Verdict("a1", "az_ru", "2026.1", True, score, tuple(tags), (("az_ru", score),),
                      ({"label": "az_ru", "term": title, "start": 0, "end": 4, "weight": 1.5, "text": body},))
    cluster = ClusterRecord("c1", "a1", title, NOW, NOW, signature=(1, 2, 3))
    batch = RunBatch("r1", "cfg", NOW, (result,), (art,), (verdict,), (), (("f", "u", "err"),), (cluster,),
                     aliases=(("guid:1", "a1"), ("https://news.example/1", "a1")),
                     edits=(EntryEdit("a0", title, summary, NOW),),
                     url_aliases=(Alias("a2", "a1", "https://m.news.example/1", "news.example/1"),))
    assert spool.decode_run(spool.encode_run(batch, NOW)) == (batch, NOW)


def test_entries_are_atomic_ordered_and_temp_files_are_ignored(tmp_path: Path) -> None:
    d = tmp_path / "w.duckdb.spool"
    first = spool.write_entry(d, "run", "r1", {"x": 1}, spooled_at=NOW, schema_version=2).path
    second = spool.write_entry(d, "alert_outcomes", "m1", {"x": 2}, spooled_at=NOW + timedelta(seconds=1),
                               schema_version=2).path
    leftover = d / f"{spool.TEMP_PREFIX}123-partial.json"
    leftover.write_text('{"format": 1, "kind": "run", "batch_id": "half')  # a writer killed mid-write
    assert spool.pending(d) == [first, second]
    entry = spool.read_entry(first)
    assert (entry.kind, entry.batch_id, entry.spooled_at, entry.payload) == ("run", "r1", NOW, {"x": 1})
    spool.clean_stale_temps(d)
    assert leftover.exists()  # could still be being written
    old = time.time() - 2 * spool.STALE_TEMP_S
    os.utime(leftover, (old, old))
    spool.clean_stale_temps(d)
    assert not leftover.exists()
    spool.remove([first, second])
    assert spool.pending(d) == []


@given(body=st.binary(max_size=64), charset=st.one_of(st.none(), text))
def test_kept_raw_pages_survive_the_spool_round_trip(body: bytes, charset: str | None) -> None:
    page = RawPage("a1", "https://news.example/1", "text/html", charset, "zstd", body, 3 * len(body), NOW)
    assert [spool.from_json(RawPage, p) for p in spool.to_json([page])] == [page]
