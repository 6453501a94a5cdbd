"""Spike and feed-health alerts (pure: counts, feed states and `now` in, ledger rows out).

Spike: the stories (clusters) a watchlist matched in the last `hours` against a rolling baseline, the mean
count per `hours` window over the `baseline_days` before. A spike needs at least `min_stories` stories and
`factor` times the baseline; after one, the watchlist stays quiet for `hours` (one alert per spike). No
baseline, no spike: until the warehouse has polled through the whole baseline period (its first poll at least
`baseline_days` before the window), nothing is compared, so a new install's first backlog is never a spike.

Feed health: a feed whose polls have failed for longer than `threshold` alerts once per failure episode
(the key carries the last success, so a feed alerts again only after it recovered and then failed again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsmon.alerts.policy import route_channels
from newsmon.alerts.render import clean, when
from newsmon.config import Route
from newsmon.records import AlertRecord, FeedStatus, stable_id


@dataclass(frozen=True)
class Spike:
    watchlist: str
    recent: int
    baseline: float
    older: int  # stories in the baseline period
    window_start: datetime
    titles: tuple[str, ...]


def detect_spikes(stories: Mapping[str, Sequence[tuple[datetime, str]]], *, now: datetime, hours: float,
                  baseline_days: float, factor: float, min_stories: int,
                  last_spike: Mapping[str, datetime], polling_since: datetime | None) -> list[Spike]:
    """`stories`: per watchlist, (first publication time, title) of each matching story cluster;
    `polling_since`: the warehouse's first poll (None: never polled)."""
    window = timedelta(hours=hours)
    windows = max(int(timedelta(days=baseline_days) / window), 1)
    start = now - window
    if polling_since is None or polling_since > start - window * windows:
        return []  # no baseline yet
    out = []
    for watchlist, items in sorted(stories.items()):
        recent = sorted((t, title) for t, title in items if start < t <= now)
        older = sum(1 for t, _ in items if start - window * windows < t <= start)
        baseline = older / windows
        quiet = watchlist in last_spike and now - last_spike[watchlist] < window
        if len(recent) >= min_stories and len(recent) >= factor * baseline and not quiet:
            titles = tuple(title for _, title in reversed(recent))
            out.append(Spike(watchlist, len(recent), baseline, older, start, titles))
    return out


def spike_alerts(spikes: Sequence[Spike], routes: Sequence[Route], *, hours: float,
                 baseline_days: float) -> list[AlertRecord]:
    """One ledger row per spike x channel routed for spikes (and that watchlist)."""
    out = []
    for s in spikes:
        subject = f"spike: {s.recent} {s.watchlist} stories in {hours:g} h"
        lines = [f"{s.recent} stories matched watchlist {s.watchlist} in the {hours:g} hours to "
                 f"{when(s.window_start + timedelta(hours=hours))}, against {s.baseline:.1f} per {hours:g} h "
                 f"usually ({s.older} in the {baseline_days:g} days before).", "Latest:"]
        lines += [f"- {clean(t, 160)}" for t in s.titles[:5]]
        hour = s.window_start.replace(minute=0, second=0, microsecond=0).isoformat()
        for ch in route_channels(routes, "spike", watchlist=s.watchlist):
            out.append(_row(stable_id("spike", s.watchlist, hour, ch.channel_id), "spike", ch.channel_id,
                            ch.name, subject, "\n".join(lines), watchlist=s.watchlist))
    return out


def failing_feeds(feeds: Sequence[FeedStatus], *, now: datetime, threshold: timedelta) -> list[FeedStatus]:
    """Feeds failing (every poll since their last success, or since their first poll) for over `threshold`."""
    out = []
    for f in feeds:
        since = f.last_success_at or f.first_polled_at
        if f.consecutive_failures > 0 and since is not None and now - since > threshold:
            out.append(f)
    return out


def feed_alerts(feeds: Sequence[FeedStatus], routes: Sequence[Route], *, now: datetime) -> list[AlertRecord]:
    """One ledger row per failing feed x channel routed for feed alerts, keyed by the failure episode."""
    out = []
    for f in feeds:
        since = f.last_success_at or f.first_polled_at
        hours = (now - since).total_seconds() / 3600 if since else 0.0
        ok = f"last success {when(f.last_success_at)}" if f.last_success_at else "never polled successfully"
        subject = f"feed failing: {clean(f.name, 80)}"
        body = (f"Feed {clean(f.name, 80)} has failed {f.consecutive_failures} polls in a row for {hours:.0f} h "
                f"({ok}).\nLast error: {clean(f.last_error or 'unknown', 300)}\nFeed: {clean(f.url, 300)}\n"
                "Fix or remove its URL in the configuration; `newsmon feeds` shows every feed's state.")
        episode = f.last_success_at.isoformat() if f.last_success_at else "never"
        for ch in route_channels(routes, "feed"):
            out.append(_row(stable_id("feed", f.url, episode, ch.channel_id), "feed", ch.channel_id, ch.name,
                            subject, body, url=f.url, source=f.name))
    return out


def silent_alerts(feeds: Sequence[FeedStatus], routes: Sequence[Route]) -> list[AlertRecord]:
    """One ledger row per silent feed x channel, keyed by its newest story: a feed that comes back and
    falls silent again alerts again; one that stays silent alerts once."""
    out = []
    for f in feeds:
        if not f.silent:
            continue
        gap = f"{f.usual_gap_hours:.1f} h" if f.usual_gap_hours is not None else "unknown"
        subject = f"feed silent: {clean(f.name, 80)}"
        body = (f"Feed {clean(f.name, 80)} still answers, but its newest story was first seen "
                f"{when(f.last_new_at)}, far beyond its usual gap between stories ({gap}).\n"
                f"Feed: {clean(f.url, 300)}\nCheck that the publisher still updates it, or replace its URL.")
        episode = f.last_new_at.isoformat() if f.last_new_at else "never"
        for ch in route_channels(routes, "feed"):
            out.append(_row(stable_id("silent", f.url, episode, ch.channel_id), "feed", ch.channel_id, ch.name,
                            subject, body, url=f.url, source=f.name))
    return out


def _row(alert_id: str, kind: str, channel: str, channel_name: str, subject: str, body: str, *,
         watchlist: str = "", url: str = "", source: str = "") -> AlertRecord:
    return AlertRecord.notice(alert_id, kind, channel=channel, channel_name=channel_name, subject=subject, body=body,
                              watchlist=watchlist, url=url, source=source)
