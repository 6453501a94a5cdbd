"""Immutable records passed between stages. No I/O here."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple


def stable_id(*parts: str) -> str:
    """A short, stable hex id for a tuple of strings (article ids, alert keys)."""
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8"))
    return h.hexdigest()[:24]


def as_utc(moment: datetime | None) -> datetime | None:
    """`moment` in UTC; a naive one is taken to be UTC already."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_SCHEME_WWW = re.compile(r"^[a-z][a-z0-9+.-]*://(?:www\.)?")


def url_key(url: str) -> str:
    """A URL reduced for dedup: lower case, no scheme, no leading www., no fragment, no trailing slash.

    warehouse/schema.py backfills stored articles with the same rule written in SQL; keep them in step.
    """
    key = _SCHEME_WWW.sub("", url.strip().lower(), count=1)
    return key.split("#", 1)[0].rstrip("/")


@dataclass(frozen=True)
class FeedSpec:
    """A feed as configured: a name for people and a URL for machines."""

    name: str
    url: str


@dataclass(frozen=True)
class FeedState:
    """What the warehouse remembers about a feed between polls: conditional GET validators, the URL a
    permanent redirect moved it to, and its failure/backoff schedule."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    consecutive_failures: int = 0
    next_poll_at: datetime | None = None
    effective_url: str | None = None
    last_status: int | None = None
    last_success_at: datetime | None = None  # the last poll that worked (a 304 too); None: never


@dataclass(frozen=True)
class Entry:
    """One item of a feed, as parsed; `key` identifies the story across polls.

    `aliases` are every identity the entry can be recognised by later (its GUID, its normalised link, a
    title+date fingerprint), so a feed that rotates GUIDs or changes links still maps to the stored story.
    """

    feed_url: str
    key: str
    link: str
    title: str
    summary: str = ""
    guid: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None
    language: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def article_id(self) -> str:
        """The same story reached through two feeds of one outlet is one article."""
        return stable_id(self.key)


@dataclass(frozen=True)
class FeedResult:
    """The outcome of polling one feed: entries, or a recorded error, never an exception."""

    feed: FeedSpec
    fetched_at: datetime
    status: int | None = None
    entries: tuple[Entry, ...] = ()
    error: str | None = None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    bozo: str | None = None
    elapsed_s: float = 0.0
    next_poll_at: datetime | None = None
    effective_url: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def gone(self) -> bool:
        """HTTP 410: the publisher removed the feed (reported loudly, still polled on the backoff cap)."""
        return self.status == 410


@dataclass(frozen=True)
class StoredEntry:
    """What the warehouse knows about a story an alias points at (to tell an edit from a repeat)."""

    article_id: str
    feed_url: str
    title: str
    summary: str


@dataclass(frozen=True)
class EntryEdit:
    """A stored story whose feed entry changed title or summary: updated in place, never alerted again."""

    article_id: str
    title: str
    summary: str
    updated_at: datetime


@dataclass(frozen=True)
class Page:
    """A fetched article page (bytes kept only as long as extraction needs them)."""

    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes
    encoding: str | None = None


@dataclass(frozen=True)
class RawPage:
    """A fetched page kept compressed for re-extraction (only with [extraction] keep_raw_pages = true)."""

    article_id: str
    url: str  # the final URL after redirects, which extraction resolves relative links against
    content_type: str | None
    charset: str | None
    codec: str  # 'zstd' | 'gzip'
    body: bytes
    raw_bytes: int
    fetched_at: datetime


@dataclass(frozen=True)
class Alias:
    """A feed entry whose page turned out to be an article already stored (same canonical URL)."""

    alias_id: str  # the article_id the entry would have had
    article_id: str  # the stored (or earlier in this run) article it duplicates
    url: str
    url_key: str


@dataclass(frozen=True)
class ExtractedText:
    """What extraction made of a page: text and metadata, with how it went."""

    text: str
    title: str | None = None
    author: str | None = None
    site_name: str | None = None
    published_at: datetime | None = None
    canonical_url: str | None = None
    language: str | None = None
    status: str = "ok"  # ok | recall | summary | failed
    note: str | None = None


@dataclass(frozen=True)
class Article:
    """A stored story: the entry, its page and the extracted text."""

    article_id: str
    feed_url: str
    feed_name: str
    entry_key: str
    url: str
    title: str
    summary: str
    text: str
    fetched_at: datetime
    canonical_url: str | None = None
    author: str | None = None
    site_name: str | None = None
    language: str | None = None
    published_at: datetime | None = None
    word_count: int = 0
    extraction_status: str = "ok"
    extraction_note: str | None = None
    content_hash: str = field(default="")
    cluster_id: str | None = None  # the story cluster (near-duplicate copies across outlets) it belongs to
    updated_at: datetime | None = None
    guid: str | None = None

    @property
    def url_key(self) -> str:
        """The dedup key: two URLs of one story share it when one page declares the other canonical."""
        return url_key(self.canonical_url or self.url)

    @staticmethod
    def hash_content(title: str, text: str) -> str:
        """Hash of what a reader sees; volatile fields (fetch time, status) are left out."""
        return stable_id(" ".join(title.split()), " ".join(text.split()))


@dataclass(frozen=True)
class ClusterRecord:
    """A story cluster: near-duplicate articles (syndicated wire copy) across outlets.

    `signature` is the MinHash of the seed article's text; later articles are compared against it: a tuple
    as signed, an `array("I")` as read back from the state database (512 bytes instead of 128 Python ints:
    ~21 MB less for a 3-day window of a story a minute).
    `first_published_at` is the earliest publication (else fetch) time of any member.
    """

    cluster_id: str
    seed_article_id: str
    title: str
    first_published_at: datetime
    created_at: datetime
    signature: Sequence[int] = ()


@dataclass(frozen=True)
class StoryMatch:
    """A matching story as messages show it: its best article for one watchlist, every outlet that carried
    it, and the evidence (matched words, snippets). Digests list these; a story alert carries one."""

    article_id: str
    watchlist: str
    title: str
    url: str
    source: str
    published_at: datetime | None
    score: float
    labels: tuple[str, ...]
    evidence: tuple[str, ...]
    cluster_id: str | None = None
    outlets: tuple[str, ...] = ()
    snippets: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertRecord:
    """A ledger row: a story cluster x watchlist x channel (kind 'story'), or a spike, feed-health or
    digest alert x channel (a notice: `subject` and `body` fixed when queued). `alert_id` is also the
    idempotency key every payload carries."""

    alert_id: str
    article_id: str
    watchlist: str
    channel: str
    status: str = "pending"
    attempts: int = 0
    title: str = ""
    url: str = ""
    source: str = ""
    published_at: datetime | None = None
    score: float = 0.0
    labels: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    channel_name: str = ""
    kind: str = "story"  # story | spike | feed | digest
    cluster_id: str | None = None
    outlets: tuple[str, ...] = ()  # every outlet that carried the story (filled in when read back)
    snippets: tuple[str, ...] = ()  # evidence snippets (filled in when read back)
    subject: str = ""  # spike / feed / digest alerts: what it is about (watchlist, feed URL, period)
    body: str = ""  # spike / feed / digest alerts: the message, fixed when queued

    @classmethod
    def notice(cls, alert_id: str, kind: str, *, channel: str, channel_name: str, subject: str, body: str,
               watchlist: str = "", url: str = "", source: str = "") -> AlertRecord:
        """A spike, feed-health or digest alert: a fixed message, about no single article."""
        return cls(alert_id, "", watchlist, channel, title=subject, url=url, source=source,
                   channel_name=channel_name, kind=kind, subject=subject, body=body)

    def story(self) -> StoryMatch:
        """What a story alert says about its story (as a digest lists it)."""
        return StoryMatch(self.article_id, self.watchlist, self.title, self.url, self.source, self.published_at,
                          self.score, self.labels, self.evidence, self.cluster_id,
                          self.outlets or ((self.source,) if self.source else ()), self.snippets)


@dataclass(frozen=True)
class FeedStatus:
    """A feed's failure state as the warehouse knows it (input of the feed-health alert)."""

    url: str
    name: str
    consecutive_failures: int
    last_success_at: datetime | None
    first_polled_at: datetime | None
    last_error: str | None
    silent: bool = False                      # polls succeed, but no new story for far longer than usual
    last_new_at: datetime | None = None       # when its newest story was first seen
    usual_gap_hours: float | None = None


class Evidence(NamedTuple):
    """Why a label scored: a rule term found at [start, end) of the original title or text.

    `term` is the rule pattern (``азербайдж*``), `text` the words as published (``Азербайджаном``).
    A relation between the two sides of a pair (concept ``relation``) quotes its clause as `snippet`,
    spans both sides and the cue that links them (`term` = their patterns in text order, joined by
    `` … ``), and names the two sides as published in `sides`; a side set aside (Russia as the venue,
    the mediator or the thing avoided) is negative evidence of the same shape, that side first.
    A named tuple rather than a frozen dataclass: a dense article yields ~20 of these, and building
    frozen dataclasses was a fifth of the tagger's time.
    """

    label: str
    term: str
    concept: str
    where: str  # 'title' | 'lead' | 'body'
    start: int
    end: int
    snippet: str
    weight: float
    text: str = ""
    sides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The fields as a dict; `sides` only when set (term evidence keeps its old shape)."""
        d = self._asdict()
        if self.sides:
            d["sides"] = list(self.sides)
        else:
            del d["sides"]
        return d


@dataclass(frozen=True)
class Verdict:
    """What one watchlist decided about one article (stored with its evidence and rules version)."""

    article_id: str
    watchlist: str
    rules_version: str
    match: bool
    score: float
    tags: tuple[str, ...]
    scores: tuple[tuple[str, float], ...]
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class RunBatch:
    """Everything one poll run writes, stored in one transaction."""

    run_id: str
    config_name: str
    started_at: datetime
    feed_results: tuple[FeedResult, ...]
    articles: tuple[Article, ...]
    verdicts: tuple[Verdict, ...]
    alerts: tuple[AlertRecord, ...]
    page_errors: tuple[tuple[str, str, str], ...] = ()  # (feed_url, page url, error)
    clusters: tuple[ClusterRecord, ...] = ()  # clusters created or joined by this run's articles
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, article_id): identities to remember
    edits: tuple[EntryEdit, ...] = ()
    url_aliases: tuple[Alias, ...] = ()  # entries not stored because their canonical URL was
    # (feed_url, page url, why): pages not fetched because a time budget ran out; nothing of their entries is
    # stored, so the next run fetches them
    pages_left: tuple[tuple[str, str, str], ...] = ()
