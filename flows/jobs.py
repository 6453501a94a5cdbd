"""Maintenance jobs over the warehouse, as plain functions the CLI calls: re-tag and re-extract stored articles.

Neither fetches anything. Both walk the warehouse in id order, one batch at a time, so memory stays flat
however many articles are stored. Neither queues alerts: they revise history, and an alert for an old
story found by new rules would be noise (the next poll alerts on new stories as usual).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from extractors import pages
from flows.derive import to_verdict
from newsmon.records import Article, Verdict
from newsmon.tagging import Watchlist
from warehouse import Warehouse

RETAG_BATCH = 500
REEXTRACT_BATCH = 100


@dataclass(frozen=True)
class Flip:
    """A story that starts or stops matching a watchlist."""

    article_id: str
    title: str
    url: str
    watchlist: str
    old_match: bool | None  # None: never tagged with this watchlist
    old_score: float | None
    new_match: bool
    new_score: float

    @property
    def starts(self) -> bool:
        return self.new_match and not self.old_match


@dataclass
class JobReport:
    """What a re-tag or re-extract did (or, dry, would do)."""

    examined: int = 0
    changed_text: int = 0
    retagged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (article url, why)
    flips: list[Flip] = field(default_factory=list)
    rules_versions: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


def tag_articles(articles: Sequence[Article], watchlists: Sequence[Watchlist]) -> list[Verdict]:
    """Every article tagged with every watchlist."""
    return [to_verdict(a.article_id, wl.tag(a.title, a.text)) for a in articles for wl in watchlists]


def flips(articles: Sequence[Article], verdicts: Sequence[Verdict],
          stored: dict[tuple[str, str], tuple[bool, float, str]]) -> list[Flip]:
    """Verdicts whose match decision differs from the stored one (pure)."""
    by_id = {a.article_id: a for a in articles}
    out = []
    for v in verdicts:
        old = stored.get((v.article_id, v.watchlist))
        old_match, old_score = (old[0], old[1]) if old else (None, None)
        if bool(old_match) != v.match:
            art = by_id[v.article_id]
            out.append(Flip(v.article_id, art.title, art.url, v.watchlist, old_match, old_score, v.match, v.score))
    return out


def retag(wh: Warehouse, watchlists: Sequence[Watchlist], *, since: datetime | None, dry_run: bool,
          now: datetime) -> JobReport:
    """Re-tag stored articles with the current rules; with dry_run, only report what would flip."""
    report = JobReport(rules_versions={w.name: w.version for w in watchlists}, dry_run=dry_run)
    after = ""
    while batch := wh.archive.stored_articles(since=since, after=after, limit=RETAG_BATCH):
        after = batch[-1].article_id
        verdicts = tag_articles(batch, watchlists)
        report.flips += flips(batch, verdicts, wh.archive.stored_verdicts(a.article_id for a in batch))
        report.examined += len(batch)
        if not dry_run:
            wh.archive.replace_verdicts(verdicts, now=now)
            report.retagged += len(batch)
    return report


def reextract(wh: Warehouse, watchlists: Sequence[Watchlist], *, since: datetime | None, now: datetime,
              workers: int | None = None) -> JobReport:
    """Re-run extraction over kept raw pages; store changed text and metadata and re-tag those articles."""
    report = JobReport(rules_versions={w.name: w.version for w in watchlists})
    after = ""
    with pages.extraction_pool(REEXTRACT_BATCH, workers or pages.default_workers()) as pool:
        while batch := wh.archive.stored_raw_pages(since=since, after=after, limit=REEXTRACT_BATCH):
            after = batch[-1][0].article_id
            report.examined += len(batch)
            changed = []
            for result, (_, old) in zip(pages.reextract(batch, pool), batch, strict=True):
                if isinstance(result, str):
                    report.failed.append((old.url, result))
                elif _differs(result, old):
                    changed.append(result)
            wh.archive.update_articles(changed)
            verdicts = tag_articles(changed, watchlists)
            report.flips += flips(changed, verdicts, wh.archive.stored_verdicts(a.article_id for a in changed))
            wh.archive.replace_verdicts(verdicts, now=now)
            report.changed_text += len(changed)
            report.retagged += len(changed)
    return report


def _differs(new: Article, old: Article) -> bool:
    fields = ("content_hash", "canonical_url", "author", "site_name", "language", "extraction_status")
    return any(getattr(new, f) != getattr(old, f) for f in fields)
