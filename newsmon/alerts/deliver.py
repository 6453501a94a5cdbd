"""Delivery (I/O at the edge): read the ledger's pending alerts, send them, mark each right after its send.

Also queues the alerts that do not come from a run's articles: spikes and failing feeds. The decisions are
the pure functions of policy, signals and render; this module only moves their results in and out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsmon.alerts.notify import Notifier
from newsmon.alerts.policy import all_channels, plan_deliveries, scrub
from newsmon.alerts.render import delivery_message
from newsmon.alerts.signals import detect_spikes, failing_feeds, feed_alerts, silent_alerts, spike_alerts
from newsmon.config import AlertSettings
from newsmon.errors import AlertError
from warehouse import DeliveryOutcome, Warehouse


@dataclass
class DeliveryReport:
    sent: int = 0  # ledger rows marked sent
    messages: int = 0  # messages that went out (a digest is one message for many rows)
    errors: list[str] = field(default_factory=list)


def deliver_pending(wh: Warehouse, settings: AlertSettings, notifier: Notifier, *, now: datetime,
                    kinds: Sequence[str] = ("story", "spike", "feed", "digest")) -> DeliveryReport:
    """Send every pending alert that is due (this run's and earlier failures past their backoff); more than
    `max_per_run` story alerts for one channel go as one digest. Each message is marked right after it went."""
    channels = all_channels(settings.all_routes)
    report = DeliveryReport()
    with wh.runs.delivering():  # another run's sender finishes first: what it sent is no longer pending
        pending = [a for a in wh.runs.pending_alerts(max_attempts=settings.max_attempts, now=now)
                   if a.channel in channels and a.kind in kinds]  # a channel removed from the config is skipped
        for d in plan_deliveries(pending, max_per_channel=settings.max_per_run):
            channel = channels[d.channel]
            error = None
            try:
                msg = delivery_message(d.alerts, key=d.key, email=channel.is_email)
                notifier.send(channel, msg.title, msg.body, key=d.key, body_format=msg.format)
                report.sent += len(d.alerts)
                report.messages += 1
            except AlertError as exc:
                error = str(exc)
            except Exception as exc:  # rendering or a notifier's bug: this message fails, the others still go
                error = (f"{channel.name}: could not send ({type(exc).__name__}: "
                         f"{scrub(str(exc), [channel.url])[:300]}); newsmon retries on a later run")
            if error is not None:
                report.errors.append(error)
            wh.runs.mark_alerts([DeliveryOutcome(a.alert_id, error) for a in d.alerts], now=now,
                                max_attempts=settings.max_attempts, retry_s=settings.retry_minutes * 60,
                                delivery_key=d.key)
    return report


def queue_signals(wh: Warehouse, settings: AlertSettings, *, now: datetime) -> int:
    """Queue spike alerts (per watchlist) and feed-health alerts; returns how many new ledger rows."""
    routes = settings.all_routes
    if not routes:
        return 0
    window = timedelta(hours=settings.spike_hours)
    with wh.runs.signalling():  # two shards judging the same spike at once queue it once
        history = wh.runs.match_history(since=now - window - timedelta(days=settings.spike_baseline_days))
        spikes = detect_spikes(history, now=now, hours=settings.spike_hours,
                               baseline_days=settings.spike_baseline_days, factor=settings.spike_factor,
                               min_stories=settings.spike_min_stories, last_spike=wh.runs.last_alerts("spike"),
                               polling_since=wh.runs.polling_since())
        statuses = wh.archive.feed_statuses()
        failing = failing_feeds(statuses, now=now, threshold=timedelta(hours=settings.feed_failing_hours))
        rows = (spike_alerts(spikes, routes, hours=settings.spike_hours, baseline_days=settings.spike_baseline_days)
                + feed_alerts(failing, routes, now=now) + silent_alerts(statuses, routes))
        return wh.runs.queue_alerts(rows, now=now)
