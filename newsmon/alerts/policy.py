"""Alert policy (pure): which matches become ledger rows on which channels, and how a run's pending rows are
grouped into messages (one per alert, or one digest when a channel would get more than K)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import unquote

from newsmon.config import Route
from newsmon.records import AlertRecord, Article, ClusterRecord, Verdict, stable_id

_HOSTLIKE = re.compile(r"localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]|[\w-]+(\.[\w-]+)+", re.I)
# scheme, then the authority (up to the first / ? #); matched, never parsed strictly, so no input raises
_URL_HEAD = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]{0,31}):/*([^/?#]*)")
_TOKEN_SPLIT = re.compile(r"[/:@?&=#;,+\s]+")  # for a string that is not a URL
EMAIL_SCHEMES = ("mailto", "mailtos")


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

    @property
    def is_email(self) -> bool:
        return url_scheme(self.url) in EMAIL_SCHEMES


def url_scheme(url: str) -> str:
    """The scheme of an alert URL in lower case, '' when it has none. Total: never raises."""
    m = _URL_HEAD.match(url)
    return m.group(1).lower() if m else ""


def redact_url(url: str) -> str:
    """'mailto://smtp.example.com' for display: the scheme and a host, never users, tokens or paths.

    Total: any string gives a name and nothing raises (a password holding `]` or `[` made `urlsplit` raise
    "Invalid IPv6 URL" here, and that stopped every run before storage). What is not plainly a host name or
    an address is shown as '…'; what is not a URL at all as '…://…'.
    """
    m = _URL_HEAD.match(url)
    if not m:
        return "…://…"
    authority = m.group(2).rpartition("@")[2]
    host = authority.partition("]")[0] + "]" if authority.startswith("[") else authority.partition(":")[0]
    host = host.lower()
    return f"{m.group(1).lower()}://{host if _HOSTLIKE.fullmatch(host) else '…'}"


@lru_cache(maxsize=256)
def secret_fragments(url: str) -> tuple[str, ...]:
    """The parts of an alert URL that may be secret, longest first: the URL itself, its user info and password,
    a host that is not a host name (a token, as in `tgram://`), every query value, and every path segment of
    8+ characters; each also %-decoded. Parts shorter than 4 characters, the scheme and the host are left out.
    A library that logs a URL, or a token it could not use, logs one of these."""
    m = _URL_HEAD.match(url)
    if not m:
        found = {url.strip(), *(t for t in _TOKEN_SPLIT.split(url) if len(t) >= 8)}
        public: set[str] = set()
    else:
        authority = m.group(2)
        userinfo, _, hostport = authority.rpartition("@")
        path, _, query = url[m.end(2):].partition("?")
        loose = url[m.start(2):].rpartition("@")[0]  # user info as far as the last @ (a password with / ? #)
        found = {url.strip(), url[m.start(2):], userinfo, userinfo.partition(":")[2], loose, loose.partition(":")[2]}
        if not _HOSTLIKE.fullmatch(hostport.partition(":")[0]):
            found |= set(re.split(r"[:@]", authority))
        found |= {seg for seg in re.split(r"[/#]", path) if len(seg) >= 8}
        found |= {kv.partition("=")[2] or kv for kv in re.split(r"[&;#]", query)}
        public = {m.group(1), redact_url(url).partition("://")[2]}
    found |= {unquote(f) for f in found}
    return tuple(sorted((f for f in found if len(f) >= 4 and f not in public), key=lambda f: (-len(f), f)))


def scrub(text: str, urls: Iterable[str]) -> str:
    """`text` with every alert URL in it replaced by its redacted name, and every other secret part by '***'."""
    urls = [u for u in urls if u]
    for url in sorted(urls, key=len, reverse=True):
        if url in text:
            text = text.replace(url, redact_url(url))
    for fragment in sorted({f for u in urls for f in secret_fragments(u)}, key=lambda f: (-len(f), f)):
        text = text.replace(fragment, "***")
    return text


def all_channels(routes: Iterable[Route]) -> dict[str, Channel]:
    """Every configured channel by id (a URL in several routes is one channel)."""
    return {c.channel_id: c for r in routes for c in (Channel(u) for u in r.urls)}


def channel_routes(routes: Iterable[Route]) -> list[tuple[Channel, tuple[str, ...]]]:
    """Every configured channel once, in the config's order, with the names of the routes that send to it."""
    found: dict[str, tuple[Channel, list[str]]] = {}
    for r in routes:
        for u in r.urls:
            ch = Channel(u)
            names = found.setdefault(ch.channel_id, (ch, []))[1]
            if r.name not in names:
                names.append(r.name)
    return [(ch, tuple(names)) for ch, names in found.values()]


def route_channels(routes: Iterable[Route], event: str, *, watchlist: str | None = None,
                   labels: Sequence[str] = (), score: float = 0.0) -> list[Channel]:
    """The distinct channels whose routes take this alert: the event kind, then (for stories and spikes)
    the watchlist, then (for stories) any wanted label and the minimum score."""
    out: dict[str, Channel] = {}
    for r in routes:
        if event not in r.events:
            continue
        if watchlist is not None and r.watchlists and watchlist not in r.watchlists:
            continue
        if event == "story" and ((r.labels and not set(r.labels) & set(labels)) or score < r.min_score):
            continue
        for u in r.urls:
            out.setdefault(Channel(u).channel_id, Channel(u))
    return list(out.values())


def story_time(a: Article) -> datetime:
    return a.published_at or a.fetched_at


def plan_alerts(articles: Iterable[Article], verdicts: Iterable[Verdict], routes: Sequence[Route], *,
                clusters: Mapping[str, ClusterRecord], now: datetime, window: timedelta) -> list[AlertRecord]:
    """One pending alert per story cluster x watchlist x channel, for clusters first published inside the
    alert window. Older backlog (a new feed's archive, a late copy of an old story) is stored but never
    alerts; a copy of an already-alerted story plans the same alert id, which the ledger already holds."""
    by_id = {a.article_id: a for a in articles}
    out: dict[str, AlertRecord] = {}
    matched = sorted((v for v in verdicts if v.match and v.article_id in by_id),
                     key=lambda v: (story_time(by_id[v.article_id]), v.article_id))
    for v in matched:
        art = by_id[v.article_id]
        cluster_id = art.cluster_id or stable_id("cluster", art.article_id)
        cluster = clusters.get(cluster_id)
        first = min(cluster.first_published_at, story_time(art)) if cluster else story_time(art)
        if now - first > window:
            continue
        terms = tuple(sorted({e.text or e.term for e in v.evidence}))
        for ch in route_channels(routes, "story", watchlist=v.watchlist, labels=v.tags, score=v.score):
            alert_id = stable_id("alert", cluster_id, v.watchlist, ch.channel_id)
            out.setdefault(alert_id, AlertRecord(
                alert_id=alert_id, article_id=v.article_id, watchlist=v.watchlist, channel=ch.channel_id,
                status="pending", attempts=0, title=art.title, url=art.url, source=art.feed_name,
                published_at=art.published_at, score=v.score, labels=v.tags, evidence=terms,
                channel_name=ch.name, cluster_id=cluster_id, outlets=(art.feed_name,)))
    return list(out.values())


@dataclass(frozen=True)
class Delivery:
    """One message to one channel: a single alert, or a digest of several (all marked together)."""

    channel: str
    alerts: tuple[AlertRecord, ...]

    @property
    def is_digest(self) -> bool:
        return len(self.alerts) > 1

    @property
    def key(self) -> str:
        """The idempotency key sent with the message: the alert id, or one derived from every alert id."""
        if not self.is_digest:
            return self.alerts[0].alert_id
        return stable_id("digest", self.channel, *sorted(a.alert_id for a in self.alerts))


def plan_deliveries(pending: Sequence[AlertRecord], *, max_per_channel: int) -> list[Delivery]:
    """Group pending alerts into messages: per channel, story alerts go one by one up to `max_per_channel`,
    and all together as one digest beyond it (no storms); spike, feed and digest alerts always go alone."""
    out: list[Delivery] = []
    stories: dict[str, list[AlertRecord]] = {}
    for a in pending:
        if a.kind == "story":
            stories.setdefault(a.channel, []).append(a)
        else:
            out.append(Delivery(a.channel, (a,)))
    for channel, group in stories.items():
        if len(group) > max_per_channel:
            out.append(Delivery(channel, tuple(group)))
        else:
            out += [Delivery(channel, (a,)) for a in group]
    return out


def retry_delay(attempts: int, first: timedelta) -> timedelta:
    """Backoff before the next try after `attempts` failed ones: first, 2x, 4x, ... capped at one day."""
    factor: int = 2 ** max(attempts - 1, 0)  # typeshed types int ** int as Any (a negative power is a float)
    return min(first * factor, timedelta(days=1))
