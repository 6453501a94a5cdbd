"""End to end: real local news site, real DuckDB file, real webhook receiver, the real Prefect flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsmon.config import load_settings
from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root
from tests.conftest import write_config
from warehouse import open_warehouse

pytestmark = pytest.mark.usefixtures("prefect_harness")

POSITIVE = "azerbaijan-invites-russian-companies-green-energy"
HARD_NEGATIVES = ("socar-bp-sign-offshore-exploration-agreement", "gazprom-cnpc-agree-higher-power-of-siberia",
                  "baku-summons-russian-envoy-over-detentions", "azerbaidzhan-turciya-rasshirenie-tanap",
                  "khazri-wind-warning-baku")


def run(config: Path) -> dict:
    from flows.poll import poll_feeds

    return poll_feeds(config=str(config))


def rows(config: Path, sql: str) -> list[tuple]:
    s = load_settings(config)
    return open_warehouse(s.warehouse.path, read_only=True).query(sql)[1]


def test_two_runs_store_once_match_and_alert_once(tmp_path: Path) -> None:
    with SiteServer(demo_site_root()) as site, WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml")), ("ru", site.url("/feeds/ru.xml")),
                                      ("broken", site.url("/feeds/broken.xml"))], [rx.apprise_url()])
        first = run(cfg)
        articles = rows(cfg, "SELECT count(*), count(DISTINCT url) FROM articles")[0]
        matches = [r[0] for r in rows(cfg, "SELECT url FROM matches")]
        alerts_after_first = len(rx.received)
        site.requests.clear()
        second = run(cfg)

    assert [f["name"] for f in first["failed_feeds"]] == ["broken"]
    assert "broken.xml" in first["failed_feeds"][0]["error"]
    assert articles[0] == articles[1] == first["new_articles"] >= 12
    assert any(POSITIVE in u for u in matches)
    assert not any(neg in u for u in matches for neg in HARD_NEGATIVES)
    assert alerts_after_first == first["alerts_sent"] == len([m for m in first["matches"]]) >= 1
    assert any(POSITIVE in p["message"] for p in rx.received)
    # the second run: nothing new, nothing sent, every feed answered 304, no page fetched again
    assert second["new_articles"] == 0 and second["alerts_sent"] == 0 and len(rx.received) == alerts_after_first
    assert second["feeds_not_modified"] == 2
    assert rows(cfg, "SELECT count(*) FROM articles")[0][0] == articles[0]
    assert {p for _, p, _ in site.requests if "/articles/" in p} == set()
    assert {s for _, p, s in site.requests if p.startswith("/feeds/") and "broken" not in p} == {304}
    stored = rows(cfg, "SELECT title, text, language, extraction_status, published_at FROM articles "
                       f"WHERE url LIKE '%{POSITIVE}%'")[0]
    assert "Russian companies" in stored[1] and stored[2] == "en" and stored[3] == "ok" and stored[4] is not None


def test_a_failed_alert_is_sent_on_the_next_run_exactly_once(tmp_path: Path) -> None:
    with SiteServer(demo_site_root()) as site, WebhookReceiver(fail_first=100) as rx:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml"))], [rx.apprise_url()])
        first = run(cfg)
        assert first["alerts_sent"] == 0 and first["alert_errors"] and rx.received == []
        rx.fail_first = 0
        second = run(cfg)
        third = run(cfg)
    assert second["alerts_sent"] == first["alerts_queued"] == len(rx.received) >= 1
    assert third["alerts_sent"] == 0
    assert rows(cfg, "SELECT DISTINCT status FROM alerts") == [("sent",)]


def test_private_addresses_are_refused_by_default(tmp_path: Path) -> None:
    with SiteServer(demo_site_root()) as site:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml"))])
        cfg.write_text(cfg.read_text().replace("allow_private_networks = true", "allow_private_networks = false"))
        summary = run(cfg)
        assert site.requests == []
    assert "non-public address" in summary["failed_feeds"][0]["error"]
    assert rows(cfg, "SELECT last_error LIKE '%refused before any request%' FROM feed_health") == [(True,)]


def test_run_publishes_a_markdown_artifact(tmp_path: Path) -> None:
    from prefect.artifacts import Artifact

    with SiteServer(demo_site_root()) as site:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml")), ("gone", site.url("/feeds/nope.xml"))])
        summary = run(cfg)
    art = Artifact.get("poll-summary")
    assert art is not None and art.type == "markdown"
    md = str(art.data)
    assert f"| new articles | {summary['new_articles']} |" in md
    assert "| failed | 1 |" in md and "HTTP 404" in md


def test_a_failing_run_alerts_through_the_on_failure_hook(tmp_path: Path) -> None:
    from newsmon.errors import StorageError

    with WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [("x", "http://127.0.0.1:9/feed")], [rx.apprise_url()])
        (tmp_path / "wh" / "newsmon.duckdb").mkdir(parents=True)  # a folder where the file should be
        with pytest.raises(StorageError):
            run(cfg)
    assert len(rx.received) == 1
    assert "failed" in rx.received[0]["title"] and "newsmon.duckdb" in rx.received[0]["message"]
