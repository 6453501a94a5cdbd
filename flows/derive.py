"""The per-article half of the tag stage, run in the extraction pool: verdicts and cluster signatures.

Neither needs the warehouse, so chunks of articles go to the pool's workers (every core) while the flow
process only merges the answers; clustering then compares signatures, which is cheap. This module is what
the workers import for it: it must stay light (no Prefect, no DuckDB).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from functools import lru_cache, partial
from pathlib import Path

from newsmon.alerts.clusters import HashValues, hash_values
from newsmon.records import Article, Verdict
from newsmon.tagging import TagResult, Watchlist, load_watchlists

POOL_PRELOAD = (__name__,)  # what a run's extraction pool imports besides the extractors: this module
CHUNK = 40  # articles per job: ~0.1 s of work, so both workers stay busy to the end
Signature = HashValues | None  # None for a text too short to compare


def to_verdict(article_id: str, r: TagResult) -> Verdict:
    return Verdict(article_id=article_id, watchlist=r.watchlist, rules_version=r.rules_version, match=r.match,
                   score=r.score, tags=tuple(r.tags), scores=tuple(r.scores),
                   evidence=r.evidence)


def tag_and_sign(articles: Sequence[Article], rules: Sequence[Path],
                 pool: Executor) -> tuple[list[Verdict], dict[str, Signature]]:
    """Every article's verdicts (article order, then watchlist order) and signature, worked out in `pool`."""
    job = partial(derive_chunk, tuple(str(r) for r in rules))
    chunks = [[(a.article_id, a.title, a.text) for a in articles[i:i + CHUNK]] for i in range(0, len(articles), CHUNK)]
    verdicts: list[Verdict] = []
    signatures: dict[str, Signature] = {}
    for chunk, answers in zip(chunks, pool.map(job, chunks), strict=True):
        for (article_id, _, _), (found, sig) in zip(chunk, answers, strict=True):
            verdicts += found
            signatures[article_id] = sig
    return verdicts, signatures


def derive_chunk(rules: tuple[str, ...],
                 items: Sequence[tuple[str, str, str]]) -> list[tuple[list[Verdict], Signature]]:
    """(verdicts, signature) of each (article_id, title, text): what a pool worker runs."""
    watchlists = _watchlists(rules)
    return [([to_verdict(article_id, wl.tag(title, text)) for wl in watchlists], hash_values(title, text))
            for article_id, title, text in items]


@lru_cache(maxsize=4)
def _watchlists(rules: tuple[str, ...]) -> tuple[Watchlist, ...]:
    """Watchlists parsed once per worker process (the rules files do not change during a run)."""
    return load_watchlists([Path(r) for r in rules])
