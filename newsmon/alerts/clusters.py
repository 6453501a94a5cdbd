"""Story clusters (pure): near-duplicate articles across outlets (syndicated wire copy, lightly edited).

Each article gets a MinHash signature over 3-word shingles of its title and text. A new article joins the
most similar recent cluster whose seed signature is at least `threshold` similar (estimated Jaccard), else it
seeds a new cluster. Only recent clusters are compared (the caller passes them, e.g. the last few days), and a
MinHash LSH index finds the candidates, so the cost per article does not grow with the warehouse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from datasketch import LeanMinHash, MinHash, MinHashLSH

from newsmon.records import Article, ClusterRecord, stable_id

NUM_PERM = 128
SCHEME = "affine32"  # 32-bit hash values: stored as UINTEGER[] in the warehouse
SHINGLE_WORDS = 3
MIN_SHINGLES = 8  # texts shorter than this (a bare headline) are never merged with anything
TEXT_WORDS = 1500  # the lead of a long article is enough to recognise a copy
_WORD = re.compile(r"\w+", re.UNICODE)
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations  # made once: the costly part of a MinHash


def shingles(title: str, text: str) -> set[bytes]:
    """Word 3-grams of the lower-cased title and text (punctuation and spacing ignored)."""
    words = _WORD.findall(f"{title} {text}".casefold())[:TEXT_WORDS]
    n = SHINGLE_WORDS
    return {" ".join(words[i:i + n]).encode("utf-8") for i in range(max(len(words) - n + 1, 0))}


def signature(title: str, text: str) -> MinHash | None:
    """The MinHash of a story, or None when it is too short to be compared safely."""
    grams = shingles(title, text)
    if len(grams) < MIN_SHINGLES:
        return None
    mh = MinHash(num_perm=NUM_PERM, scheme=SCHEME, permutations=_PERMUTATIONS)
    mh.update_batch(list(grams))
    return mh


def similarity(a: Article, b: Article) -> float:
    """Estimated Jaccard similarity of two articles' shingles (0 when either is too short)."""
    sa, sb = signature(a.title, a.text), signature(b.title, b.text)
    return float(sa.jaccard(sb)) if sa is not None and sb is not None else 0.0


def _lean(hashvalues: Sequence[int] | None) -> LeanMinHash | None:
    """A signature from its stored or precomputed hash values."""
    return LeanMinHash(seed=1, hashvalues=list(hashvalues), scheme=SCHEME) if hashvalues else None


def story_time(a: Article) -> datetime:
    return a.published_at or a.fetched_at


class _Index:
    """Recent cluster seeds in an LSH index; best match by estimated Jaccard."""

    def __init__(self, recent: Iterable[ClusterRecord], threshold: float) -> None:
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.seeds: dict[str, tuple[ClusterRecord, MinHash]] = {}
        for c in recent:
            if len(c.signature) == NUM_PERM and c.cluster_id not in self.seeds:
                self.add(c, _lean(c.signature))

    def add(self, cluster: ClusterRecord, mh: MinHash) -> None:
        self.seeds[cluster.cluster_id] = (cluster, mh)
        self.lsh.insert(cluster.cluster_id, mh)

    def best(self, mh: MinHash) -> ClusterRecord | None:
        scored = [(float(self.seeds[k][1].jaccard(mh)), k) for k in self.lsh.query(mh)]
        scored = [s for s in scored if s[0] >= self.threshold]
        return self.seeds[max(scored)[1]][0] if scored else None


def assign_clusters(articles: Sequence[Article], recent: Iterable[ClusterRecord], *, threshold: float,
                    now: datetime, signatures: Mapping[str, Sequence[int] | None] | None = None,
                    ) -> tuple[list[Article], list[ClusterRecord]]:
    """Give every article a cluster id: an existing recent cluster it copies, or a new one it seeds.

    `signatures` (article id -> MinHash hash values, or None for a text too short) are used where given,
    e.g. worked out in parallel beforehand; other articles are signed here.
    Returns the articles (with `cluster_id` set, input order kept) and every cluster they created or
    joined (a joined cluster's `first_published_at` is lowered when an earlier-dated copy turns up).
    """
    given = signatures or {}
    index = _Index(recent, threshold)
    touched: dict[str, ClusterRecord] = {}
    assigned: dict[str, str] = {}
    for a in sorted(articles, key=lambda x: (story_time(x), x.article_id)):
        mh = _lean(given[a.article_id]) if a.article_id in given else signature(a.title, a.text)
        hit = index.best(mh) if mh is not None else None
        if hit is None:
            hit = ClusterRecord(stable_id("cluster", a.article_id), a.article_id, a.title, story_time(a), now,
                                tuple(int(x) for x in mh.hashvalues) if mh is not None else ())
            if mh is not None:
                index.add(hit, mh)
        cluster = touched.get(hit.cluster_id, hit)
        touched[hit.cluster_id] = replace(cluster, first_published_at=min(cluster.first_published_at,
                                                                          story_time(a)))
        assigned[a.article_id] = hit.cluster_id
    return [replace(a, cluster_id=assigned[a.article_id]) for a in articles], list(touched.values())
