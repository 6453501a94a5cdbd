from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from extractors.feeds import entry_key, fingerprint, normalize_link, parse_feed, strip_html
from newsmon.errors import FeedParseError

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
