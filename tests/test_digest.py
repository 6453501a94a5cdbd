from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsmon.alerts.clusters import assign_clusters
from newsmon.alerts.digest import build_digest
from newsmon.demo.receiver import WebhookReceiver
from newsmon.records import Article, Evidence, FeedResult, FeedSpec, RunBatch, Verdict
from tests.conftest import make_warehouse, write_config
from tests.test_alerts import body_of, mail_url, smtp  # noqa: F401  (the SMTP fixture)
from tests.test_clusters import WIRE
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]


def fill(wh: Warehouse, now: datetime) -> None:
    """A wire story carried by two outlets, one other match, and a 10-day-old match outside the digest."""
    def art(aid: str, feed: str, title: str, text: str, age_h: float) -> Article:
        return Article(aid, f"https://{feed.lower()}.example/rss", feed, aid, f"https://{feed.lower()}.example/{aid}",
                       title, "", text, now, published_at=now - timedelta(hours=age_h))
    arts = [art("w1", "Trend", "Azerbaijan, Russia sign <b>energy</b> road map", WIRE, 5),
            art("w2", "TASS", "Baku and Moscow agree energy road map", f"MOSCOW (TASS) - {WIRE}", 4),
            art("g1", "Report", "Gas swap talks continue", "Talks on a gas swap between Azerbaijan and Russia "
                "continued in Moscow, officials said, with transit volumes and prices still open.", 2),
            art("old", "Report", "Old news", "An old story about Baku and Moscow that matched ten days ago.", 240)]
    ev = (Evidence("energy", "road map", "c", "body", 0, 8, "signed a <road map> on energy", 1.0),)
    verdicts = [Verdict(a.article_id, "az_ru", "1", True, 8.0 - i, ("az_ru", "energy"),
                        (("az_ru", 5.0), ("energy", 3.0)), ev) for i, a in enumerate(arts)]
    arts2, clusters = assign_clusters(arts, [], threshold=0.45, now=now)
    feed = FeedResult(FeedSpec("Trend", "https://trend.example/rss"), now, status=200)
    wh.runs.store_run(RunBatch("r1", "t", now, (feed,), tuple(arts2), tuple(verdicts), (), clusters=tuple(clusters)),
                      finished_at=now)


def test_digest_groups_matches_by_cluster_with_outlets_scores_and_snippets(tmp_path: Path) -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    wh = make_warehouse(tmp_path / "w.duckdb")
    fill(wh, now)
    digest = build_digest(wh, since=timedelta(hours=24), now=now)
    assert [(s.title, s.outlets) for s in digest.stories] == [
        ("Azerbaijan, Russia sign <b>energy</b> road map", ("Trend", "TASS")), ("Gas swap talks continue", ("Report",))]
    text = digest.text()
    assert "1. Azerbaijan, Russia sign <b>energy</b> road map  [score 8.0]" in text and "Trend, TASS" in text
    page = digest.html().body
    assert "&lt;b&gt;energy&lt;/b&gt;" in page and "signed a &lt;road map&gt; on energy" in page
    assert "Old news" not in page and page.count("<li>") == 2
    chat = digest.markdown().body
    assert "Trend, TASS" in chat and "score 8.0" in chat and "\\<b\\>energy" in chat


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "newsmon.cli", "digest", "--config", str(cfg), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.slow
def test_digest_command_prints_and_sends_once_per_channel(tmp_path: Path, smtp: tuple) -> None:  # noqa: F811
    port, inbox = smtp
    with WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [], [rx.apprise_url(), mail_url(port)])
        wh = make_warehouse(tmp_path / "wh" / "newsmon.duckdb")
        fill(wh, datetime.now(UTC))
        wh.close()
        shown = cli(cfg, "--since", "24h")
        assert shown.returncode == 0, shown.stderr
        assert "Trend, TASS" in shown.stdout and "Gas swap" in shown.stdout and "Old news" not in shown.stdout
        sent = cli(cfg, "--since", "24h", "--send")
        again = cli(cfg, "--since", "24h", "--send")
    assert sent.returncode == 0 and "2 digest(s) queued, 2 sent" in sent.stdout, sent.stdout + sent.stderr
    assert "0 digest(s) queued, 0 sent" in again.stdout
    assert len(rx.received) == 1 and len(inbox.messages) == 1
    assert "Trend, TASS" in rx.received[0]["message"] and rx.received[0]["idempotency_key"]
    html = body_of(inbox.messages[0], "html")
    assert "<ol>" in html and "&lt;b&gt;energy&lt;/b&gt;" in html and "Gas swap talks continue" in html
    assert cli(cfg, "--since", "soon").returncode == 2
