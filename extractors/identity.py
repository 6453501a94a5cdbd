"""Which polled entries are new stories, which are stored stories seen again, and which were edited (pure).

An entry is the stored story when any of its aliases (GUID, normalised link, title+date fingerprint) is
known, from the warehouse or from an earlier entry of the same run. So a feed that rotates GUIDs, a feed that
changes links, and one story carried by two feeds each give one article. An edit (same story, new title or
summary in the feed that brought it) updates the record and never alerts again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from newsmon.records import Entry, EntryEdit, FeedResult, StoredEntry


@dataclass
class Resolution:
    new: list[Entry] = field(default_factory=list)  # entries to fetch and store, one per story
    edits: list[EntryEdit] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (alias, article_id) not remembered yet
    repeats: int = 0  # entries that were stories already known


def all_aliases(results: Sequence[FeedResult]) -> set[str]:
    """Every alias the warehouse must be asked about for these results."""
    return {a for r in results for e in r.entries for a in (e.aliases or (e.key,))}


def resolve_entries(results: Sequence[FeedResult], known: Mapping[str, StoredEntry], *,
                    now: datetime) -> Resolution:
    """Sort every entry of `results` into new stories, repeats and edits; `known` maps aliases to stories."""
    res = Resolution()
    this_run: dict[str, str] = {}
    edited: set[str] = set()
    for r in results:
        for e in r.entries:
            aliases = e.aliases or (e.key,)
            stored = next((known[a] for a in aliases if a in known), None)
            article_id = stored.article_id if stored else next((this_run[a] for a in aliases if a in this_run), None)
            if article_id is None:
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
