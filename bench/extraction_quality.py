"""Extraction quality: trafilatura defaults vs newsmon's extract_article on two annotated corpora.

    python -m bench.extraction_quality [--corpus DIR] [--evaldata DIR] [--workers N] [--skip-evaldata]

1. The 181-page article-extraction benchmark (Zyte): token-level precision/recall/F1 as its evaluate.py
   computes them: tokens are ``re.findall(r"\\w+")``, per-document tp/fp/fn normalised to sum to 1, mean
   precision and mean recall over documents, F1 of the two means. 4-word shingles are shown too.
2. trafilatura's own evaluation pages (``evaldata.json``): snippets that must / must not appear.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import trafilatura

from extractors.articles import extract_article
from newsmon.errors import ExtractionError

AEB_DIR = Path("/work/shared/corpus/article-extraction-benchmark")
EVAL_DIR = Path("/work/shared/corpus/trafilatura-pages")
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    documents: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


# --- extractors under test (module-level so they can run in worker processes) ---


def trafilatura_default(body: bytes, url: str) -> str:
    return trafilatura.extract(body) or ""


def trafilatura_no_comments(body: bytes, url: str) -> str:
    return trafilatura.extract(body, include_comments=False) or ""


def trafilatura_canonical_fast(body: bytes, url: str) -> str:
    """trafilatura's evaluation settings, fast runner."""
    return (
        trafilatura.extract(body, include_comments=False, include_tables=True, include_formatting=False, fast=True)
        or ""
    )


def trafilatura_canonical(body: bytes, url: str) -> str:
    """trafilatura's evaluation settings, runner with fallback extractors."""
    return trafilatura.extract(body, include_comments=False, include_tables=True, include_formatting=False) or ""


def newsmon(body: bytes, url: str) -> str:
    try:
        return extract_article(body, url).text
    except ExtractionError:
        return ""


AEB_RUNNERS: dict[str, Callable[[bytes, str], str]] = {
    "(a) trafilatura extract(html)": trafilatura_default,
    "(b) extract(html, include_comments=False)": trafilatura_no_comments,
    "(c) newsmon extract_article": newsmon,
}
EVAL_RUNNERS: dict[str, Callable[[bytes, str], str]] = {
    "trafilatura canonical, fast=True": trafilatura_canonical_fast,
    "trafilatura canonical, fast=False": trafilatura_canonical,
    "newsmon extract_article": newsmon,
}


# --- the article-extraction-benchmark metric ---


def ngrams(text: str, n: int) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN.findall(text)
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def document_counts(truth: str, prediction: str, n: int = 1) -> tuple[float, float, float]:
    """(tp, fp, fn) over n-gram multisets, normalised to sum to 1 so that every document weighs the same."""
    true, pred = ngrams(truth, n), ngrams(prediction, n)
    tp = sum((true & pred).values())
    fp = sum((pred - true).values())
    fn = sum((true - pred).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def aeb_score(pairs: Iterable[tuple[str, str]], n: int = 1) -> Score:
    precisions, recalls = [], []
    for truth, prediction in pairs:
        tp, fp, fn = document_counts(truth, prediction, n)
        if tp + fp > 0:
            precisions.append(tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(tp / (tp + fn))
    return Score(_mean(precisions), _mean(recalls), len(recalls))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def load_aeb(corpus: Path) -> list[tuple[str, str, bytes]]:
    """(truth, url, page bytes) for every page of the benchmark, in file-name order."""
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        (item["articleBody"], item["url"], gzip.open(corpus / "html" / f"{key}.html.gz").read())
        for key, item in sorted(truth.items())
    ]


# --- trafilatura evaldata snippets ---


def load_evaldata(folder: Path) -> list[tuple[str, bytes, list[str], list[str]]]:
    """(url, page bytes, with-snippets, without-snippets) for every page present in this copy."""
    data = json.loads((folder / "evaldata.json").read_text(encoding="utf-8"))
    pages = []
    for url, item in data.items():
        for sub in ("cache", "eval"):
            path = folder / sub / f"{item['file']}.gz"
            if path.exists():
                pages.append((url, gzip.open(path).read(), item.get("with", []), item.get("without", [])))
                break
    return pages


def snippet_score(outputs: Iterable[str], pages: list[tuple[str, bytes, list[str], list[str]]]) -> Score:
    tp = fn = fp = 0
    for output, (_url, _body, with_, without) in zip(outputs, pages, strict=True):
        text = _collapse(output)
        found = sum(_collapse(s) in text for s in with_)
        tp, fn = tp + found, fn + len(with_) - found
        fp += sum(_collapse(s) in text for s in without)
    return Score(tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0, len(pages))


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --- running ---


def run(runner: Callable[[bytes, str], str], jobs: list[tuple[bytes, str]], workers: int) -> list[str]:
    if workers < 2:
        return [runner(body, url) for body, url in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(runner, [b for b, _ in jobs], [u for _, u in jobs], chunksize=4))


def print_table(title: str, rows: Sequence[tuple[str, Score, Score | None]], second: str = "") -> None:
    print(f"\n{title}")
    header = f"{'extractor':<46} {'P':>6} {'R':>6} {'F1':>6}"
    print(header + (f"   {second}" if second else ""))
    for name, score, extra in rows:
        line = f"{name:<46} {score.precision:6.3f} {score.recall:6.3f} {score.f1:6.3f}"
        if extra is not None:
            line += f"   {extra.precision:6.3f} {extra.recall:6.3f} {extra.f1:6.3f}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=AEB_DIR)
    parser.add_argument("--evaldata", type=Path, default=EVAL_DIR)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-evaldata", action="store_true")
    args = parser.parse_args(argv)

    pages = load_aeb(args.corpus)
    jobs = [(body, url) for _truth, url, body in pages]
    rows = []
    for name, runner in AEB_RUNNERS.items():
        outputs = run(runner, jobs, args.workers)
        pairs = [(truth, out) for (truth, _u, _b), out in zip(pages, outputs, strict=True)]
        rows.append((name, aeb_score(pairs, 1), aeb_score(pairs, 4)))
    print_table(
        f"article-extraction-benchmark: {len(pages)} pages; tokens (P R F1), then 4-word shingles",
        rows,
        second="P      R      F1 (shingles)",
    )
    if rows[2][1].f1 < rows[0][1].f1:
        print("WARNING: newsmon scores below trafilatura's default extract()", file=sys.stderr)

    if not args.skip_evaldata and (args.evaldata / "evaldata.json").exists():
        evaldata = load_evaldata(args.evaldata)
        jobs = [(body, url) for url, body, _w, _wo in evaldata]
        eval_rows = [
            (name, snippet_score(run(runner, jobs, args.workers), evaldata), None)
            for name, runner in EVAL_RUNNERS.items()
        ]
        print_table(f"trafilatura evaldata: {len(evaldata)} pages; with/without snippets", eval_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
