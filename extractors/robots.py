"""robots.txt for article pages: fetched once per host per run through the run's own client (its SSRF guard,
size cap, User-Agent and politeness), parsed with urllib.robotparser, asked for the `newsmon` token.

Feeds are not checked: a publisher lists a feed to be read. What a robots.txt that cannot be read means:
- 4xx (404 most often): there is none, every page may be fetched (RFC 9309 2.3.1.3);
- 5xx, a timeout, a refused connection, a body over the cap: every page may be fetched too, for this run
  (RFC 9309 would assume "disallow all"; newsmon then stores the feed's summary and tries again next run
  either way, so reading the page costs the site one request it could have refused).
urllib.robotparser matches paths by prefix: `*` and `$` inside a rule are taken literally (Python 3.11-3.13).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit
from urllib.robotparser import RobotFileParser

from extractors.http import Fetcher
from newsmon.errors import FetchError

AGENT = "newsmon"  # the product token robots.txt groups are matched against (User-agent: newsmon)
PREFETCH_WAIT_S = 2.0  # how long a batch's pages wait for the robots.txt files asked for before they start


@dataclass
class RobotsCache:
    """Each origin's parsed robots.txt for one run (None: every page allowed), shared by the run's batches."""

    rules: dict[str, RobotFileParser | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # origin -> why every page is allowed (unreadable file)


class RobotsCheck:
    """The robots.txt check of one batch (one event loop): concurrent pages of a host wait for one fetch."""

    def __init__(self, cache: RobotsCache, fetcher: Fetcher, max_bytes: int, timeout_s: float) -> None:
        self.cache, self.fetcher, self.max_bytes, self.timeout_s = cache, fetcher, max_bytes, timeout_s
        self._pending: dict[str, asyncio.Task[RobotFileParser | None]] = {}

    async def prefetch(self, urls: Iterable[str], wait_s: float = PREFETCH_WAIT_S) -> None:
        """Ask for the robots.txt of every origin among `urls` at once, and wait up to `wait_s` for them before
        the pages start. A page that waits for its host's robots.txt resumes with every other page of that host
        when it arrives, so pages queued for the run's slots host by host and held them while their host's
        limit let them through one by one (an 80-feed backlog: 28% longer; 2,000 pages in one batch: 3.6x).
        A robots.txt slower than `wait_s` keeps only its own host's pages waiting, as before."""
        first: dict[str, str] = {}
        for url in urls:
            parts = _web_parts(url)
            origin = parts and f"{parts.scheme}://{parts.netloc}"
            if origin and origin not in self.cache.rules:
                first.setdefault(origin, url)
        if first:
            await asyncio.wait([asyncio.ensure_future(self.refusal(url)) for url in first.values()],
                               timeout=wait_s)

    async def refusal(self, url: str) -> str | None:
        """Why robots.txt forbids newsmon to fetch `url`, or None when it may."""
        parts = _web_parts(url)
        if parts is None:
            return None  # a malformed link (fetching it reports that), or not http(s)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self.cache.rules:
            task = self._pending.get(origin)
            if task is None:
                task = self._pending[origin] = asyncio.ensure_future(self._load(origin))
            self.cache.rules[origin] = await task
        rules = self.cache.rules[origin]
        if rules is None or rules.can_fetch(AGENT, url):
            return None
        path = parts.path or "/"
        return f"robots.txt disallows {path}{'?' + parts.query if parts.query else ''} for {AGENT}"

    async def _load(self, origin: str) -> RobotFileParser | None:
        """The origin's rules; None (allow all) when it has no robots.txt or it cannot be read now."""
        where = f"{origin}/robots.txt"
        try:
            resp = await asyncio.wait_for(self.fetcher.get(where, max_bytes=self.max_bytes), timeout=self.timeout_s)
        except TimeoutError:
            self.cache.notes[origin] = f"{where}: no answer within {self.timeout_s:g} s; every page allowed this run"
            return None
        except FetchError as exc:
            if exc.status is None or exc.status >= 500:
                self.cache.notes[origin] = f"{exc}; every page allowed this run"
            return None  # a 4xx: no robots.txt, every page allowed
        parser = RobotFileParser(where)
        parser.parse(resp.body.decode("utf-8", "replace").removeprefix("\ufeff").splitlines())
        return parser


def _web_parts(url: str) -> SplitResult | None:
    """The parts of an http(s) URL with a host; None for anything else."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts if parts.scheme in ("http", "https") and parts.netloc else None
