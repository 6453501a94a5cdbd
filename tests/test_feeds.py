from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from extractors.feeds import entry_key, fingerprint, normalize_link, parse_feed, strip_html
from extractors.identity import Resolution, all_aliases, resolve_entries
from extractors.pages import build_article
from extractors.summary import from_feed
from newsmon.errors import FeedParseError
from newsmon.records import FeedResult, FeedSpec, RunBatch
from tests.conftest import make_warehouse

FEEDS = Path(__file__).parent / "data" / "feeds"

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>https://news.example/</link>
<item><title>Baku &amp; Moscow <b>talk</b></title><link>/a/1?utm_source=rss#top</link>
<guid isPermaLink="false">id-1</guid><pubDate>Tue, 03 Jun 2025 09:00:00 +0400</pubDate>
<description>&lt;p&gt;Energy &lt;em&gt;talks&lt;/em&gt;&lt;/p&gt;</description></item>
<item><title>No link</title><guid>urn:x:2</guid></item>
</channel></rss>"""


def test_entries_get_absolute_normalised_links_plain_text_and_utc_dates() -> None:
    entries, bozo = parse_feed(RSS, "https://news.example/rss", base_url="https://news.example/rss")
    assert bozo is None
    first, second = entries
    assert first.link == "https://news.example/a/1?utm_source=rss#top"
    assert first.key == "guid:news.example/id-1"  # a GUID that is not a URI is scoped to the feed's host
    assert first.aliases[:2] == ("guid:news.example/id-1", "https://news.example/a/1")
    assert first.title == "Baku & Moscow talk"
    assert first.summary == "Energy talks"
    assert first.published_at is not None and first.published_at.isoformat() == "2025-06-03T05:00:00+00:00"
    assert second.key == "guid:urn:x:2"
    assert first.article_id != second.article_id


def test_normalize_link_drops_tracking_fragment_default_port_and_case() -> None:
    assert normalize_link("HTTPS://News.Example:443/a?id=3&utm_medium=x&fbclid=1#c") == "https://news.example/a?id=3"
    assert normalize_link("http://n.example:8080") == "http://n.example:8080/"


def test_entry_key_prefers_guid_then_link_then_title_and_date() -> None:
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert entry_key("urn:x:1", "https://n.example/a", "T", when) == "guid:urn:x:1"
    assert entry_key(None, "https://n.example/a?utm_source=x", "T", when) == "https://n.example/a"
    assert entry_key(None, "", "Title", when) == fingerprint("Title", when)
    assert fingerprint("A  title", when) == fingerprint("a title", when.replace(second=59))
    assert entry_key(None, "", "Title", None) is None and entry_key(None, "", "", None) is None


def test_a_front_page_link_never_identifies_a_story() -> None:
    assert entry_key(None, "https://n.example/", "", None) is None
    assert entry_key(None, "https://n.example/?p=12", "", None) == "https://n.example/?p=12"


def test_windows_1251_feed_decodes() -> None:
    body = (FEEDS / "encoding_WINDOWS-1251.xml").read_bytes()
    entries, _ = parse_feed(body, "https://ibash.example/rss")
    assert len(entries) == 50
    assert entries[0].title.startswith("Цитата")


def test_html_page_is_refused_with_advice() -> None:
    with pytest.raises(FeedParseError, match="HTML page, not a feed"):
        parse_feed(b"<!DOCTYPE html><html><body><p>hi</p></body></html>", "https://x.example/")


def test_garbage_and_empty_bodies_are_refused() -> None:
    with pytest.raises(FeedParseError, match="empty body"):
        parse_feed(b"", "https://x.example/rss")
    with pytest.raises(FeedParseError, match="not a readable RSS/Atom feed"):
        parse_feed(b"\x00\x01 not xml at all", "https://x.example/rss")


def test_recoverable_bozo_feed_keeps_its_entries() -> None:
    body = RSS.replace(b"<title>T</title>", b"<title>T &nbsp; </title>")
    entries, bozo = parse_feed(body, "https://news.example/rss")
    assert len(entries) == 2 and bozo


def test_strip_html() -> None:
    assert strip_html("<p>A &amp; <script>x</script>B</p>") == "A & x B"


# -- identity across polls: rotating GUIDs, changing links, edits --------------------------------------

FEED_URL = "https://news.example/rss"
WHEN = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def doc(*items: tuple[str | None, str, str, str]) -> bytes:
    """RSS with (guid, link, title, summary) items, all published at WHEN."""
    parts = []
    for guid, link, title, summary in items:
        g = f"<guid isPermaLink=\"false\">{guid}</guid>" if guid else ""
        parts.append(f"<item><title>{title}</title><link>{link}</link>{g}<description>{summary}</description>"
                     "<pubDate>Fri, 27 Nov 2026 09:00:00 GMT</pubDate></item>")
    return f'<rss version="2.0"><channel><title>N</title>{"".join(parts)}</channel></rss>'.encode()


def poll(body: bytes, feed_url: str = FEED_URL) -> FeedResult:
    entries, _ = parse_feed(body, feed_url)
    return FeedResult(FeedSpec("n", feed_url), WHEN, status=200, entries=tuple(entries))


class Store:
    """The warehouse's part in identity, over a real warehouse (state database + DuckLake)."""

    def __init__(self, path: Path) -> None:
        self.wh = make_warehouse(path)
        self.runs = 0

    def run(self, *results: FeedResult, now: datetime = WHEN) -> Resolution:
        found = resolve_entries(results, self.wh.runs.known_entries(all_aliases(results)), now=now)
        self.runs += 1
        arts = tuple(build_article(e, from_feed(e, "test"), "n", now) for e in found.new)
        self.wh.runs.store_run(RunBatch(f"r{self.runs}", "t", now, results, arts, (), (),
                                        aliases=tuple(found.aliases), edits=tuple(found.edits)), finished_at=now)
        return found

    def titles(self) -> list[str]:
        return [r[0] for r in self.wh.lake.query("SELECT title FROM articles ORDER BY title")[1]]


def test_a_feed_that_rotates_guids_neither_duplicates_nor_loses_stories(tmp_path: Path) -> None:
    s = Store(tmp_path / "w.duckdb")
    assert len(s.run(poll(doc(("r1", "https://news.example/a", "A", "a"),
                              ("r2", "https://news.example/b", "B", "b")))).new) == 2
    # every GUID changed (a CMS that regenerates them on each render); one story is new
    again = s.run(poll(doc(("x1", "https://news.example/a", "A", "a"), ("x2", "https://news.example/b", "B", "b"),
                           ("x3", "https://news.example/c", "C", "c"))))
    assert [e.title for e in again.new] == ["C"] and again.repeats == 2 and again.edits == []
    assert s.titles() == ["A", "B", "C"]


def test_a_feed_that_changes_links_neither_duplicates_nor_loses_stories(tmp_path: Path) -> None:
    s = Store(tmp_path / "w.duckdb")
    s.run(poll(doc(("urn:n:1", "https://news.example/a-draft-slug", "A", "a"),
                   ("urn:n:2", "https://news.example/b", "B", "b"))))
    # the slug was fixed and a tracking parameter added; the GUID is stable
    again = s.run(poll(doc(("urn:n:1", "https://news.example/a-final-slug?utm_source=rss", "A", "a"),
                           ("urn:n:2", "https://news.example/b", "B", "b"),
                           ("urn:n:3", "https://news.example/a-draft-slug-2", "D", "d"))))
    assert [e.title for e in again.new] == ["D"] and again.repeats == 2
    assert s.titles() == ["A", "B", "D"]


def test_when_guid_and_link_both_change_the_title_date_fingerprint_catches_it(tmp_path: Path) -> None:
    s = Store(tmp_path / "w.duckdb")
    s.run(poll(doc(("1", "https://news.example/a", "Baku and Moscow sign a deal", "x"))))
    again = s.run(poll(doc(("2", "https://m.news.example/amp/a", "Baku and Moscow sign a deal", "x"))))
    assert again.new == [] and again.repeats == 1


def test_distinct_stories_sharing_a_front_page_link_or_a_guid_are_kept_apart(tmp_path: Path) -> None:
    s = Store(tmp_path / "w.duckdb")
    found = s.run(poll(doc(("1", "https://news.example/", "A", "a"), ("2", "https://news.example/", "B", "b"),
                           ("7", "https://news.example/x", "X", "x"), ("7", "https://news.example/y", "Y", "y"))))
    assert len(found.new) == 4
    # another outlet's GUID "1" is not this outlet's story "1"
    other = s.run(poll(doc(("1", "https://other.example/z", "Z", "z")), "https://other.example/rss"))
    assert len(other.new) == 1 and s.titles() == ["A", "B", "X", "Y", "Z"]


def test_an_edited_entry_updates_in_place_keeps_its_dates_and_does_not_come_back_as_new(tmp_path: Path) -> None:
    s = Store(tmp_path / "w.duckdb")
    s.run(poll(doc(("urn:n:1", "https://news.example/a", "Draft title", "first"))))
    later = WHEN + timedelta(hours=2)
    found = s.run(poll(doc(("urn:n:1", "https://news.example/a", "Final title", "second"))), now=later)
    assert found.new == [] and [e.title for e in found.edits] == ["Final title"]
    row = s.wh.lake.query("SELECT title, summary, first_seen_at, published_at, updated_at, edits FROM articles")[1]
    assert row == [("Final title", "second", WHEN, WHEN, later, 1)]
    # the same feed again, and the story through a second feed with its own title: no new edit, no new story
    assert s.run(poll(doc(("urn:n:1", "https://news.example/a", "Final title", "second")))).edits == []
    other = s.run(poll(doc(("urn:n:1", "https://news.example/a", "Other title", "z")), "https://news.example/top"))
    assert other.new == [] and other.edits == []


def v1_file(path: Path) -> duckdb.DuckDBPyConnection:
    """A single-file warehouse as schema version 1 made it (its meta and articles tables), open for the test
    to add old rows. DuckDB 1.5.5 writes it; the migration reads it with the side-installed DuckDB 2.x."""
    con = duckdb.connect(str(path))
    con.execute("""
        CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
        CREATE TABLE articles (
            article_id VARCHAR PRIMARY KEY, url VARCHAR NOT NULL, canonical_url VARCHAR, feed_url VARCHAR NOT NULL,
            feed_name VARCHAR, entry_key VARCHAR NOT NULL, title VARCHAR, summary VARCHAR, text VARCHAR,
            author VARCHAR, site_name VARCHAR, language VARCHAR, published_at TIMESTAMPTZ,
            fetched_at TIMESTAMPTZ NOT NULL, word_count INTEGER, extraction_status VARCHAR,
            extraction_note VARCHAR, content_hash VARCHAR, run_id VARCHAR);
        INSERT INTO meta VALUES ('schema_version', '1');""")
    return con


def test_a_v1_warehouse_is_migrated_with_its_keys_as_aliases(tmp_path: Path) -> None:

    path = tmp_path / "old.duckdb"
    con = v1_file(path)
    con.execute("INSERT INTO articles (article_id, url, feed_url, entry_key, title, summary, fetched_at) VALUES "
                "('old', 'https://news.example/a', ?, 'https://news.example/a', 'A', 'a', ?)", [FEED_URL, WHEN])
    con.close()
    s = Store(path)
    assert s.wh.lake.query("SELECT first_seen_at FROM articles")[1] == [(WHEN,)]
    # a GUID-keyed poll of the same story finds it through the old link key
    assert s.run(poll(doc(("urn:n:1", "https://news.example/a", "A", "a")))).new == []


def test_an_empty_feed_is_kept_when_whole_and_refused_when_truncated() -> None:
    entity = b'<rss version="2.0"><channel><title>caf&eacute;</title></channel></rss>'
    entries, bozo = parse_feed(entity, "https://x.example/rss")
    assert entries == [] and bozo and "undefined entity" in bozo
    with pytest.raises(FeedParseError, match="not a readable RSS/Atom feed"):
        parse_feed(b'<rss version="2.0"><channel><title>Cut off', "https://x.example/rss")
