"""When to poll a feed next: due checks, exponential backoff, Retry-After and cache floors.

Pure: every function takes `now` (and any randomness) as a parameter. A feed is never disabled: the
longest it waits is the backoff cap (or a Retry-After up to MAX_RETRY_AFTER).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from newsmon.records import FeedResult, FeedSpec, FeedState

DUE_SLACK = timedelta(seconds=30)  # a run that starts a little early still polls a feed due "now"
MAX_RETRY_AFTER = timedelta(hours=24)  # a buggy or hostile Retry-After cannot silence a feed for longer
JITTER_FRACTION = 0.1  # failed feeds retry up to 10% later, so they do not all come back in one run
_MAX_AGE = re.compile(r"(?:^|[,\s])(s-maxage|max-age)\s*=\s*\"?(\d+)", re.I)


def is_due(state: FeedState | None, now: datetime) -> bool:
    """A feed is due unless its next poll is scheduled (more than a little) after `now`."""
    return state is None or state.next_poll_at is None or state.next_poll_at <= now + DUE_SLACK


def split_due(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState],
              now: datetime, *, every: bool = False) -> tuple[list[FeedSpec], list[FeedSpec]]:
    """(feeds to poll now, feeds still waiting for their next_poll_at), each in config order. With `every`
    (`newsmon run --now`), every feed is due: backoff, Retry-After and cache floors are not waited for."""
    due = [f for f in feeds if every or is_due(states.get(f.url), now)]
    waiting = [f for f in feeds if not every and not is_due(states.get(f.url), now)]
    return due, waiting


@dataclass(frozen=True)
class Outage:
    """No feed has worked for longer than the outage window, and none works now."""

    feeds: int                         # how many feeds are configured (every one failing or backing off)
    last_success_at: datetime | None   # the newest success of any of them; None: none ever succeeded
    window: timedelta                  # [schedule] outage_hours


def outage(feeds: Sequence[FeedSpec], states: Mapping[str, FeedState], results: Sequence[FeedResult],
           now: datetime, window: timedelta) -> Outage | None:
    """An Outage when every feed failed this run or waits in backoff (a failure before), and no feed succeeded
    within `window` before `now`: a feed never polled successfully counts as no success (a new install whose
    feeds all fail is an outage from its first run on). None otherwise: a feed that worked this run, or waits
    only for a cache floor after a success, or a success within the window."""
    if not feeds:
        return None
    polled = {r.feed.url: r for r in results}
    for f in feeds:
        result, state = polled.get(f.url), states.get(f.url)
        if result is not None and result.ok:
            return None
        if result is None and (state is None or state.consecutive_failures == 0):
            return None  # waiting for a cache floor (or not due) after a success: healthy
    last = max((s.last_success_at for f in feeds if (s := states.get(f.url)) and s.last_success_at), default=None)
    if last is not None and last > now - window:
        return None
    return Outage(len(feeds), last, window)


def backoff_delay(failures: int, *, base: timedelta, cap: timedelta, jitter: float = 0.0) -> timedelta:
    """base * 2^(failures-1), stretched by up to JITTER_FRACTION * jitter (jitter in [0, 1)), at most `cap`."""
    if failures <= 0:
        return timedelta(0)
    exponent = min(failures - 1, 60)  # far past any cap; keeps the arithmetic finite
    seconds = base.total_seconds() * 2.0 ** exponent * (1 + JITTER_FRACTION * jitter)
    return min(timedelta(seconds=seconds), cap) if seconds < cap.total_seconds() else cap


def cache_floor(headers: Mapping[str, str], *, ttl_minutes: int | None, now: datetime,
                cap: timedelta) -> timedelta | None:
    """How long the server (Cache-Control max-age, Expires) or the feed (RSS <ttl>) asks us to wait, capped.

    `headers` have lower-case names. no-cache / no-store / max-age=0 give no floor.
    """
    floors: list[timedelta] = []
    cc = headers.get("cache-control", "")
    m = _MAX_AGE.search(cc)
    if re.search(r"no-store|no-cache", cc, re.I):
        pass  # the server asks us not to reuse the answer: no header floor
    elif m:
        floors.append(timedelta(seconds=int(m.group(2))))
    elif "expires" in headers:
        expires = _http_date(headers["expires"])
        if expires is not None:
            floors.append(expires - (_http_date(headers.get("date", "")) or now))
    if ttl_minutes and ttl_minutes > 0:
        floors.append(timedelta(minutes=ttl_minutes))
    floor = max(floors, default=timedelta(0))
    return min(floor, cap) if floor > timedelta(0) else None


def next_poll_at(now: datetime, *, failures: int, base: timedelta, cap: timedelta,
                 retry_after: float | None = None, floor: timedelta | None = None,
                 jitter: float = 0.0) -> datetime | None:
    """When the feed may be polled again; None means "on the next scheduled run".

    After a success (`failures` = 0) only a cache floor delays it. After the n-th failure in a row it waits
    the exponential backoff, or the server's Retry-After (seconds) when that is longer.
    """
    delay = max(backoff_delay(failures, base=base, cap=cap, jitter=jitter), floor or timedelta(0))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return now + delay if delay > timedelta(0) else None


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else None
