"""Feed list management: OPML import/export, feed discovery, and the `newsmon feeds` commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from extractors.discovery import Discovered, discover_feeds, feed_links
from extractors.opml import parse_opml, to_opml
from newsmon.cli import main
from newsmon.config import HttpSettings, load_settings
from newsmon.errors import ConfigError, FeedParseError
from newsmon.records import FeedResult, FeedSpec, RunBatch
from tests.conftest import RouteServer, write_config
from warehouse import open_warehouse

OPML = b"""<?xml version="1.0"?>
<opml version="1.0"><head><title>My reader</title></head><body>
  <outline text="Caucasus">
    <outline text="JAMnews" title="JAMnews" type="rss" xmlUrl="https://jam-news.net/feed/" htmlUrl="https://jam-news.net"/>
    <outline text="OC Media" type="rss" xmlURL="https://oc-media.org/feed/"/>
  </outline>
  <outline text="Trend &amp; co" type="rss" xmlUrl="https://en.trend.az/feeds/index.rss"/>
  <outline text="dup" type="rss" xmlUrl="https://jam-news.net/feed/"/>
  <outline text="not a feed" xmlUrl="javascript:alert(1)"/>
</body></opml>"""
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Caspian "Ledger"</title><item><title>A</title>' \
      b"<link>https://x.example/a</link></item></channel></rss>"
OPEN = HttpSettings(allow_private_networks=True, timeout_s=3, per_host_delay_s=0, jitter_s=0)


def test_opml_import_flattens_folders_skips_duplicates_and_non_http() -> None:
    feeds = parse_opml(OPML)
    assert feeds == [FeedSpec("JAMnews", "https://jam-news.net/feed/"), FeedSpec("OC Media", "https://oc-media.org/feed/"),
                     FeedSpec("Trend & co", "https://en.trend.az/feeds/index.rss")]


def test_opml_export_round_trips_names_with_markup_characters() -> None:
    feeds = [FeedSpec('A "quoted" <name> & more', "https://a.example/rss?x=1&y=2"), FeedSpec("Б", "https://b.example/")]
    assert parse_opml(to_opml(feeds).encode()) == feeds


@pytest.mark.parametrize("data, message", [(b"<html><body/></html>", "not <opml>"), (b"not xml", "not an OPML"),
                                           (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><opml/>', "entity")])
def test_bad_opml_is_refused_with_advice(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_opml(data, "reader.opml")


PAGE = b"""<html><head><base href="/news/">
<link rel="stylesheet" href="/s.css"><link rel="alternate" type="text/html" hreflang="ru" href="/ru/">
<link rel="alternate" type="application/rss+xml" title="Missing" href="missing.xml">
<link rel="Alternate" type="application/rss+xml" title="All news" href="/feeds/all.xml">
<link rel="alternate" type="application/atom+xml" href="/feeds/all.xml"></head><body></body></html>"""


def test_feed_links_reads_alternate_feeds_in_page_order_against_base() -> None:
    assert feed_links(PAGE, "https://site.example/") == [("Missing", "https://site.example/news/missing.xml"),
                                                         ("All news", "https://site.example/feeds/all.xml")]


def test_discovery_lists_several_announced_feeds_and_with_every_feed_skips_those_that_do_not_parse(
        routes: RouteServer) -> None:
    routes.add("/", body=PAGE.replace(b'<base href="/news/">', b""), content_type="text/html")
    feed = routes.add("/feeds/all.xml", body=RSS)
    missing = routes.base_url + "/missing.xml"
    assert discover_feeds(routes.base_url + "/", OPEN) == Discovered((), (("Missing", missing), ("All news", feed)))
    found = discover_feeds(routes.base_url + "/", OPEN, every_feed=True)
    assert found.feeds == (FeedSpec('Caspian "Ledger"', feed),) and found.failed[0].startswith(f"{missing} (")
    assert discover_feeds(feed, OPEN) == Discovered((FeedSpec('Caspian "Ledger"', feed),))  # a feed URL as is
    routes.add("/bare", body=b"<html><head></head></html>", content_type="text/html")
    with pytest.raises(FeedParseError, match="announces no"):
        discover_feeds(routes.base_url + "/bare", OPEN)


def test_cli_feeds_add_import_export(routes: RouteServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes.add("/", body=PAGE.replace(b'<base href="/news/">', b""), content_type="text/html")
    feed = routes.add("/feeds/all.xml", body=RSS)
    cfg = write_config(tmp_path, [("Old", "https://old.example/rss")])
    assert main(["feeds", "add", routes.base_url + "/", "--all", "--config", str(cfg)]) == 0
    assert main(["feeds", "add", feed, "--config", str(cfg)]) == 0
    assert "already in" in capsys.readouterr().out
    opml = tmp_path / "reader.opml"
    opml.write_bytes(OPML)
    assert main(["feeds", "import", str(opml), "--config", str(cfg)]) == 0
    assert "imported 3 new feed(s) of 5 feed outline(s)" in capsys.readouterr().out
    assert main(["feeds", "import", str(opml), "--config", str(cfg)]) == 0
    assert "imported 0 new" in capsys.readouterr().out
    names = [f.name for f in load_settings(cfg).feeds]
    assert names == ["Old", 'Caspian "Ledger"', "JAMnews", "OC Media", "Trend & co"]
    assert main(["feeds", "export", "--config", str(cfg)]) == 0
    assert parse_opml(capsys.readouterr().out.encode()) == list(load_settings(cfg).feeds)
    assert main(["feeds", "import", str(tmp_path / "none.opml"), "--config", str(cfg)]) == 2


def test_cli_feeds_table_shows_failures_backoff_and_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal, so rich does not abbreviate cells
    cfg = write_config(tmp_path, [])
    wh = open_warehouse(load_settings(cfg).warehouse)
    now = datetime.now(UTC)
    results = (FeedResult(FeedSpec("Healthy", "https://h.example/rss"), now, status=200),
               FeedResult(FeedSpec("Limited", "https://l.example/rss"), now, status=429, error="HTTP 429 slow down",
                          next_poll_at=now + timedelta(hours=1)),
               FeedResult(FeedSpec("Day.az", "https://d.example/rss"), now, status=410, error="HTTP 410 Gone"))
    wh.runs.store_run(RunBatch("r", "t", now, results, (), (), ()), finished_at=now)
    assert main(["feeds", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "example" in ln or "Healthy" in ln or "Limited" in ln or "Day.az" in ln]
    assert "GONE" in lines[0] and "Day.az" in lines[0]  # gone feeds first
    assert "Limited" in out and "429" in out and f"{(now + timedelta(hours=1)):%Y-%m-%d %H:%M}" in out
    assert "(3 rows)" in out
