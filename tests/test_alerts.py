from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller

from newsmon.alerts.notify import AppriseNotifier
from newsmon.alerts.policy import Channel, clean, plan_alerts, redact_url, render_alert
from newsmon.demo.receiver import WebhookReceiver
from newsmon.errors import AlertError
from newsmon.records import Article, Verdict

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def art(aid: str, age_h: float, title: str = "Baku and Moscow sign energy road map") -> Article:
    return Article(aid, "https://f.example/rss", "Feed", aid, f"https://f.example/{aid}", title, "", "text",
                   NOW, published_at=NOW - timedelta(hours=age_h))


def ver(aid: str, match: bool = True) -> Verdict:
    return Verdict(aid, "az_ru", "1", match, 9.0, ("az_ru", "energy"), (("az_ru", 5.0),),
                   ({"label": "az_ru", "term": "Baku"}, {"label": "energy", "term": "road map"}))


def test_one_alert_per_story_and_channel_inside_the_window_only() -> None:
    chans = [Channel("json://127.0.0.1:1/a"), Channel("mailto://u:pw@smtp.example.com")]
    arts = [art("new", 3), art("old", 24 * 10), art("nomatch", 1)]
    out = plan_alerts(arts, [ver("new"), ver("old"), ver("nomatch", False)], chans, now=NOW,
                      window=timedelta(hours=48))
    assert sorted((a.article_id, a.channel_name) for a in out) == [
        ("new", "json://127.0.0.1"), ("new", "mailto://smtp.example.com")]
    assert out[0].evidence == ("Baku", "road map")
    again = plan_alerts(arts, [ver("new")], chans, now=NOW + timedelta(minutes=15), window=timedelta(hours=48))
    assert {a.alert_id for a in again} == {a.alert_id for a in out}  # stable: the ledger dedups reruns


def test_redaction_never_shows_credentials_or_tokens() -> None:
    assert redact_url("mailtos://user:secret@smtp.example.com:465?to=a@b") == "mailtos://smtp.example.com"
    assert redact_url("slack://TokenA/TokenB/TokenC/#chan") == "slack://…"
    assert redact_url("tgram://123456:ABCdef/987") == "tgram://…"


def test_messages_are_single_line_capped_and_control_free() -> None:
    assert clean("a\x00b\nc\u202e" + "x" * 500, 20) == "a b c " + "x" * 13 + "…"
    a = plan_alerts([art("n", 1, "Title\r\nInjected: header")], [ver("n")], [Channel("json://h/x")], now=NOW,
                    window=timedelta(hours=48))[0]
    title, body = render_alert(a)
    assert "\n" not in title and "Injected" in title
    assert f"Alert-Id: {a.alert_id}" in body and "https://f.example/n" in body and "Score: 9.0" in body


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


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

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


def test_email_reaches_a_real_smtp_server(smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    url = f"mailto://127.0.0.1:{port}?from=newsmon@example.com&to=analyst@example.com&mode=insecure"
    a = plan_alerts([art("m", 1)], [ver("m")], [Channel(url)], now=NOW, window=timedelta(hours=48))[0]
    AppriseNotifier().send(Channel(url), *render_alert(a))
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["To"].endswith("analyst@example.com>") or "analyst@example.com" in msg["To"]
    assert "Baku and Moscow" in msg["Subject"]
    payload = msg.get_payload(decode=True) if not msg.is_multipart() else msg.get_payload(0).get_payload(decode=True)
    assert a.alert_id in payload.decode()
