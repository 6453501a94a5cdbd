"""What the report shows, as frozen values, and the pure steps that build them from warehouse rows.

Nothing here touches the warehouse, the clock or the file system: `data.py` runs the queries and hands
the rows to these functions; `render.py` turns the result into HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

Span = tuple[int, int]

SNIPPETS_PER_STORY = 2


@dataclass(frozen=True)
class Copy:
    """One article of a story cluster: the same story as one outlet carried it."""

    article_id: str
    title: str
    url: str
    source: str
    language: str
    seen_at: datetime  # published_at, else fetched_at
    score: float
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Marked:
    """A piece of text and the character spans in it to highlight."""

    text: str
    marks: tuple[Span, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """One matched rule term of an article, as stored in `tags.evidence`."""

    label: str
    where: str  # 'title' | 'lead' | 'body'
    start: int
    end: int
    snippet: str
    weight: float
    surface: str  # the matched text itself: title/text[start:end]


@dataclass(frozen=True)
class Story:
    """A cluster of matching articles (one article until clustering lands), newest first in the report."""

    key: str
    headline: Marked
    url: str
    copies: tuple[Copy, ...]
    score: float
    labels: tuple[str, ...]
    sources: tuple[str, ...]
    languages: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    snippets: tuple[Marked, ...]


@dataclass(frozen=True)
class FeedRow:
    name: str
    url: str
    state: str  # 'failing' | 'silent' | 'ok' | 'never polled'
    last_status: int | None
    failures: int
    last_success_at: datetime | None
    newest_article_at: datetime | None
    articles_stored: int
    last_error: str
    last_result: str = ""  # feed_health.last_result: "ok (HTTP 200)", "parse error (HTTP 200)", "timeout", ...


@dataclass(frozen=True)
class RuleCount:
    watchlist: str
    rules_version: str
    rule: str  # a label name, or MATCH_RULE for the watchlist's match expression
    stories: int


MATCH_RULE = "(watchlist match)"


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    start: datetime
    articles_total: int
    matches_total: int
    stories_total: int  # clusters before the display cap
    stories: tuple[Story, ...]
    clustered: bool
    days: tuple[date, ...]
    per_label: Mapping[str, tuple[int, ...]]  # label -> matches per day (aligned with days)
    per_source: Mapping[str, tuple[int, ...]]
    spikes: tuple[tuple[date, str], ...]  # (day, watchlist) where a spike alert fired
    feeds: tuple[FeedRow, ...]
    rules: tuple[RuleCount, ...]


# -- stories ---------------------------------------------------------------------------------------


def build_stories(copies: Sequence[tuple[str, Copy]], evidence: Mapping[str, Sequence[Evidence]],
                  *, limit: int) -> tuple[tuple[Story, ...], int]:
    """(cluster key, copy) rows -> stories newest first, at most `limit`; also the number before the cap."""
    groups: dict[str, list[Copy]] = {}
    for key, copy in copies:
        groups.setdefault(key, []).append(copy)
    stories = [_story(key, members, evidence) for key, members in groups.items()]
    stories.sort(key=lambda s: (s.last_seen, s.score, s.key), reverse=True)
    return tuple(stories[:limit]), len(stories)


def _story(key: str, members: list[Copy], evidence: Mapping[str, Sequence[Evidence]]) -> Story:
    by_article: dict[str, Copy] = {}
    for c in members:  # one row per article x watchlist: keep the best score, merge labels
        old = by_article.get(c.article_id)
        if old is not None:
            c = _merge(old, c)
        by_article[c.article_id] = c
    copies = sorted(by_article.values(), key=lambda c: (c.seen_at, c.source))
    head = copies[0]
    best = max(copies, key=lambda c: c.score)
    return Story(
        key=key, headline=mark_title(head.title, evidence.get(head.article_id, ())), url=head.url,
        copies=tuple(copies), score=best.score, labels=_union(c.labels for c in copies),
        sources=_union((c.source,) for c in copies), languages=_union((c.language,) for c in copies),
        first_seen=head.seen_at, last_seen=max(c.seen_at for c in copies),
        snippets=story_snippets(evidence.get(best.article_id, ())))


def _merge(a: Copy, b: Copy) -> Copy:
    top = a if a.score >= b.score else b
    return Copy(top.article_id, top.title, top.url, top.source, top.language, top.seen_at, top.score,
                _union((a.labels, b.labels)))


def _union(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for g in groups:
        out.update((x, None) for x in g if x)
    return tuple(out)


# -- evidence highlighting -----------------------------------------------------------------------------


def mark_title(title: str, evidence: Sequence[Evidence]) -> Marked:
    """The title with the exact spans its title evidence points at (offsets are into the stored title)."""
    spans = [(e.start, e.end) for e in evidence
             if e.where == "title" and e.weight > 0 and 0 <= e.start < e.end <= len(title)
             and title[e.start:e.end] == e.surface]
    return Marked(title, merge_spans(spans))


def story_snippets(evidence: Sequence[Evidence], limit: int = SNIPPETS_PER_STORY) -> tuple[Marked, ...]:
    """The strongest distinct text snippets (title evidence is shown on the headline instead)."""
    surfaces = {" ".join(e.surface.split()) for e in evidence if e.weight > 0 and e.surface.strip()}
    out: list[Marked] = []
    taken: list[Evidence] = []
    for e in sorted(evidence, key=lambda e: -e.weight):
        if e.where == "title" or e.weight <= 0 or not e.snippet or any(_overlaps(e, t) for t in taken):
            continue
        taken.append(e)
        out.append(mark_snippet(e, surfaces))
        if len(out) == limit:
            break
    return tuple(out)


def _overlaps(a: Evidence, b: Evidence) -> bool:
    """Two snippets that would show mostly the same words (each spans ~60 characters either side)."""
    return a.snippet == b.snippet or (a.where != "title" and b.where != "title" and abs(a.start - b.start) < 60)


def mark_snippet(e: Evidence, surfaces: Iterable[str]) -> Marked:
    """Highlight the evidence's own match in its snippet, and every other evidence term found there.

    The tagger cuts a snippet as `…` + whitespace-collapsed text[start - 60 : end + 60] + `…`, so the
    match sits near the snippet's start + min(start, 60); that picks the right one of repeated words.
    """
    s = e.snippet
    own = " ".join(e.surface.split())
    expected = min(e.start, 60) + (1 if s.startswith("…") else 0)
    spans = []
    hits = [m.span() for m in _word(own).finditer(s)] if own else []
    if hits:
        spans.append(min(hits, key=lambda span: abs(span[0] - expected)))
    for other in surfaces:
        if other and other != own:
            spans += [m.span() for m in _word(other).finditer(s)]
    return Marked(s, merge_spans(spans))


def _word(text: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(text) + r"(?!\w)", re.IGNORECASE)


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, non-overlapping spans (overlapping or touching ones joined)."""
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


# -- chart series, feeds, rules ------------------------------------------------------------------------


def day_range(start: datetime, end: datetime) -> tuple[date, ...]:
    first, last = start.date(), end.date()
    return tuple(first + timedelta(days=i) for i in range((last - first).days + 1))


def series(rows: Iterable[tuple[date, str, int]], days: Sequence[date], *, top: int = 0,
           other: str = "other") -> dict[str, tuple[int, ...]]:
    """(day, name, count) rows -> name -> counts aligned with `days`, biggest first; past `top` names
    the rest are summed into `other`."""
    index = {d: i for i, d in enumerate(days)}
    counts: dict[str, list[int]] = {}
    for day, name, n in rows:
        if day in index:
            counts.setdefault(name or "?", [0] * len(days))[index[day]] += int(n)
    ranked = sorted(counts.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    if top and len(ranked) > top:
        rest = [sum(col) for col in zip(*(v for _, v in ranked[top - 1:]), strict=True)]
        ranked = ranked[:top - 1] + [(other, rest)]
    return {name: tuple(v) for name, v in ranked}


def feed_row(row: Mapping[str, Any], *, now: datetime, silent_after: timedelta) -> FeedRow:
    """A `feed_health` row -> FeedRow with its state; a `silent` column, when the view has one, wins."""
    failures = int(row.get("consecutive_failures") or 0)
    success, newest = row.get("last_success_at"), row.get("newest_article_at")
    if "silent" in row:
        silent = bool(row["silent"])
    else:
        last_news = newest or success
        silent = success is not None and (last_news is None or now - last_news > silent_after)
    if failures > 0 or (row.get("last_error") and success is None):
        state = "failing"
    elif row.get("last_polled_at") is None:
        state = "never polled"
    else:
        state = "silent" if silent else "ok"
    return FeedRow(name=str(row.get("name") or row.get("url") or ""), url=str(row.get("url") or ""),
                   state=state, last_status=row.get("last_status"), failures=failures, last_success_at=success,
                   newest_article_at=newest, articles_stored=int(row.get("articles_stored") or 0),
                   last_error=str(row.get("last_error") or ""), last_result=str(row.get("last_result") or ""))


FEED_ORDER = {"failing": 0, "silent": 1, "never polled": 2, "ok": 3}


def sort_feeds(rows: Iterable[FeedRow]) -> tuple[FeedRow, ...]:
    return tuple(sorted(rows, key=lambda f: (FEED_ORDER.get(f.state, 9), -f.failures, f.name.lower())))
