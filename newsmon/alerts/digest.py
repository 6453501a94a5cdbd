"""Digests: the matches of a period grouped by story cluster, as HTML (email), Markdown (chat) or text.

`build_digest` reads; `send_digest` queues one ledger row per channel routed for digests (keyed by channel,
period length and the hour it ends, so a repeated command in the same hour sends nothing twice) and sends it.
A scheduled daily-digest flow calls `send_digest(wh, settings.alerts, notifier, since=timedelta(hours=24),
now=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from newsmon.alerts.deliver import DeliveryReport, deliver_pending
from newsmon.alerts.notify import Notifier
from newsmon.alerts.policy import route_channels
from newsmon.alerts.render import Message, render_digest, render_text_digest
from newsmon.config import AlertSettings
from newsmon.records import AlertRecord, StoryMatch, stable_id
from warehouse import Warehouse


@dataclass(frozen=True)
class Digest:
    heading: str
    stories: tuple[StoryMatch, ...]
    key: str

    def html(self) -> Message:
        return render_digest(self.stories, heading=self.heading, key=self.key, html_body=True)

    def markdown(self) -> Message:
        return render_digest(self.stories, heading=self.heading, key=self.key, html_body=False)

    def text(self) -> str:
        return render_text_digest(self.stories, heading=self.heading)


def period_key(since: timedelta, now: datetime) -> str:
    """The period's length and when it ends (UTC): by day for daily or longer digests ('24h-2026-11-27'), so
    a retried or late daily run does not send the day's digest twice; by hour for shorter ones."""
    end = f"{now:%Y-%m-%d}" if since >= timedelta(days=1) else f"{now:%Y-%m-%dT%H}"
    return f"{since.total_seconds() / 3600:g}h-{end}"


def build_digest(wh: Warehouse, *, since: timedelta, now: datetime) -> Digest:
    """Every matching story first published in the last `since`, one entry per cluster."""
    stories = tuple(wh.archive.story_matches(since=now - since, until=now))
    heading = f"newsmon digest: {since.total_seconds() / 3600:g} h to {now:%Y-%m-%d %H:%M} UTC"
    return Digest(heading, stories, stable_id("digest", period_key(since, now)))


def digest_alerts(digest: Digest, settings: AlertSettings, *, since: timedelta, now: datetime) -> list[AlertRecord]:
    """One ledger row per channel routed for digests, with the message fixed for that channel's kind."""
    out = []
    for ch in route_channels(settings.all_routes, "digest"):
        alert_id = stable_id("digest", ch.channel_id, period_key(since, now))
        msg = render_digest(digest.stories, heading=digest.heading, key=alert_id, html_body=ch.is_email)
        out.append(AlertRecord.notice(alert_id, "digest", channel=ch.channel_id, channel_name=ch.name,
                                      subject=msg.title.removeprefix("newsmon: "), body=msg.body))
    return out


def send_digest(wh: Warehouse, settings: AlertSettings, notifier: Notifier, *, since: timedelta,
                now: datetime) -> tuple[Digest, int, DeliveryReport]:
    """Build the digest, queue it for every digest channel (nothing when it is empty) and deliver it.
    Returns the digest, how many ledger rows were new, and the delivery report."""
    digest = build_digest(wh, since=since, now=now)
    if not digest.stories:
        return digest, 0, DeliveryReport()
    queued = wh.runs.queue_alerts(digest_alerts(digest, settings, since=since, now=now), now=now)
    return digest, queued, deliver_pending(wh, settings, notifier, now=now, kinds=("digest",))
