"""Alert policy (pure): which verdicts become ledger rows, and what a message says."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from newsmon.records import AlertRecord, Article, Verdict, stable_id

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e]")
_HOSTLIKE = re.compile(r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]|[\w-]+(\.[\w-]+)+)$", re.I)


@dataclass(frozen=True)
class Channel:
    """A configured Apprise URL. `url` may hold secrets: only `channel_id` and `name` are ever stored."""

    url: str

    @property
    def channel_id(self) -> str:
        return stable_id("channel", self.url)

    @property
    def name(self) -> str:
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """'mailto://smtp.example.com' for display: the scheme and a host, never users, tokens or paths."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = host if _HOSTLIKE.match(host) else "…"
    return f"{parts.scheme}://{shown}"


def plan_alerts(articles: Iterable[Article], verdicts: Iterable[Verdict], channels: Sequence[Channel], *,
                now: datetime, window: timedelta) -> list[AlertRecord]:
    """One pending alert per matching story x watchlist x channel, for stories inside the alert window.

    Older backlog (a new feed's archive) is stored but never alerts.
    """
    by_id = {a.article_id: a for a in articles}
    out = []
    for v in verdicts:
        art = by_id.get(v.article_id)
        if not v.match or art is None:
            continue
        when = art.published_at or art.fetched_at
        if now - when > window:
            continue
        terms = tuple(sorted({str(e.get("term")) for e in v.evidence}))
        for ch in channels:
            out.append(AlertRecord(
                alert_id=stable_id("alert", v.article_id, v.watchlist, ch.channel_id),
                article_id=v.article_id, watchlist=v.watchlist, channel=ch.channel_id, status="pending",
                attempts=0, title=art.title, url=art.url, source=art.feed_name, published_at=art.published_at,
                score=v.score, labels=v.tags, evidence=terms, channel_name=ch.name))
    return out


def clean(text: str, limit: int) -> str:
    """Single-line, control-character-free, length-capped text for messages."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_alert(alert: AlertRecord) -> tuple[str, str]:
    """(title, body) of a plain-text alert: what, where, when, why, and the link."""
    when = alert.published_at.strftime("%Y-%m-%d %H:%M UTC") if alert.published_at else "date unknown"
    title = "newsmon: " + clean(alert.title or alert.url, 150)
    body = "\n".join([
        clean(alert.title or "(untitled)", 300),
        f"Source: {clean(alert.source, 80)} · {when}",
        f"Score: {alert.score:.1f} · labels: {', '.join(alert.labels)} · watchlist: {alert.watchlist}",
        f"Evidence: {clean(', '.join(alert.evidence), 300)}",
        f"Link: {clean(alert.url, 500)}",
        f"Alert-Id: {alert.alert_id}",
    ])
    return title, body
