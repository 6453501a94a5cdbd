"""End to end: real local news site, real DuckDB file, real webhook receiver, the real Prefect flow."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest

from newsmon.alerts.render import md
from newsmon.config import Settings, load_settings
from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root
from tests.conftest import RouteServer, lake_query, write_config
from tests.test_alerts import body_of, mail_url, smtp  # noqa: F401  (the SMTP fixture)
from tests.test_clusters import WIRE

pytestmark = pytest.mark.usefixtures("prefect_harness")

POSITIVE = "azerbaijan-invites-russian-companies-green-energy"
HARD_NEGATIVES = ("socar-bp-sign-offshore-exploration-agreement", "gazprom-cnpc-agree-higher-power-of-siberia",
                  "baku-summons-russian-envoy-over-detentions", "azerbaidzhan-turciya-rasshirenie-tanap",
                  "khazri-wind-warning-baku")


def run(config: Path) -> dict:
    from flows.poll import poll_feeds

    return poll_feeds(config=str(config))


def rows(config: Path, sql: str) -> list[tuple]:
    return lake_query(config, sql)


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
    assert set(first["cpu_seconds"]) == set(first["seconds"]) and sum(first["cpu_seconds"].values()) > 0
    assert alerts_after_first == first["alerts_sent"] == len([m for m in first["matches"]]) >= 1
    assert any(POSITIVE in p["message"] for p in rx.received)
    # the second run: nothing new, nothing sent, no page fetched again; en.xml's <ttl>15</ttl> and the broken
    # feed's backoff keep them waiting, ru.xml answers the conditional request with 304
    assert second["new_articles"] == 0 and second["alerts_sent"] == 0 and len(rx.received) == alerts_after_first
    assert second["feeds_not_modified"] == 1 and second["feeds_waiting"] == ["en", "broken"]
    assert second["feeds_total"] == 3 and second["failed_feeds"] == []
    assert rows(cfg, "SELECT count(*) FROM articles")[0][0] == articles[0]
    assert {p for _, p, _ in site.requests if "/articles/" in p} == set()
    assert {s for _, p, s in site.requests if p.startswith("/feeds/") and "broken" not in p} == {304}
    assert [p for _, p, _ in site.requests if p.startswith("/feeds/")] == ["/feeds/ru.xml"]
    stored = rows(cfg, "SELECT title, text, language, extraction_status, published_at FROM articles "
                       f"WHERE url LIKE '%{POSITIVE}%'")[0]
    assert "Russian companies" in stored[1] and stored[2] == "en" and stored[3] == "ok" and stored[4] is not None


def test_a_failed_alert_is_sent_on_the_next_run_exactly_once(tmp_path: Path) -> None:
    with SiteServer(demo_site_root()) as site, WebhookReceiver(fail_first=100) as rx:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml"))], [rx.apprise_url()],
                           extra="retry_minutes = 0")
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
        (tmp_path / "wh" / "newsmon.state.sqlite").mkdir(parents=True)  # a folder where the file should be
        with pytest.raises(StorageError):
            run(cfg)
    assert len(rx.received) == 1
    assert "failed" in rx.received[0]["title"] and "newsmon.state.sqlite" in rx.received[0]["message"]


def rss(items: list[tuple[str, str, str, float]]) -> bytes:
    """An RSS feed of (title, link, summary, age in hours) items."""
    now = datetime.now(UTC)
    body = "".join(f"<item><title>{escape(t)}</title><link>{escape(link)}</link><guid>{escape(link)}</guid>"
                   f"<description>{escape(d)}</description>"
                   f"<pubDate>{format_datetime(now - timedelta(hours=age))}</pubDate></item>"
                   for t, link, d, age in items)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{body}</channel></rss>'.encode()


def page(title: str, text: str) -> bytes:
    paras = "".join(f"<p>{escape(s.strip())}.</p>" for s in text.split(". ") if s.strip())
    return (f"<html><head><title>{escape(title)}</title></head><body><nav><a href='/'>Home</a></nav><article>"
            f"<h1>{escape(title)}</h1>{paras}</article><footer>(c) outlet</footer></body></html>").encode()


def outlet(routes: RouteServer, name: str, items: list[tuple[str, str, str, float]]) -> str:
    """A news outlet on the route server: its feed and a page per item (page text = the item's summary)."""
    for title, path, text, _ in items:
        routes.add(path, body=page(title, text), content_type="text/html; charset=utf-8")
    return routes.add(f"/{name}.xml", body=rss([(t, routes.base_url + p, d, a) for t, p, d, a in items]),
                      content_type="application/rss+xml")


OLD = "Azerbaijan and Russia signed an energy road map on gas supplies and investment cooperation in Baku"


@pytest.mark.slow
def test_a_syndicated_copy_alerts_once_and_old_backlog_is_stored_silently(tmp_path: Path, routes: RouteServer,
                                                                            smtp: tuple) -> None:  # noqa: F811
    port, inbox = smtp
    edited = WIRE.replace("on Tuesday", "on Tuesday, officials said")
    trend = outlet(routes, "trend", [("Azerbaijan, Russia sign energy road map", "/trend/1", WIRE, 3),
                                     ("Ten days ago: energy road map signed", "/trend/old", f"{OLD}. " * 3, 240)])
    tass = outlet(routes, "tass", [("Baku and Moscow agree energy road map", "/tass/1", f"MOSCOW (TASS). {WIRE}", 2)])
    with WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [("Trend", trend), ("TASS", tass)], [rx.apprise_url(), mail_url(port)])
        first = run(cfg)
        report = outlet(routes, "report", [("Azerbaijan, Russia sign road map", "/report/1", edited, 1)])
        cfg = write_config(tmp_path, [("Trend", trend), ("TASS", tass), ("Report", report)],
                           [rx.apprise_url(), mail_url(port)])
        second = run(cfg)
    assert len(first["matches"]) == 3 and first["alerts_sent"] == 2  # one story x two channels
    assert len(rx.received) == 1 and len(inbox.messages) == 1
    assert "Outlets: Trend, TASS" in rx.received[0]["message"]
    assert "Outlets: Trend, TASS" in (body_of(inbox.messages[0]) or body_of(inbox.messages[0], "html"))
    assert len(second["matches"]) == 1 and second["alerts_sent"] == 0  # the third outlet's copy: silent
    stored = rows(cfg, "SELECT title, cluster_id IS NOT NULL FROM matches ORDER BY published_at")
    assert [t for t, _ in stored][0] == "Ten days ago: energy road map signed" and all(c for _, c in stored)
    assert rows(cfg, "SELECT count(*) FROM alert_ledger WHERE title LIKE 'Ten days ago%'") == [(0,)]
    clusters = rows(cfg, "SELECT articles, outlets FROM story_clusters ORDER BY articles DESC")
    assert clusters == [(3, ["Report", "TASS", "Trend"]), (1, ["Trend"])]


def test_a_hundred_matches_in_one_run_arrive_as_one_digest(tmp_path: Path, routes: RouteServer,
                                                            smtp: tuple) -> None:  # noqa: F811
    port, inbox = smtp
    devset = [json.loads(line) for line in (Path(__file__).parent / "data" / "tagger_devset.jsonl").open()]
    positives = [d for d in devset if d["match"] and d["lang"] == "en"]
    rng = random.Random(5)
    items = []
    for i in range(100):  # distinct stories: a positive dev-set story plus words no other story has
        d = positives[i % len(positives)]
        filler = " ".join(f"w{rng.randrange(10**6)}" for _ in range(150))
        items.append((f"{d['title']} ({i})", routes.base_url + f"/gone/{i}", f"{d['text']} {filler}", 1 + i / 10))
    feed = routes.add("/wire.xml", body=rss(items), content_type="application/rss+xml")  # pages 404: summaries
    with WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [("Wire", feed)], [rx.apprise_url(), mail_url(port)])
        summary = run(cfg)
    # per channel: one digest of the 100 stories, and no spike: a new install's backlog has no baseline
    assert len(summary["matches"]) == 100 and summary["alerts_sent"] == 200 and summary["alert_messages"] == 2
    assert len(rx.received) == 1 and len(inbox.messages) == 1
    digest = rx.received[0]
    assert digest["title"] == "newsmon: New matching stories (100 stories)"
    email = next(m for m in inbox.messages if "100 stories" in m["Subject"])
    chat, mail = digest["message"], body_of(email, "html")
    for title, *_ in items:
        assert f"[{md(title, 160)}]" in chat
        assert escape(title) in mail
    assert chat.count("\n- ") == 100 and mail.count("<li>") == 100
    assert rows(cfg, "SELECT count(DISTINCT delivery_key), count(*) FROM alerts WHERE kind = 'story' "
                     "AND status = 'sent'") == [(2, 200)]


FRESH = (
    ("Azerbaijan and Russia sign road map for gas transit cooperation",
     "Azerbaijan's energy minister and Russia's deputy energy minister signed a road map in Baku on gas transit "
     "cooperation between the two countries. SOCAR and Gazprom will exchange information on pipeline projects, "
     "and the intergovernmental commission will review progress on the agreement next spring."),
    ("Russian companies invited to invest in Azerbaijan's solar and wind power plants",
     "Azerbaijan invited Russian companies to invest in new solar and wind power plants on the Absheron "
     "peninsula, the deputy energy minister said after meeting officials of Russia's energy ministry in Moscow. "
     "Both sides agreed to share data on green energy projects and electricity grid links."),
    ("Lukoil and SOCAR agree joint oil exploration block in the Caspian",
     "Lukoil and SOCAR signed an agreement to explore an offshore oil block together in the Azerbaijani sector "
     "of the Caspian Sea. The Russian company will hold a half stake, and the partners plan investment in "
     "drilling rigs and a new oil pipeline connection to the Sangachal terminal near Baku."),
)

HOLDER = """
import duckdb, sys
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
if sys.argv[2] == "tx":
    con.execute("BEGIN TRANSACTION")
print(con.execute("SELECT count(*) FROM articles").fetchone()[0], flush=True)
for line in sys.stdin:
    if line.strip() == "commit" and sys.argv[2] == "tx":
        con.execute("COMMIT")
    print(con.execute("SELECT count(*) FROM articles").fetchone()[0], flush=True)
"""


def fresh_site(routes: RouteServer, upto: int, now: datetime) -> None:
    """A feed whose first `upto` items are the FRESH stories (one more each run), each with its page."""
    items = ""
    for i, (title, text) in enumerate(FRESH[:upto]):
        path = f"/news/fresh-{i}"
        page = f"<html lang='en'><head><title>{title}</title></head><body><article><h1>{title}</h1><p>{text}</p>"
        routes.add(path, body=(page + "</article></body></html>").encode(), content_type="text/html; charset=utf-8")
        items += (f"<item><title>{escape(title)}</title><link>{routes.base_url}{path}</link><guid>{path}</guid>"
                  f"<pubDate>{format_datetime(now - timedelta(minutes=10 * (upto - i)))}</pubDate></item>")
    routes.add("/rss", body=f"<rss version='2.0'><channel><title>F</title>{items}</channel></rss>".encode())


def three_runs(tmp_path: Path, routes: RouteServer, rx: WebhookReceiver, holders: bool
               ) -> tuple[list[dict], list[float], list[list[int]]]:
    import subprocess
    import sys
    import time

    from newsmon.cli import main

    tmp_path.mkdir()
    cfg = write_config(tmp_path, [("fresh", routes.base_url + "/rss")], [rx.apprise_url()])
    now = datetime.now(UTC)
    fresh_site(routes, 0, now)
    run(cfg)  # an empty first poll makes the warehouse
    attach = tmp_path / "attach.sql"
    out = tmp_path / "attach.out"
    with out.open("w") as f, pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", f)
        assert main(["sql", "--attach", "--config", str(cfg)]) == 0
    attach.write_text(out.read_text())
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(attach), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for mode in (("tx", "plain") if holders else ())]
    seen: list[list[int]] = [[int(p.stdout.readline())] for p in procs]  # type: ignore[union-attr]
    summaries, times = [], []
    for k in range(1, 4):
        fresh_site(routes, k, now)
        t = time.monotonic()
        summaries.append(run(cfg))
        times.append(time.monotonic() - t)
        for p, counts in zip(procs, seen, strict=True):
            p.stdin.write("\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
            counts.append(int(p.stdout.readline()))  # type: ignore[union-attr]
    for p, counts in zip(procs, seen, strict=True):
        p.stdin.write("commit\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        counts.append(int(p.stdout.readline()))  # type: ignore[union-attr]
        p.stdin.close()  # type: ignore[union-attr]
        p.wait(timeout=30)
    return summaries, times, seen


def test_analysts_holding_sessions_never_delay_a_run_nor_its_alerts(tmp_path: Path, routes: RouteServer) -> None:
    """Two sessions on the lake (one inside an open transaction) stay open across three runs that each bring a
    new matching story: every run stores and alerts its story at once; the plain session sees each run's rows
    on its next query, the one in a transaction keeps its snapshot until it ends; nothing lost or doubled."""
    with WebhookReceiver() as rx:
        held, held_s, seen = three_runs(tmp_path / "held", routes, rx, holders=True)
        held_alerts = len(rx.received)
    with WebhookReceiver() as rx2:
        alone, alone_s, _ = three_runs(tmp_path / "alone", routes, rx2, holders=False)
    for s in held:
        assert s["new_articles"] == 1 and len(s["matches"]) == 1
        assert s["alerts_queued"] == s["alerts_sent"] == 1 and s["storage"] == "stored 1 articles"
    assert held_alerts == 3 and len({p["idempotency_key"] for p in rx.received}) == 3
    tx_counts, plain_counts = seen
    assert plain_counts == [0, 1, 2, 3, 3]  # each run's story on the next query
    assert tx_counts == [0, 0, 0, 0, 3]  # a stable snapshot, then everything once the transaction ends
    cfg = tmp_path / "held" / "newsmon.toml"
    assert rows(cfg, "SELECT count(*), count(DISTINCT article_id) FROM articles") == [(3, 3)]
    assert rows(cfg, "SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM alerts") == [(3, 3)]
    assert [s["alerts_sent"] for s in alone] == [1, 1, 1]
    assert max(held_s) < 3 * max(alone_s) + 2.0, (held_s, alone_s)  # within noise of undisturbed runs


STORY = """<!DOCTYPE html><html lang="en"><head><title>{title}</title>
<link rel="canonical" href="{canonical}"></head><body><article><h1>{title}</h1>
<p>Azerbaijan's state oil company SOCAR and Russia's Gazprom signed a contract in Baku on Tuesday for the supply
of up to two billion cubic metres of Russian gas to Azerbaijan next winter, the companies said.</p>
<p>The agreement was signed by SOCAR president Rovshan Najaf and Gazprom chief executive Alexei Miller after talks
on expanding energy cooperation between Moscow and Baku, including a swap of gas deliveries to Iran.</p>
</article></body></html>"""


def test_two_urls_with_one_canonical_store_one_article_and_alert_once(tmp_path: Path, routes: RouteServer) -> None:
    canonical = routes.base_url + "/news/socar-gazprom"
    title = "SOCAR and Gazprom sign winter gas supply contract"
    page = STORY.format(title=title, canonical=canonical).encode()
    routes.add("/news/socar-gazprom", body=page, content_type="text/html; charset=utf-8")
    routes.add("/amp/socar-gazprom", body=page, content_type="text/html; charset=utf-8")
    # titles differ (as an AMP copy's often does), so only the pages' canonical URL says it is one story
    items = "".join(f"<item><title>{title}{suffix}</title><link>{routes.base_url}{path}</link><guid>{path}</guid>"
                    "<pubDate>Tue, 03 Mar 2026 10:00:00 GMT</pubDate></item>"
                    for path, suffix in (("/amp/socar-gazprom", " (AMP)"), ("/news/socar-gazprom", "")))
    routes.add("/rss", body=f"<rss version='2.0'><channel><title>T</title>{items}</channel></rss>".encode())
    with WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [("t", routes.base_url + "/rss")], [rx.apprise_url()],
                           extra="[extraction]\nkeep_raw_pages = true\n")
        settings = load_settings(cfg)
        from flows.poll import run_pipeline

        first = run_pipeline(replace_window(settings))
        routes.hits.clear()
        second = run_pipeline(replace_window(settings))
        received = len(rx.received)
    assert first["new_articles"] == 1 and len(first["matches"]) == 1 and first["alerts_queued"] == 1
    assert received == 1 and second["new_articles"] == 0
    assert [h for h in routes.hits if "socar-gazprom" in h] == []  # the alias is remembered, not refetched
    assert rows(cfg, "SELECT count(*), min(url_key) FROM articles") == [(1, canonical.split("://")[1])]
    assert rows(cfg, "SELECT count(*) FROM article_aliases") == [(1,)]
    raw = rows(cfg, "SELECT codec, raw_bytes, octet_length(body) < raw_bytes FROM raw_pages")
    assert raw == [("zstd", len(page), True)]
    evidence = rows(cfg, "SELECT list(DISTINCT e.text) FROM tags, unnest(evidence) AS u(e)")[0][0]
    assert "SOCAR" in evidence and not any("*" in t for t in evidence)


def replace_window(settings: Settings) -> Settings:
    """The fixed 2026 story date stays inside the alert window whenever the test runs."""
    return replace(settings, alerts=replace(settings.alerts, window_hours=24 * 365 * 10))
