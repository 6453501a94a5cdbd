"""Story clusters (pure): near-duplicate articles across outlets (syndicated wire copy, lightly edited).

Each article gets a MinHash signature over 3-word shingles of its title and text. A new article joins the
most similar recent cluster whose seed signature is at least `threshold` similar (estimated Jaccard), else it
seeds a new cluster. Only recent clusters are compared (the caller passes them, e.g. the last few days), and a
MinHash LSH index finds the candidates, so the cost per article does not grow with the warehouse.

Signatures, their comparison and the index are datasketch's MinHash ("affine32") and MinHashLSH, value for
value, in a few lines of numpy: importing datasketch imports scipy (~0.6 s and ~60 MB in every process that
signs or clusters stories). The tests check both against datasketch. numpy itself (~17 MB, ~0.06 s) is imported
on first use, by signing only (the extraction workers): comparing signatures and choosing the index's bands is
plain Python, so the flow process that clusters a run's stories never imports it.
"""

from __future__ import annotations

import hashlib
import math
import re
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from newsmon.records import Article, ClusterRecord, stable_id

NUM_PERM = 128
SCHEME = "affine32"  # datasketch's name for the scheme: 32-bit hash values, stored as UINTEGER[] in the warehouse
SEED = 1
SHINGLE_WORDS = 3
MIN_SHINGLES = 8  # texts shorter than this (a bare headline) are never merged with anything
TEXT_WORDS = 1500  # the lead of a long article is enough to recognise a copy
_WORD = re.compile(r"\w+", re.UNICODE)
HashValues = tuple[int, ...]

if TYPE_CHECKING:
    import numpy as np


def shingles(title: str, text: str) -> set[bytes]:
    """Word 3-grams of the lower-cased title and text (punctuation and spacing ignored)."""
    words = _WORD.findall(f"{title} {text}".casefold())[:TEXT_WORDS]
    n = SHINGLE_WORDS
    return {" ".join(words[i:i + n]).encode("utf-8") for i in range(max(len(words) - n + 1, 0))}


def hash_values(title: str, text: str) -> HashValues | None:
    """A story's MinHash signature (NUM_PERM 32-bit values), or None when it is too short to be compared safely.

    datasketch's MinHash with its "affine32" scheme and seed 1, value for value (the warehouse keeps signatures
    made by it): each shingle's SHA-1, its first 4 bytes little-endian, mixed by MurmurHash3's 32-bit finalizer,
    then per permutation a * h + b modulo 2^32 (numpy's uint32 arithmetic wraps), and the least value per
    permutation. Made here in numpy instead of importing datasketch, which imports scipy; most of the ~0.7 ms of a
    5 KB page is one SHA-1 per shingle, whose first 4 bytes go to numpy as one buffer.
    """
    grams = shingles(title, text)
    if len(grams) < MIN_SHINGLES:
        return None
    import numpy as np

    sha1 = hashlib.sha1
    digests = b"".join([sha1(g).digest()[:4] for g in grams])  # one buffer: no Python int per shingle
    h = np.frombuffer(digests, dtype="<u4").astype(np.uint32)[:, None]
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    a, b = _permutations()
    return tuple((h * a + b).min(axis=0).tolist())


@cache
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """The affine permutations (odd a, any b) as datasketch draws them from numpy's seeded legacy generator."""
    import numpy as np

    gen = np.random.RandomState(SEED)
    a = gen.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures: the share of hash values they agree on."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def similarity(a: Article, b: Article) -> float:
    """Estimated Jaccard similarity of two articles' shingles (0 when either is too short)."""
    sa, sb = hash_values(a.title, a.text), hash_values(b.title, b.text)
    return jaccard(sa, sb) if sa is not None and sb is not None else 0.0


@cache
def bands(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) of the LSH index for `threshold`: the pair with the least false positive plus
    false negative probability mass, as datasketch's MinHashLSH chooses it. Two signatures are candidates
    when all rows of one band agree, with probability 1 - (1 - s^r)^b at similarity s; that is a polynomial of
    degree b * r <= num_perm, so Gauss-Legendre quadrature on num_perm / 2 + 1 nodes integrates it exactly.
    Plain Python (~0.02 s once per threshold): the flow process that clusters then never imports numpy (~12 MB)."""
    nodes, weights = _gauss_legendre(num_perm // 2 + 1)
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]

    def area(b: int, r: int, lo: float, hi: float) -> float:  # of the candidate probability over [lo, hi]
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        return half * math.fsum(w * (1 - (1 - (half * x + mid) ** r) ** b) for x, w in zip(nodes, weights, strict=True))

    error = [0.5 * area(b, r, 0.0, threshold) + 0.5 * ((1 - threshold) - area(b, r, threshold, 1.0))
             for b, r in pairs]
    return pairs[min(range(len(pairs)), key=error.__getitem__)]  # the first of equals, as datasketch's loop keeps it


def _gauss_legendre(n: int) -> tuple[list[float], list[float]]:
    """Nodes and weights of n-point Gauss-Legendre quadrature on [-1, 1]: the roots of the Legendre polynomial
    P_n by Newton's method from the usual cosine guesses, each weight 2 / ((1 - x^2) P_n'(x)^2)."""
    nodes: list[float] = []
    weights: list[float] = []
    for i in range(n):
        x = math.cos(math.pi * (i + 0.75) / (n + 0.5))
        for _ in range(100):
            p, q = 1.0, 0.0  # P_k(x), P_(k-1)(x), by the three-term recurrence
            for k in range(1, n + 1):
                p, q = ((2 * k - 1) * x * p - (k - 1) * q) / k, p
            slope = n * (x * p - q) / (x * x - 1)
            step = p / slope
            x -= step
            if abs(step) <= 1e-16:
                break
        nodes.append(x)
        weights.append(2 / ((1 - x * x) * slope * slope))
    return nodes, weights


def story_time(a: Article) -> datetime:
    return a.published_at or a.fetched_at


class _Index:
    """Recent cluster seeds in an LSH index (a table per band of rows); best match by estimated Jaccard.

    Signatures are kept as `array("I")` and band keys as their bytes, and a key that one seed alone holds
    maps to its cluster id, not to a list: for a 3-day window of a story a minute (4,320 seeds, 25 bands)
    tuples of ints and a list per key took ~43 MB of the flow process, rebuilt for every stored part."""

    def __init__(self, recent: Iterable[ClusterRecord], threshold: float) -> None:
        self.threshold = threshold
        self.bands, self.rows = bands(threshold)
        self.tables: list[dict[bytes, str | list[str]]] = [{} for _ in range(self.bands)]
        self.seeds: dict[str, tuple[ClusterRecord, array[int]]] = {}
        for c in recent:
            if len(c.signature) == NUM_PERM and c.cluster_id not in self.seeds:
                self.add(c, c.signature)

    def _keys(self, hv: Sequence[int]) -> Iterable[tuple[dict[bytes, str | list[str]], bytes]]:
        raw, step = _packed(hv).tobytes(), self.rows * _WORD_BYTES
        return ((table, raw[i * step:(i + 1) * step]) for i, table in enumerate(self.tables))

    def add(self, cluster: ClusterRecord, hv: Sequence[int]) -> None:
        packed, cid = _packed(hv), cluster.cluster_id
        self.seeds[cid] = (cluster, packed)
        for table, key in self._keys(packed):
            held = table.setdefault(key, cid)
            if held is not cid:  # the key is another seed's too
                if isinstance(held, str):
                    table[key] = [held, cid]
                else:
                    held.append(cid)

    def candidates(self, hv: Sequence[int]) -> set[str]:
        """The seeds that agree with `hv` on every row of at least one band."""
        found: set[str] = set()
        for table, key in self._keys(hv):
            held = table.get(key)
            if isinstance(held, str):
                found.add(held)
            elif held:
                found.update(held)
        return found

    def best(self, hv: Sequence[int]) -> ClusterRecord | None:
        scored = [(jaccard(self.seeds[k][1], hv), k) for k in self.candidates(hv)]
        scored = [s for s in scored if s[0] >= self.threshold]
        return self.seeds[max(scored)[1]][0] if scored else None


_WORD_BYTES = array("I").itemsize


def _packed(hv: Sequence[int]) -> array[int]:
    return hv if isinstance(hv, array) and hv.typecode == "I" else array("I", hv)


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
        found = given[a.article_id] if a.article_id in given else hash_values(a.title, a.text)
        hv = tuple(found) if found else None
        hit = index.best(hv) if hv is not None else None
        if hit is None:
            hit = ClusterRecord(stable_id("cluster", a.article_id), a.article_id, a.title, story_time(a), now,
                                hv or ())
            if hv is not None:
                index.add(hit, hv)
        cluster = touched.get(hit.cluster_id, hit)
        touched[hit.cluster_id] = replace(cluster, first_published_at=min(cluster.first_published_at,
                                                                          story_time(a)))
        assigned[a.article_id] = hit.cluster_id
    return [replace(a, cluster_id=assigned[a.article_id]) for a in articles], list(touched.values())
