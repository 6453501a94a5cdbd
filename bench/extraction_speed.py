"""Extraction throughput: extract_article in one process vs a process pool over the benchmark pages.

    python -m bench.extraction_speed [--corpus DIR] [--workers N] [--chunksize N] [--repeat N]

Pages are passed as bytes, as the pipeline does. The pool is started (and each worker has imported the
extractor and loaded the language model) before the clock starts, so the figure is steady-state
throughput, not start-up cost.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from extractors.articles import detect_language, extract_article
from newsmon.errors import ExtractionError

AEB_DIR = Path("/work/shared/corpus/article-extraction-benchmark")


def load_pages(corpus: Path) -> list[tuple[bytes, str]]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    return [(gzip.open(corpus / "html" / f"{key}.html.gz").read(), item["url"]) for key, item in sorted(truth.items())]


def extract_words(body: bytes, url: str) -> int:
    """One extraction; returns the word count so that only a small int crosses the process boundary."""
    try:
        return len(extract_article(body, url).text.split())
    except ExtractionError:
        return 0


def warm_up() -> None:
    """Load the language model in a fresh worker."""
    detect_language("The deputy energy minister met a Russian ministry official in Baku.")


def run_serial(pages: list[tuple[bytes, str]]) -> float:
    start = time.perf_counter()
    for body, url in pages:
        extract_words(body, url)
    return time.perf_counter() - start


def run_pool(pages: list[tuple[bytes, str]], workers: int, chunksize: int) -> float:
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=warm_up) as pool:
        list(pool.map(extract_words, *zip(*pages[:workers], strict=True)))  # start every worker
        start = time.perf_counter()
        list(pool.map(extract_words, [b for b, _ in pages], [u for _, u in pages], chunksize=chunksize))
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=AEB_DIR)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--chunksize", type=int, default=2, help="pages per task; small chunks balance the few very slow pages best"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode; the best is reported")
    args = parser.parse_args(argv)

    pages = load_pages(args.corpus)
    warm_up()
    extract_words(*pages[0])
    serial = min(run_serial(pages) for _ in range(args.repeat))
    pooled = min(run_pool(pages, args.workers, args.chunksize) for _ in range(args.repeat))
    megabytes = sum(len(body) for body, _ in pages) / 1e6
    print(f"{len(pages)} pages, {megabytes:.1f} MB of HTML, best of {args.repeat} runs")
    print(f"{'single process':<34} {len(pages) / serial:7.1f} pages/s  ({serial:.2f} s)")
    label = f"process pool ({args.workers} workers, chunk {args.chunksize})"
    print(f"{label:<34} {len(pages) / pooled:7.1f} pages/s  ({pooled:.2f} s)")
    print(f"speed-up: {serial / pooled:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
