"""Which polled entries are new stories, which are stored stories seen again, and which were edited (pure).

An entry is the stored story when any of its aliases (GUID, normalised link, title+date fingerprint) is
known, from the warehouse or from an earlier entry of the same run. So a feed that rotates GUIDs, a feed that
changes links, and one story carried by two feeds each give one article. An edit (same story, new title or
summary in the feed that brought it) updates the record and never alerts again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise

from newsmon.records import Entry, EntryEdit, FeedResult, StoredEntry

_NEWEST = datetime.max.replace(tzinfo=UTC)


@dataclass
class Resolution:
    new: list[Entry] = field(default_factory=list)  # entries to fetch and store, one per story
    edits: list[EntryEdit] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (alias, article_id) not remembered yet
    repeats: int = 0  # entries that were stories already known
    left: Counter[str] = field(default_factory=Counter)  # per feed URL: new entries over the cap, for later runs


def all_aliases(results: Sequence[FeedResult]) -> set[str]:
    """Every alias the warehouse must be asked about for these results."""
    return {a for r in results for e in r.entries for a in (e.aliases or (e.key,))}


def resolve_entries(results: Sequence[FeedResult], known: Mapping[str, StoredEntry], *,
                    now: datetime, max_per_feed: int | None = None) -> Resolution:
    """Sort every entry of `results` into new stories, repeats and edits; `known` maps aliases to stories.

    With `max_per_feed`, a feed gives at most that many new stories, its newest (`newest_first`); the others
    are counted in `left` and not remembered, so a later run, which sees them again, takes them then.
    """
    res = Resolution()
    this_run: dict[str, str] = {}
    edited: set[str] = set()
    for r in results:
        taken = 0
        for e in (newest_first(r.entries) if max_per_feed is not None else r.entries):
            aliases = e.aliases or (e.key,)
            stored = next((known[a] for a in aliases if a in known), None)
            article_id = stored.article_id if stored else next((this_run[a] for a in aliases if a in this_run), None)
            if article_id is None:
                if max_per_feed is not None and taken >= max_per_feed:
                    res.left[r.feed.url] += 1
                    continue
                taken += 1
                article_id = e.article_id
                res.new.append(e)
            else:
                res.repeats += 1
            for a in aliases:
                if a not in known and a not in this_run:
                    this_run[a] = article_id
                    res.aliases.append((a, article_id))
            if stored and article_id not in edited and _edited(e, stored):
                edited.add(article_id)
                res.edits.append(EntryEdit(article_id, e.title, e.summary, e.updated_at or now))
    return res


def _edited(entry: Entry, stored: StoredEntry) -> bool:
    """Only the feed that brought the story may edit it (two feeds may title one story differently)."""
    if entry.feed_url != stored.feed_url or not entry.title:
        return False
    return entry.title != stored.title or entry.summary != (stored.summary or "")


def newest_first(entries: Sequence[Entry]) -> list[Entry]:
    """A feed's entries, newest first: by date (published, else updated) where they have one.

    The feed's own order places the undated ones. Which end of it is the newest is read from the dates there
    are: when more neighbouring dated entries go up than down the feed lists oldest first and is read from the
    end; with no dates (or as many up as down) the top is the newest, as RSS and Atom feeds nearly always
    list. An undated entry sorts right after the nearest dated entry above it in that order (the newest of
    all when there is none above it).
    """
    dates = [d for e in entries if (d := e.published_at or e.updated_at)]
    steps = [(b > a) - (b < a) for a, b in pairwise(dates)]
    ordered = list(reversed(entries)) if sum(steps) > 0 else list(entries)
    keyed, carry = [], _NEWEST
    for i, e in enumerate(ordered):
        carry = e.published_at or e.updated_at or carry
        keyed.append((carry, -i, e))
    return [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]), reverse=True)]


def left_for_later(results: Sequence[FeedResult], left: Mapping[str, int], cap: int) -> list[FeedResult]:
    """Results whose feed had new entries over the cap say so (fetch_log), and keep none of this fetch's cache
    validators or body hash: the next poll then reads the whole feed again (no 304, no unchanged-body skip) and
    takes the next newest."""
    out = []
    for r in results:
        n = left.get(r.feed.url, 0)
        if n:
            note = (f"{n} new entries over max_entries_per_feed = {cap} were left for later "
                    "(the next runs take them, newest first)")
            r = replace(r, bozo=f"{r.bozo}; {note}" if r.bozo else note, etag=None, last_modified=None,
                        body_hash=None)
        out.append(r)
    return out
