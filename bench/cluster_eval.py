"""Story clustering: precision, recall and cost per article on syndicated copies of real news articles.

The 181 article bodies of the article-extraction benchmark (shared/corpus) are the originals; each gets
lightly edited "syndicated" copies the way wire copy reappears on other sites (new headline, a dropped or
added paragraph, a credit line, a few words changed). Every original and copy goes through
`assign_clusters` in one shuffled run (and again against the stored seeds, the way later polls see it).
Reported: copies that joined their original's cluster (recall), distinct originals merged together
(false merges), and the time per article.

    PYTHONPATH=. python bench/cluster_eval.py
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsmon.alerts.clusters import assign_clusters
from newsmon.records import Article

CORPUS = Path("/work/shared/corpus/article-extraction-benchmark")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def edits(rng: random.Random, title: str, body: str) -> dict[str, tuple[str, str]]:
    paras = [p for p in body.split("\n") if p.strip()]

    def swap(text: str, share: float) -> str:
        words = text.split(" ")
        for i in rng.sample(range(len(words)), int(len(words) * share)):
            words[i] = rng.choice(["said", "the", "new", "also", "reported", "on", "Tuesday"])
        return " ".join(words)

    return {
        "credit line": ("UPDATE: " + title, "BAKU (Wire) - " + body + "\n\nCopyright Wire. All rights reserved."),
        "last paragraph dropped": (title, "\n".join(paras[:-1]) if len(paras) > 2 else body),
        "new headline, 5% words": (f"{title.split(':')[0]} - report", swap(body, 0.05)),
        "lead only (first half)": (title, "\n".join(paras[: max(1, len(paras) // 2)])),
        "10% words changed": (title, swap(body, 0.10)),
    }


def article(aid: str, title: str, text: str, age_h: float) -> Article:
    return Article(aid, "https://x.example/rss", aid.split(":")[0], aid, f"https://x.example/{aid}", title, "",
                   text, NOW, published_at=NOW - timedelta(hours=age_h))


def main() -> None:
    rng = random.Random(7)
    truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    originals, copies = [], []
    for i, doc in enumerate(truth.values()):
        body = doc.get("articleBody") or ""
        title = body.split(".")[0][:90]
        originals.append(article(f"orig:{i}", title, body, 10))
        for kind, (t, b) in edits(rng, title, body).items():
            copies.append((kind, article(f"copy:{i}:{kind}", t, b, 5)))
    for threshold in (0.4, 0.45, 0.5, 0.6):
        report(threshold, originals, copies, rng)


def report(threshold: float, originals: list[Article], copies: list[tuple[str, Article]],
           rng: random.Random) -> None:
    everything = originals + [c for _, c in copies]
    rng.shuffle(everything)
    t0 = time.perf_counter()
    out, clusters = assign_clusters(everything, [], threshold=threshold, now=NOW)
    per_article_ms = (time.perf_counter() - t0) * 1000 / len(everything)
    cid = {a.article_id: a.cluster_id for a in out}
    orig_clusters = [cid[o.article_id] for o in originals]
    false_merges = len(orig_clusters) - len(set(orig_clusters))
    # later polls: the copies arrive after the originals were stored (compared against stored seeds)
    first, seeds = assign_clusters(originals, [], threshold=threshold, now=NOW)
    t1 = time.perf_counter()
    later, _ = assign_clusters([c for _, c in copies], seeds, threshold=threshold, now=NOW)
    later_ms = (time.perf_counter() - t1) * 1000 / len(copies)
    seed_of = {a.article_id.split(":")[1]: a.cluster_id for a in first}
    print(f"threshold {threshold}: {len(originals)} originals, {len(copies)} copies, "
          f"{per_article_ms:.2f} ms/article in one run, {later_ms:.2f} ms/article against "
          f"{len(seeds)} stored seeds; false merges of distinct originals: {false_merges}")
    for kind in dict.fromkeys(k for k, _ in copies):
        joined = sum(1 for (k, c), a in zip(copies, later, strict=True)
                     if k == kind and a.cluster_id == seed_of[c.article_id.split(":")[1]])
        same_run = sum(1 for k, c in copies
                       if k == kind and cid[c.article_id] == cid[f"orig:{c.article_id.split(':')[1]}"])
        total = sum(1 for k, _ in copies if k == kind)
        print(f"  {kind:26s} joined its original: {joined}/{total} later, {same_run}/{total} in one run")


if __name__ == "__main__":
    main()
