"""A run's time budget for article pages, per host and for the whole run (bookkeeping on a monotonic clock).

A host that accepts connections and never answers held a run for up to ~80 minutes (500 pages / 2 per host x
20 s), and every other story of the run, alerts included, waited for it. Now a host may keep the run waiting for
its answers for at most `[http] host_budget_s` (counted while at least one request to it is in flight, so
queueing for a connection slot or politeness pacing costs it nothing), and all pages together may take at most
`run_budget_s` from the first page on. A page whose request would start after its host's (or the run's)
budget is spent is not requested: `LeftForLater`, and nothing about its entry is stored, so the next run sees
the entry as new and fetches it then. A request still in flight when the budget runs out is cut off there and
fails like a timeout (the article keeps its feed summary), so every run gets through at least the pages it
started: a host that never answers costs each run its budget and no more, and its backlog still drains.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from newsmon.config import HttpSettings
from newsmon.errors import FetchError
from newsmon.records import Entry, FeedResult


class LeftForLater(FetchError):
    """The page was not requested: its host (or the run) had used its time budget. The next run fetches it."""

    def __init__(self, reason: str, *, url: str) -> None:
        self.reason = reason
        super().__init__(f"not fetched: {reason}; left for the next run", url=url)


@dataclass
class PageBudget:
    """Seconds each host may keep the run waiting (`host_s`), and the run's pages all together (`run_s`)."""

    host_s: float
    run_s: float
    clock: Callable[[], float] = time.monotonic
    _run_ends: float | None = None
    _used: dict[str, float] = field(default_factory=dict)  # per host: seconds with a request in flight, closed
    _busy_since: dict[str, float] = field(default_factory=dict)  # per host: start of the open busy stretch
    _open: dict[str, int] = field(default_factory=dict)  # per host: requests in flight
    spent: dict[str, str] = field(default_factory=dict)  # host -> why its pages were left for later (first time)

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> PageBudget:
        return cls(settings.host_budget_s, settings.run_budget_s)

    def used(self, host: str) -> float:
        """Seconds `host` has kept the run waiting so far."""
        since = self._busy_since.get(host)
        return self._used.get(host, 0.0) + (self.clock() - since if since is not None else 0.0)

    def left(self, host: str) -> float:
        """Seconds a request to `host` starting now may take, at most (<= 0: none may start)."""
        now = self.clock()
        if self._run_ends is None:  # the run's budget starts with its first page
            self._run_ends = now + self.run_s
        return min(self.host_s - self.used(host), self._run_ends - now)

    def reason(self, host: str) -> str:
        """Which budget stops `host`'s pages, in words (the host's own when both are spent)."""
        if self.used(host) >= self.host_s:
            return f"host {host} used its {self.host_s:g} s budget"
        return f"the run used its {self.run_s:g} s budget for pages"

    def check(self, host: str, url: str) -> float:
        """The seconds a request to `host` may take if it starts now, or LeftForLater when there are none."""
        left = self.left(host)
        if left <= 0:
            raise LeftForLater(self.spent.setdefault(host, self.reason(host)), url=url)
        return left

    @contextmanager
    def busy(self, host: str) -> Iterator[None]:
        """Count the time a request to `host` is in flight (overlapping requests count once)."""
        if self._open.get(host, 0) == 0:
            self._busy_since[host] = self.clock()
        self._open[host] = self._open.get(host, 0) + 1
        try:
            yield
        finally:
            self._open[host] -= 1
            if self._open[host] == 0:
                self._used[host] = self._used.get(host, 0.0) + self.clock() - self._busy_since.pop(host)


def pages_left_for_later(results: Sequence[FeedResult], left: Sequence[tuple[Entry, str]]) -> list[FeedResult]:
    """Results whose feed had pages left for the next run say how many and why (fetch_log), and keep none of this
    fetch's cache validators or body hash: the next poll reads the whole feed again (no 304, no unchanged-body
    skip) and, since nothing of those entries was stored, finds them new and fetches their pages then."""
    count = Counter(e.feed_url for e, _ in left)
    why: dict[str, dict[str, None]] = {}
    for e, reason in left:
        why.setdefault(e.feed_url, {})[reason] = None
    out = []
    for r in results:
        if count[r.feed.url]:
            note = f"{count[r.feed.url]} pages left for the next run ({'; '.join(why[r.feed.url])})"
            r = replace(r, bozo=f"{r.bozo}; {note}" if r.bozo else note, etag=None, last_modified=None,
                        body_hash=None)
        out.append(r)
    return out


def without_left(aliases: Sequence[tuple[str, str]], left: Sequence[tuple[Entry, str]]) -> list[tuple[str, str]]:
    """(alias, article_id) pairs to remember, less those of stories whose page was left for the next run: a
    remembered alias would make the next run take the entry for a stored story and never fetch it."""
    ids = {e.article_id for e, _ in left}
    return [(alias, article_id) for alias, article_id in aliases if article_id not in ids]
