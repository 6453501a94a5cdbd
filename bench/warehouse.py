"""Warehouse appends: rows/s, the cost of a 1,000-article run into a small vs a large warehouse, bytes/article.

    python -m bench.warehouse [--sizes 10000,1000000] [--runs 5] [--dir /tmp/newsmon-bench]

Each warehouse is built in place (not copied: a copied file's dirty pages make the first checkpoint pay for
flushing the whole copy, which is not what a run pays) with one article, three tags and one verdict per
story. Then, for each size, `--runs` runs of 1,000 new articles go through `store_run` exactly as the
pipeline does (a fresh store object each time: open, spool, merge, commit), and one rerun of the same
1,000 ids measures the dedup path. Article text is real: the 181 article bodies of the extraction
benchmark, each story a rotation of one of them so that no two texts are equal.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from newsmon.records import Article, FeedResult, FeedSpec, RunBatch, Verdict
from warehouse.duckdb_store import DuckDBWarehouse

TRUTH = Path("/work/shared/corpus/article-extraction-benchmark/ground-truth.json")
FEED = FeedSpec("Bench", "https://bench.example/rss")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RUN = 1000


def texts() -> list[str]:
    return [v["articleBody"] for _, v in sorted(json.loads(TRUTH.read_text(encoding="utf-8")).items())]


def story_text(bodies: list[str], i: int) -> str:
    words = bodies[i % len(bodies)].split(" ")
    k = (i // len(bodies)) % max(len(words), 1)
    return " ".join(words[k:] + words[:k])


def run_batch(run_id: str, first: int, bodies: list[str]) -> RunBatch:
    arts, verdicts = [], []
    for i in range(first, first + RUN):
        text = story_text(bodies, i)
        arts.append(Article(f"b{i:09d}", FEED.url, FEED.name, f"https://bench.example/{i}",
                            f"https://bench.example/{i}", text[:80], text[:300], text, NOW,
                            language="en", published_at=NOW - timedelta(minutes=i % 5000),
                            word_count=len(text.split()), content_hash=f"h{i}"))
        ev = ({"label": "az_ru", "term": "Baku", "concept": "az", "where": "body", "start": 10, "end": 14,
               "snippet": text[:60], "weight": 2.0},)
        verdicts.append(Verdict(f"b{i:09d}", "az_ru", "2026.1", i % 10 == 0, 3.0, ("az_ru",) if i % 10 == 0 else (),
                                (("az_ru", 3.0), ("energy", 0.0), ("cooperation", 0.0)), ev))
    res = FeedResult(FEED, NOW, status=200, etag=f'"{run_id}"')
    return RunBatch(run_id, "bench", NOW, (res,), tuple(arts), tuple(verdicts), ())


def build(path: Path, n: int) -> float:
    """A warehouse of n stories, filled with SQL (text ~1.2 KB each: the size of the text barely matters
    to the dedup cost, which is what the large file is for)."""
    shutil.rmtree(path.parent, ignore_errors=True)
    path.parent.mkdir(parents=True)
    DuckDBWarehouse(path)  # schema via the real migrations
    t0 = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute(f"""INSERT INTO articles (article_id, url, canonical_url, feed_url, feed_name, entry_key, title,
        summary, text, author, site_name, language, published_at, fetched_at, word_count, extraction_status,
        extraction_note, content_hash, run_id, cluster_id)
        SELECT 'x' || lpad(i::VARCHAR, 9, '0'), 'https://x/' || i, NULL,
        'https://bench.example/rss', 'Bench', 'https://x/' || i, 'title ' || i, 'summary', repeat('word' ||
        (i % 997) || ' ', 200), NULL, NULL, 'en', TIMESTAMPTZ '2020-01-01' + to_seconds(i * 60),
        TIMESTAMPTZ '2020-01-01' + to_seconds(i * 60), 200, 'ok', NULL, 'h' || i, 'build', 'c' || i
        FROM range({n}) t(i)""")
    con.execute("""INSERT INTO tags SELECT article_id, 'az_ru', l, 0.0, false, '2026.1', [], fetched_at
                   FROM articles, unnest(['az_ru', 'energy', 'cooperation']) u(l)""")
    con.execute("INSERT INTO verdicts SELECT article_id, 'az_ru', '2026.1', false, 0.0, [], fetched_at FROM articles")
    con.close()
    return time.perf_counter() - t0


def timed_store(path: Path, batch: RunBatch) -> float:
    t0 = time.perf_counter()
    report = DuckDBWarehouse(path).store_run(batch, finished_at=NOW)
    elapsed = time.perf_counter() - t0
    assert report.stored
    return elapsed


def timed_lookup(path: Path, ids: list[str]) -> float:
    wh = DuckDBWarehouse(path, read_only=True)
    t0 = time.perf_counter()
    wh.known_article_ids(ids)
    return time.perf_counter() - t0


def measure(root: Path, n: int, runs: int, bodies: list[str]) -> dict[str, float]:
    path = root / f"w{n}" / "newsmon.duckdb"
    built = build(path, n)
    times = [timed_store(path, run_batch(f"r{k}", k * RUN, bodies)) for k in range(runs)]
    rerun = statistics.median(timed_store(path, run_batch(f"r0-again{k}", 0, bodies))  # same ids: all conflicts
                              for k in range(3))
    lookups = [timed_lookup(path, [f"b{i:09d}" for i in range(RUN)]) for _ in range(3)]
    return {"size": n, "build_s": built, "store_median_s": statistics.median(times), "store_min_s": min(times),
            "rerun_s": rerun, "lookup_s": statistics.median(lookups)}


def bytes_per_article(root: Path, bodies: list[str], stories: int) -> tuple[float, float]:
    """File bytes per stored story (article + 3 tags + verdict + log), and raw text bytes per story."""
    path = root / "size" / "newsmon.duckdb"
    shutil.rmtree(path.parent, ignore_errors=True)
    for k in range(stories // RUN):
        DuckDBWarehouse(path).store_run(run_batch(f"s{k}", k * RUN, bodies), finished_at=NOW)
    con = duckdb.connect(str(path))
    con.execute("CHECKPOINT")
    raw = con.execute("SELECT avg(strlen(text) + strlen(summary) + strlen(title)) FROM articles").fetchone()
    con.close()
    return path.stat().st_size / stories, float(raw[0] if raw else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-stories", type=int, default=20000, help="stories stored to measure bytes/article")
    ap.add_argument("--dir", default="/tmp/newsmon-bench")
    args = ap.parse_args()
    root, bodies = Path(args.dir), texts()
    results = [measure(root, int(n), args.runs, bodies) for n in args.sizes.split(",")]
    print(f"{'warehouse':>10} {'build s':>8} {'store 1k median s':>18} {'min s':>7} {'articles/s':>10} "
          f"{'rerun s':>8} {'lookup 1k s':>11}")
    for r in results:
        print(f"{r['size']:>10,} {r['build_s']:>8.1f} {r['store_median_s']:>18.3f} {r['store_min_s']:>7.3f} "
              f"{RUN / r['store_median_s']:>10,.0f} {r['rerun_s']:>8.3f} {r['lookup_s']:>11.4f}")
    if len(results) >= 2:
        small, big = results[0], results[-1]
        both = (big["lookup_s"] + big["store_median_s"]) / (small["lookup_s"] + small["store_median_s"])
        print(f"ratio {big['size']:,} / {small['size']:,}: store {big['store_median_s'] / small['store_median_s']:.2f}"
              f", rerun {big['rerun_s'] / small['rerun_s']:.2f}, lookup {big['lookup_s'] / small['lookup_s']:.2f}, "
              f"lookup + store {both:.2f}")
    on_disk, raw = bytes_per_article(root, bodies, args.size_stories)
    print(f"bytes per stored story: {on_disk:,.0f} on disk for {raw:,.0f} bytes of title+summary+text "
          f"({on_disk / raw:.2f}x; {args.size_stories:,} stories, 3 tags and a verdict each)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
