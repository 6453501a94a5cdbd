"""Extraction quality: trafilatura defaults vs newsmon's extract_article on annotated corpora.

    python -m bench.extraction_quality [--corpus DIR] [--evaldata DIR] [--workers N] [--skip-evaldata]
    python -m bench.extraction_quality --boilerplate [--samples FILE]

1. The 181-page article-extraction benchmark (Zyte): token-level precision/recall/F1 as its evaluate.py
   computes them: tokens are ``re.findall(r"\\w+")``, per-document tp/fp/fn normalised to sum to 1, mean
   precision and mean recall over documents, F1 of the two means. 4-word shingles are shown too.
2. trafilatura's own evaluation pages (``evaldata.json``): snippets that must / must not appear.
3. ``--boilerplate``: how much of the text handed to the tagger is not the story, on the three corpora
   with a ground-truth body (the benchmark, fundus, newspaper4k), with and without the link-line filter
   (extractors.linkblocks.link_lines). A word of the extracted text is "extra" when no word 3-gram
   holding it occurs in the ground-truth body; reported as a share of the extracted characters, the
   pages where it tops 10 %, the part of it that is link text on the page (headlines of other stories,
   menus, "Read more: ..." lines), and the share of the body's characters the extraction kept (recall).
   ``--samples FILE`` writes every extra line (page, link text or not, line) as JSON lines.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import trafilatura

from bench.metadata_quality import load_fundus
from extractors.articles import _extract_text, _parse, extract_article
from extractors.encoding import decode_html
from extractors.linkblocks import LinkLines, LinkStats, prune_link_blocks
from newsmon.errors import ExtractionError

AEB_DIR = Path("/work/shared/corpus/article-extraction-benchmark")
EVAL_DIR = Path("/work/shared/corpus/trafilatura-pages")
FUNDUS_DIR = Path("/work/shared/corpus/fundus-news/test_data")
NEWSPAPER_DIR = Path("/work/shared/corpus/newspaper4k-tests/data")
_TOKEN = re.compile(r"\w+")
# Boilerplate measure: scripts written without spaces count a character a word.
_UNSPACED = "\u0e00-\u0e7f\u1000-\u109f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_UNSPACED}]|[^\W{_UNSPACED}]+")
EXTRA_PAGE_SHARE = 0.10


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


def newsmon_link_lines_kept(body: bytes, url: str) -> str:
    """extract_article's text path without the link-line filter: the "before" of the boilerplate table."""
    try:
        tree = _parse(decode_html(body, None).text, url)
        prune_link_blocks(tree, LinkStats(tree))
        document, _status = _extract_text(tree, url, [], LinkLines(frozenset(), frozenset()))
    except ExtractionError:
        return ""
    return unicodedata.normalize("NFC", document.text or "")


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


# --- boilerplate reaching the tagger ---


@dataclass(frozen=True)
class Page:
    name: str
    url: str
    body: bytes
    truth: str


@dataclass
class Boilerplate:
    pages: int = 0
    chars: int = 0
    extra: int = 0
    link_extra: int = 0
    pages_over: int = 0
    truth_chars: int = 0
    truth_kept: int = 0

    def row(self) -> str:
        share = self.extra / self.chars if self.chars else 0.0
        link = self.link_extra / self.chars if self.chars else 0.0
        recall = self.truth_kept / self.truth_chars if self.truth_chars else 0.0
        return f"{100 * share:7.2f} {100 * link:11.2f} {self.pages_over:5d}/{self.pages:<4d} {recall:8.3f}"


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def covered(tokens: list[str], reference: set[tuple[str, ...]], n: int = 3) -> list[bool]:
    """Per token: does some n-gram holding it occur in the reference? (shorter texts: the whole of it)"""
    if len(tokens) < n:
        return [tuple(tokens) in reference] * len(tokens) if tokens else []
    hit = [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        if tuple(tokens[i : i + n]) in reference:
            hit[i : i + n] = [True] * n
    return hit


def grams(tokens: list[str], n: int = 3) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1)}


def link_texts(body: bytes, url: str) -> set[str]:
    """Word-joined texts of the page's links and of lines that are mostly link words (what counts as link text)."""
    tree = _parse(decode_html(body, None).text, url)
    stats = LinkStats(tree)
    found = {" ".join(words(a.text_content())) for a in tree.iter("a")}
    for element in tree.iter("p", "li", "h2", "h3", "h4", "h5", "h6", "div", "dd", "dt", "span"):
        total, linked, _links = stats.counts.get(element, (0, 0, 0))
        if linked and element not in stats.holds_block and 2 * linked >= total:
            found.add(" ".join(words(element.text_content())))
    found.discard("")
    return found


def score_boilerplate(page: Page, output: str, links: set[str], tally: Boilerplate,
                      samples: list[dict[str, object]] | None = None) -> None:
    truth = words(page.truth)
    reference = grams(truth)
    tally.pages += 1
    page_chars = page_extra = 0
    for line in output.split("\n"):
        tokens = words(line)
        hit = covered(tokens, reference)
        extra = sum(len(t) for t, h in zip(tokens, hit, strict=True) if not h)
        page_chars += sum(map(len, tokens))
        page_extra += extra
        if extra:
            is_link = " ".join(words(line.removeprefix("- "))) in links
            tally.link_extra += extra if is_link else 0
            if samples is not None and 2 * extra > sum(map(len, tokens)):
                samples.append({"page": page.name, "link_text": is_link, "line": line})
    tally.chars += page_chars
    tally.extra += page_extra
    tally.pages_over += page_chars > 0 and page_extra > EXTRA_PAGE_SHARE * page_chars
    kept = covered(truth, grams(words(output)))
    tally.truth_chars += sum(map(len, truth))
    tally.truth_kept += sum(len(t) for t, h in zip(truth, kept, strict=True) if h)


def load_truth_pages(aeb: Path, fundus: Path, newspaper: Path) -> dict[str, list[Page]]:
    """The pages of the three corpora that come with their article body, by corpus."""
    corpora: dict[str, list[Page]] = {}
    corpora["article-extraction-benchmark"] = [
        Page(f"aeb/{url}", url, body, truth) for truth, url, body in load_aeb(aeb)
    ]
    fundus_pages = []
    for case in load_fundus(fundus):
        country, file_name = case.name.split("/")
        expected = json.loads((fundus / country / f"{file_name.rsplit('_', 3)[0]}.json").read_text(encoding="utf-8"))
        body = expected[case.version]["body"]
        parts = [*body.get("summary", [])]
        for section in body.get("sections", []):
            parts += [*section.get("headline", []), *section.get("paragraphs", [])]
        fundus_pages.append(Page(f"fundus/{case.name}", case.url, case.body, "\n".join(parts)))
    corpora["fundus"] = fundus_pages
    corpora["newspaper4k"] = [
        Page(f"newspaper4k/{txt.stem}", f"https://news.example/{txt.stem}", html.read_bytes(),
             txt.read_text(encoding="utf-8"))
        for txt in sorted((newspaper / "txt").glob("*.txt"))
        if (html := newspaper / "html" / f"{txt.stem}.html").exists()
    ]
    return corpora


BOILERPLATE_RUNNERS: dict[str, Callable[[bytes, str], str]] = {
    "newsmon, link lines kept (before)": newsmon_link_lines_kept,
    "newsmon extract_article": newsmon,
}


def boilerplate_report(args: argparse.Namespace) -> int:
    corpora = load_truth_pages(args.corpus, args.fundus, args.newspaper)
    samples: list[dict[str, object]] | None = [] if args.samples else None
    print("\nBoilerplate reaching the tagger: extracted text not in the ground-truth body (word 3-grams)")
    print(f"{'corpus (pages)':<36} {'extractor':<36} {'extra %':>7} {'link text %':>11} {'>10% pages':>10} "
          f"{'recall':>8}")
    for corpus, pages in corpora.items():
        links = [link_texts(p.body, p.url) for p in pages]
        for name, runner in BOILERPLATE_RUNNERS.items():
            outputs = run(runner, [(p.body, p.url) for p in pages], args.workers)
            tally = Boilerplate()
            keep = samples if samples is not None and runner is newsmon else None
            for page, output, page_links in zip(pages, outputs, links, strict=True):
                score_boilerplate(page, output, page_links, tally, keep)
            print(f"{corpus + f' ({len(pages)})':<36} {name:<36} {tally.row()}")
    if not args.skip_evaldata and (args.evaldata / "evaldata.json").exists():
        evaldata = load_evaldata(args.evaldata)
        jobs = [(body, url) for url, body, _w, _wo in evaldata]
        print(f"\ntrafilatura evaldata: {len(evaldata)} pages; snippets that must / must not appear")
        print(f"{'extractor':<36} {'P':>6} {'R':>6} {'F1':>6}  pages showing boilerplate snippets")
        for name, runner in BOILERPLATE_RUNNERS.items():
            outputs = run(runner, jobs, args.workers)
            score = snippet_score(outputs, evaldata)
            showing = sum(any(_collapse(s) in _collapse(out) for s in without)
                          for out, (_u, _b, _w, without) in zip(outputs, evaldata, strict=True))
            print(f"{name:<36} {score.precision:6.3f} {score.recall:6.3f} {score.f1:6.3f}  {showing}")
    if args.samples and samples is not None:
        with args.samples.open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
        print(f"{len(samples)} extra lines written to {args.samples}")
    return 0


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
    parser.add_argument("--boilerplate", action="store_true", help="only the boilerplate-reaching-the-tagger table")
    parser.add_argument("--fundus", type=Path, default=FUNDUS_DIR)
    parser.add_argument("--newspaper", type=Path, default=NEWSPAPER_DIR)
    parser.add_argument("--samples", type=Path, help="with --boilerplate: write the extra lines here (JSON lines)")
    args = parser.parse_args(argv)
    if args.boilerplate:
        return boilerplate_report(args)

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
