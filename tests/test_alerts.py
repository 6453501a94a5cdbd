from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import Message as EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from newsmon.alerts.deliver import deliver_pending
from newsmon.alerts.notify import AppriseNotifier, keyed_url
from newsmon.alerts.policy import Channel, plan_alerts, plan_deliveries, redact_url, route_channels
from newsmon.alerts.render import clean, md, render_alert, render_digest, safe_link
from newsmon.config import AlertSettings, Route
from newsmon.demo.receiver import WebhookReceiver
from newsmon.errors import AlertError
from newsmon.records import AlertRecord, Article, ClusterRecord, Evidence, FeedResult, FeedSpec, RunBatch, Verdict
from tests.conftest import make_warehouse
from warehouse import Warehouse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)
HOSTILE = 'Baku <script>alert(1)</script> **bold** [click](javascript:alert(1)) & "quotes"'


def art(aid: str, age_h: float, title: str = "Baku and Moscow sign energy road map", feed: str = "Feed",
        cluster: str | None = None) -> Article:
    return Article(aid, f"https://{feed.lower()}.example/rss", feed, aid, f"https://f.example/{aid}", title, "",
                   "text", NOW, published_at=NOW - timedelta(hours=age_h), cluster_id=cluster or f"c-{aid}")


def ver(aid: str, match: bool = True, watchlist: str = "az_ru", score: float = 9.0,
        tags: tuple[str, ...] = ("az_ru", "energy")) -> Verdict:
    return Verdict(aid, watchlist, "1", match, score, tags, (("az_ru", 5.0),),
                   (Evidence("az_ru", "Baku", "", "title", 0, 4, "", 1.0),
                    Evidence("energy", "road map", "", "title", 0, 8, "", 1.0)))


def clusters_of(*arts: Article) -> dict[str, ClusterRecord]:
    out: dict[str, ClusterRecord] = {}
    for a in arts:
        t = a.published_at or NOW
        c = out.get(a.cluster_id or "", ClusterRecord(a.cluster_id or "", a.article_id, a.title, t, NOW))
        out[c.cluster_id] = replace(c, first_published_at=min(c.first_published_at, t))
    return out


def test_one_alert_per_cluster_and_channel_inside_the_window_only() -> None:
    routes = [Route("all", ("json://127.0.0.1:1/a", "mailto://u:pw@smtp.example.com"))]
    arts = [art("new", 3), art("copy", 2, feed="Other", cluster="c-new"), art("old", 24 * 10), art("nomatch", 1),
            art("late-copy", 1, cluster="c-old")]
    verdicts = [ver("new"), ver("copy"), ver("old"), ver("nomatch", False), ver("late-copy")]
    out = plan_alerts(arts, verdicts, routes, clusters=clusters_of(*arts), now=NOW, window=WINDOW)
    # the copy shares the original's cluster: one alert per channel; the old story and its fresh copy: none
    assert sorted((a.cluster_id, a.article_id, a.channel_name) for a in out) == [
        ("c-new", "new", "json://127.0.0.1"), ("c-new", "new", "mailto://smtp.example.com")]
    assert out[0].evidence == ("Baku", "road map")
    again = plan_alerts(arts[1:2], [ver("copy")], routes, clusters=clusters_of(*arts), now=NOW, window=WINDOW)
    assert {a.alert_id for a in again} == {a.alert_id for a in out}  # a later copy: the same ledger rows


def test_routes_filter_by_event_watchlist_label_and_score() -> None:
    routes = [Route("all", ("json://h/all",)),
              Route("energy desk", ("json://h/energy", "json://h/all"), labels=("energy",), min_score=5),
              Route("other list", ("json://h/other",), watchlists=("tr_energy",)),
              Route("ops", ("json://h/ops",), events=("feed",))]
    names = lambda chans: sorted(c.url for c in chans)  # noqa: E731
    assert names(route_channels(routes, "story", watchlist="az_ru", labels=["energy"], score=9)) == [
        "json://h/all", "json://h/energy"]
    assert names(route_channels(routes, "story", watchlist="az_ru", labels=["energy"], score=2)) == ["json://h/all"]
    assert names(route_channels(routes, "story", watchlist="az_ru", labels=["cooperation"], score=9)) == [
        "json://h/all"]
    assert names(route_channels(routes, "story", watchlist="tr_energy", labels=[], score=1)) == [
        "json://h/all", "json://h/other"]
    assert names(route_channels(routes, "feed")) == ["json://h/all", "json://h/energy", "json://h/ops",
                                                     "json://h/other"]
    assert AlertSettings(urls=("json://h/all",), routes=tuple(routes[1:])).all_routes[0] == Route(
        "all", ("json://h/all",))


def test_redaction_never_shows_credentials_or_tokens() -> None:
    assert redact_url("mailtos://user:secret@smtp.example.com:465?to=a@b") == "mailtos://smtp.example.com"
    assert redact_url("slack://TokenA/TokenB/TokenC/#chan") == "slack://…"
    assert redact_url("tgram://123456:ABCdef/987") == "tgram://…"


def test_plain_alert_is_short_single_line_fields_and_names_every_outlet() -> None:
    assert clean("a\x00b\nc\u202e" + "x" * 500, 20) == "a b c " + "x" * 13 + "…"
    a = plan_alerts([art("n", 1, "Title\r\nInjected: header")], [ver("n")], [Route("r", ("json://h/x",))],
                    clusters={}, now=NOW, window=WINDOW)[0]
    msg = render_alert(replace(a, outlets=("Trend", "Report.az", "TASS")))
    assert "\n" not in msg.title and "Injected" in msg.title and msg.format == "text"
    assert "Outlets: Trend, Report.az, TASS" in msg.body
    assert f"Alert-Id: {a.alert_id}" in msg.body and "https://f.example/n" in msg.body and "Score: 9.0" in msg.body
    assert len(msg.body.splitlines()) == 6


def story(i: int, title: str = "Story", url: str = "https://x.example/s", **kw: object) -> AlertRecord:
    base = dict(alert_id=f"al{i}", article_id=f"a{i}", watchlist="az_ru", channel="ch", status="pending",
                attempts=0, title=f"{title} {i}", url=url, source="Trend", published_at=NOW, score=float(i),
                labels=("az_ru",), evidence=("Baku",), cluster_id=f"c{i}", outlets=("Trend", "TASS"),
                snippets=(f"snippet {i} <b>",))
    base.update(kw)
    return AlertRecord(**base)  # type: ignore[arg-type]


def test_digests_escape_hostile_feed_content() -> None:
    hostile = [story(1, HOSTILE, url="javascript:alert(1)", snippets=("<img src=x onerror=alert(1)>",),
                     outlets=("<b>Evil</b> [x](y)",)), story(2, url="https://x.example/a (b)<c>")]
    stories = [a.story() for a in hostile]
    page = render_digest(stories, heading="Daily <digest>", key="k1", html_body=True).body
    assert "<script>" not in page and "<img" not in page and "<b>Evil" not in page and 'href="javascript' not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page and "&quot;quotes&quot;" in page
    assert 'href="https://x.example/a%20%28b%29%3Cc%3E"' in page
    chat = render_digest(stories, heading="Daily", key="k1", html_body=False).body
    assert "[click](javascript" not in chat and "\\[click\\]\\(javascript:alert\\(1\\)\\)" in chat
    assert "\\*\\*bold\\*\\*" in chat and "\\<script\\>" in chat and "](javascript" not in chat
    assert "[Story 2](https://x.example/a%20%28b%29%3Cc%3E)" in chat and "Digest-Id: k1" in chat
    assert md("a_b") == "a\\_b" and safe_link("data:text/html,x") is None


def test_more_than_k_story_alerts_for_a_channel_go_as_one_digest() -> None:
    many = [story(i) for i in range(11)] + [story(99, channel="other")]
    spike = story(100, kind="spike", subject="spike", body="b")
    out = plan_deliveries([*many, spike], max_per_channel=10)
    assert sorted(len(d.alerts) for d in out) == [1, 1, 11]
    digest = next(d for d in out if d.is_digest)
    assert digest.key == plan_deliveries(list(reversed(many[:11])), max_per_channel=10)[0].key  # stable
    assert len(plan_deliveries([story(i) for i in range(10)], max_per_channel=10)) == 10


def test_idempotency_key_goes_in_headers_and_payload_where_apprise_allows() -> None:
    assert keyed_url("json://h:1/p", "k1") == "json://h:1/p?+Idempotency-Key=k1&:idempotency_key=k1"
    assert keyed_url("mailto://h?to=a@b", "k1") == "mailto://h?to=a@b&+X-Newsmon-Alert-Id=k1"
    assert keyed_url("slack://a/b/c/#chan", "k1") == "slack://a/b/c/#chan"
    with WebhookReceiver() as rx:
        AppriseNotifier().send(Channel(rx.apprise_url()), "title", "body", key="k-123")
    assert rx.received[0]["idempotency_key"] == "k-123" and rx.received[0]["message"] == "body"
    assert rx.headers[0]["Idempotency-Key"] == "k-123"


def test_webhook_delivery_and_failure_are_checked() -> None:
    with WebhookReceiver(fail_first=1) as rx:
        ch = Channel(rx.apprise_url())
        with pytest.raises(AlertError, match="delivery failed"):
            AppriseNotifier().send(ch, "t", "b")
        AppriseNotifier().send(ch, "title", "body")
    assert rx.attempts == 2 and len(rx.received) == 1
    assert rx.received[0]["title"] == "title" and rx.received[0]["message"] == "body"


def test_invalid_apprise_url_is_a_clear_error() -> None:
    with pytest.raises(AlertError, match="not a valid Apprise URL"):
        AppriseNotifier().send(Channel("http://example.com/hook"), "t", "b")


def store(wh: Warehouse, arts: list[Article], verdicts: list[Verdict], alerts: list[AlertRecord]) -> None:
    feed = FeedResult(FeedSpec("Feed", "https://feed.example/rss"), NOW, status=200)
    wh.runs.store_run(RunBatch("r1", "t", NOW, (feed,), tuple(arts), tuple(verdicts), tuple(alerts),
                          clusters=tuple(clusters_of(*arts).values())), finished_at=NOW)


def test_a_failing_receiver_gets_each_alert_exactly_once_after_backoff_retries(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    with WebhookReceiver(fail_first=4) as rx:
        settings = AlertSettings(urls=(rx.apprise_url(),), retry_minutes=5, send_attempts=1)  # one try per run
        arts = [art("a", 1), art("b", 2, "Gas deal"), art("b2", 1, "Gas deal", feed="TASS", cluster="c-b")]
        verdicts = [ver("a"), ver("b"), ver("b2")]
        store(wh, arts, verdicts, plan_alerts(arts, verdicts, settings.all_routes, clusters=clusters_of(*arts),
                                              now=NOW, window=WINDOW))
        tries = []
        for minutes in (0, 1, 6, 8, 30, 60, 120):  # backoff: 5 min after the first failure, then 10
            r = deliver_pending(wh, settings, AppriseNotifier(), now=NOW + timedelta(minutes=minutes))
            tries.append((minutes, r.sent, len(r.errors)))
    assert tries == [(0, 0, 2), (1, 0, 0), (6, 0, 2), (8, 0, 0), (30, 2, 0), (60, 0, 0), (120, 0, 0)]
    assert rx.attempts == 6 and len(rx.received) == 2
    keys = sorted(p["idempotency_key"] for p in rx.received)
    wh.runs.sync_alerts()
    assert keys == sorted(r[0] for r in wh.lake.query("SELECT alert_id FROM alerts")[1])
    gas = next(p for p in rx.received if "Gas deal" in p["title"])
    assert "Outlets: Feed, TASS" in gas["message"]  # the copy that joined before the send is named
    assert wh.lake.query("SELECT status, attempts FROM alert_ledger")[1] == [("sent", 3), ("sent", 3)]


def test_after_max_attempts_an_alert_is_failed_and_listed(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    with WebhookReceiver(fail_first=100) as rx:
        settings = AlertSettings(urls=(rx.apprise_url(),), retry_minutes=0, max_attempts=3, send_attempts=1)
        store(wh, [art("a", 1)], [ver("a")], plan_alerts([art("a", 1)], [ver("a")], settings.all_routes,
                                                         clusters={}, now=NOW, window=WINDOW))
        for _ in range(5):
            deliver_pending(wh, settings, AppriseNotifier(), now=NOW)
    assert rx.attempts == 3
    wh.runs.sync_alerts()
    _, rows = wh.lake.query("SELECT status, attempts, last_error, kind, outlets FROM failed_alerts")
    assert rows == [("failed", 3, "json://127.0.0.1: delivery failed: Failed to send JSON POST notification: "
                     "Internal server error., error=500.", "story", ["Feed"])]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, inbox
    ctl.stop()


def mail_url(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?from=newsmon@example.com&to=analyst@example.com&mode=insecure"


def body_of(msg: EmailMessage, subtype: str = "plain") -> str:
    for part in msg.walk():
        if part.get_content_type() == f"text/{subtype}":
            return part.get_payload(decode=True).decode()  # type: ignore[union-attr]
    return ""


def test_email_reaches_a_real_smtp_server_with_its_key(smtp: tuple[int, Inbox], tmp_path: Path) -> None:
    port, inbox = smtp
    wh = make_warehouse(tmp_path / "w.duckdb")
    settings = AlertSettings(urls=(mail_url(port),))
    store(wh, [art("m", 1)], [ver("m")], plan_alerts([art("m", 1)], [ver("m")], settings.all_routes, clusters={},
                                                     now=NOW, window=WINDOW))
    assert deliver_pending(wh, settings, AppriseNotifier(), now=NOW).sent == 1
    assert deliver_pending(wh, settings, AppriseNotifier(), now=NOW).sent == 0
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    key = wh.lake.query("SELECT alert_id FROM alerts")[1][0][0]
    assert "analyst@example.com" in msg["To"] and "Baku and Moscow" in msg["Subject"]
    assert msg["X-Newsmon-Alert-Id"] == key
    assert key in (body_of(msg) or body_of(msg, "html"))
