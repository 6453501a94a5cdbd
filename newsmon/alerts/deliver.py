"""Delivery (I/O at the edge): read the ledger's pending alerts, send them, mark each right after its send.

A message the service refuses or cannot take (a 500, a dropped connection) is tried again within the run
(`send_attempts` tries, waiting `send_backoff_s`, then 3x as long, ...) before it is left to a later run; only
a failed send is tried again, and the ledger row is marked once, after the message went or its last try
failed. A channel that failed every try is tried once per message for the rest of the run (no more waits).

Also queues the alerts that do not come from a run's articles: spikes and failing feeds. The decisions are
the pure functions of policy, signals and render; this module only moves their results in and out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsmon.alerts.notify import Notifier
from newsmon.alerts.policy import Channel, Delivery, all_channels, plan_deliveries, scrub
from newsmon.alerts.render import delivery_message
from newsmon.alerts.signals import detect_spikes, failing_feeds, feed_alerts, silent_alerts, spike_alerts
from newsmon.config import AlertSettings
from newsmon.errors import AlertError, DeliveryFailed
from newsmon.records import stable_id
from warehouse import DeliveryOutcome, Warehouse

BACKOFF_FACTOR = 3  # each wait between tries within a run is this many times the one before


@dataclass
class DeliveryReport:
    sent: int = 0  # ledger rows marked sent
    messages: int = 0  # messages that went out (a digest is one message for many rows)
    errors: list[str] = field(default_factory=list)


def deliver_pending(wh: Warehouse, settings: AlertSettings, notifier: Notifier, *, now: datetime,
                    kinds: Sequence[str] = ("story", "spike", "feed", "digest"),
                    sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Send every pending alert that is due (this run's and earlier failures past their backoff); more than
    `max_per_run` story alerts for one channel go as one digest. A refused send is tried again within the run
    (`send_attempts`, `send_backoff_s`); each message is marked right after it went or its last try failed."""
    channels = all_channels(settings.all_routes)
    report = DeliveryReport()
    down: set[str] = set()  # channels that failed every try this run: one try per message from then on
    with wh.runs.delivering():  # another run's sender finishes first: what it sent is no longer pending
        pending = [a for a in wh.runs.pending_alerts(max_attempts=settings.max_attempts, now=now)
                   if a.channel in channels and a.kind in kinds]  # a channel removed from the config is skipped
        for d in plan_deliveries(pending, max_per_channel=settings.max_per_run):
            channel = channels[d.channel]
            tries = 1 if d.channel in down else settings.send_attempts
            error, retryable = send_with_retries(notifier, channel, d, tries=tries,
                                                 backoff_s=settings.send_backoff_s, sleep=sleep)
            if error is None:
                report.sent += len(d.alerts)
                report.messages += 1
            else:
                report.errors.append(error)
                if retryable:
                    down.add(d.channel)
            wh.runs.mark_alerts([DeliveryOutcome(a.alert_id, error) for a in d.alerts], now=now,
                                max_attempts=settings.max_attempts, retry_s=settings.retry_minutes * 60,
                                delivery_key=d.key)
    return report


def send_with_retries(notifier: Notifier, channel: Channel, d: Delivery, *, tries: int, backoff_s: float,
                      sleep: Callable[[float], None] = time.sleep) -> tuple[str | None, bool]:
    """Send one message, trying again after `backoff_s`, 3x that, ... while the service refuses it or cannot be
    reached (DeliveryFailed), at most `tries` times; never again once it went. Returns (None, False) when it
    went, else (the last error, whether trying again could have helped)."""
    try:
        msg = delivery_message(d.alerts, key=d.key, email=channel.is_email)
    except Exception as exc:  # a rendering bug: this message fails, the others still go
        return (f"{channel.name}: could not send ({type(exc).__name__}: {scrub(str(exc), [channel.url])[:300]})",
                False)
    error = ""
    for attempt in range(max(tries, 1)):
        if attempt:
            sleep(backoff_s * BACKOFF_FACTOR ** (attempt - 1))
        try:
            notifier.send(channel, msg.title, msg.body, key=d.key, body_format=msg.format)
            return None, False
        except DeliveryFailed as exc:  # a 500, a refused or dropped connection: worth another try
            error = str(exc)
        except AlertError as exc:  # e.g. a URL Apprise cannot use: another try changes nothing
            return str(exc), False
        except Exception as exc:  # a notifier's bug: this message fails, the others still go
            return (f"{channel.name}: could not send ({type(exc).__name__}: "
                    f"{scrub(str(exc), [channel.url])[:300]})"), False
    return error, True


TEST_TITLE = "newsmon test message"


def send_test_messages(notifier: Notifier, targets: Sequence[tuple[Channel, tuple[str, ...]]], *, config: str,
                       now: datetime) -> list[tuple[Channel, tuple[str, ...], str | None]]:
    """One test message to each (channel, its routes), one try each (the result is the channel's state now);
    returns each with None when it went, else the error the ledger would keep for it. Nothing is stored."""
    out: list[tuple[Channel, tuple[str, ...], str | None]] = []
    for channel, routes in targets:
        body = (f"A test message from newsmon (configuration {config!r}, route {', '.join(routes)}): alerts for "
                f"this channel arrive like this one. Sent {now:%Y-%m-%d %H:%M} UTC; nothing to do.")
        key = "test-" + stable_id("test", channel.channel_id, now.isoformat())  # a receiver keeps each test
        error: str | None = None
        try:
            notifier.send(channel, TEST_TITLE, body, key=key)
        except AlertError as exc:
            error = str(exc)
        except Exception as exc:  # a notifier's bug: this channel fails, the others are still tried
            error = f"{channel.name}: could not send ({type(exc).__name__}: {scrub(str(exc), [channel.url])[:300]})"
        out.append((channel, routes, error))
    return out


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
        statuses = wh.feed_statuses()
        failing = failing_feeds(statuses, now=now, threshold=timedelta(hours=settings.feed_failing_hours))
        rows = (spike_alerts(spikes, routes, hours=settings.spike_hours, baseline_days=settings.spike_baseline_days)
                + feed_alerts(failing, routes, now=now) + silent_alerts(statuses, routes))
        return wh.runs.queue_alerts(rows, now=now)
