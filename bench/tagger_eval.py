"""Tagger quality and speed: per-label precision/recall/F1 on the dev sets, then articles/s on ~3 KB texts.

Two dev sets. The clean one (tests/data/tagger_devset.jsonl) holds short article texts; its held-out part
(rows with "split": "heldout") was written without reading the rules and is also scored on its own. The page
dev set (tests/data/tagger_pages_devset.jsonl) holds stories placed inside real page boilerplate (navigation,
section headers, "latest news" and "related" lists cut from saved news pages), in en/ru/az/tr/uk/de/fr and a
few other languages, with hard negatives of each known error class ("class"); its "dev" and "heldout" parts
are reported apart, per label and per language.

Speed is measured on the clean set, twice: "dense" texts glue dev-set stories together (every paragraph on
topic, about 140 term hits per article, a worst case); "one story" texts are one dev-set story padded with
neutral local news. "pages" is the page dev set as it is (boilerplate included).

Run: ``python -m bench.tagger_eval [--devset PATH] [--pages PATH] [--part dev|heldout|all] [--seconds S]
[--errors] [--no-speed]``
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from newsmon.tagging import Watchlist, default_watchlist

DEVSET = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "tagger_devset.jsonl"
PAGES = DEVSET.with_name("tagger_pages_devset.jsonl")


@dataclass(frozen=True)
class PRF:
    """Counts and derived precision, recall and F1 for one label."""

    tp: int
    fp: int
    fn: int
    n: int = 0  # articles counted

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load_devset(path: pathlib.Path = DEVSET) -> list[dict[str, object]]:
    """One dict per line of the dev set."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gold(row: dict[str, object], label: str) -> bool:
    labels = row["labels"]
    assert isinstance(labels, dict)
    return bool(row["match"]) if label == "match" else bool(labels[label])


def evaluate(watchlist: Watchlist, rows: Sequence[dict[str, object]],
             by: str = "") -> tuple[dict[str, PRF], list[str]]:
    """Per-label (and match) counts, and one line per wrong decision; with `by` (a row field such as
    "lang"), match counts per value of that field instead, keyed "match/<value>"."""
    names = (*watchlist.labels, "match")
    counts: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in names} if not by else {}
    errors: list[str] = []
    for row in rows:
        result = watchlist.tag(str(row["title"]), str(row["text"]))
        for name in names:
            predicted = result.match if name == "match" else name in result.tags
            expected = gold(row, name)
            key = f"{name}/{row.get(by, '?')}" if by else name
            if by and name != "match":
                continue
            c = counts.setdefault(key, [0, 0, 0, 0])
            c[0] += predicted and expected
            c[1] += predicted and not expected
            c[2] += expected and not predicted
            c[3] += 1
            if predicted != expected and not by:
                kind = "FP" if predicted else "FN"
                tail = f" [{row['class']}]" if "class" in row else ""
                errors.append(f"{kind} {name:<12} {row['id']:<8} {dict(result.scores)}  {row['title']}{tail}")
    return {name: PRF(*c) for name, c in counts.items()}, errors


def print_table(stats: dict[str, PRF], first: str = "label") -> None:
    width = max(12, *(len(label) for label in stats))
    print(f"{first:<{width}} {'P':>6} {'R':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4} {'n':>4}")
    for label, s in stats.items():
        print(f"{label:<{width}} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} {s.tp:4d} {s.fp:4d} {s.fn:4d} {s.n:4d}")


def synthetic_articles(rows: Sequence[dict[str, object]], size: int = 3000) -> list[tuple[str, str]]:
    """Dev-set stories padded by their neighbours to ~`size` characters: every paragraph on topic (worst case)."""
    out = []
    for i, row in enumerate(rows):
        parts = [str(row["text"])]
        j = i + 1
        while sum(len(p) + 1 for p in parts) < size:
            parts.append(str(rows[j % len(rows)]["text"]))
            j += 1
        out.append((str(row["title"]), "\n".join(parts)[:size]))
    return out


FILLER = (
    "The city council met on Tuesday to discuss the new budget for schools and parks. "
    "Residents asked for more bus routes and longer library hours. "
    "The mayor said the plan would be published next month after a public hearing. "
    "Local shops reported a busy weekend as the weather improved. "
)


def padded_articles(rows: Sequence[dict[str, object]], size: int = 3000) -> list[tuple[str, str]]:
    """Each dev-set story followed by neutral local-news paragraphs up to ~`size` characters."""
    out = []
    for row in rows:
        text = str(row["text"])
        while len(text) < size:
            text += "\n" + FILLER
        out.append((str(row["title"]), text[:size]))
    return out


def throughput(watchlist: Watchlist, articles: Sequence[tuple[str, str]], seconds: float) -> float:
    """Articles tagged per CPU second (one core): the best of three rounds, as the machine may be shared."""
    rates = []
    for _ in range(3):
        done, start = 0, time.process_time()
        while time.process_time() - start < seconds / 3:
            for title, text in articles:
                watchlist.tag(title, text)
            done += len(articles)
        rates.append(done / (time.process_time() - start))
    return max(rates)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=pathlib.Path, default=DEVSET)
    parser.add_argument("--pages", type=pathlib.Path, default=PAGES, help="the page dev set")
    parser.add_argument("--part", choices=("dev", "heldout", "all"), default="all",
                        help="which part of the page dev set to score (default: both, reported apart)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--errors", action="store_true", help="list every wrong decision")
    parser.add_argument("--no-speed", action="store_true", help="quality only")
    args = parser.parse_args(argv)
    watchlist = default_watchlist()
    rows = load_devset(args.devset)
    held_out = [r for r in rows if r.get("split") == "heldout"]
    for name, subset in (("clean dev set", rows), ("clean held-out part", held_out)):
        if not subset:
            continue
        stats, errors = evaluate(watchlist, subset)
        print(f"watchlist {watchlist.name} {watchlist.version}; {name}: {len(subset)} articles")
        print_table(stats)
        if args.errors:
            print("\n".join(errors) or "no errors")
    pages = load_devset(args.pages) if args.pages.exists() else []
    for part in ("dev", "heldout"):
        subset = [r for r in pages if r.get("split", "dev") == part]
        if not subset or args.part not in (part, "all"):
            continue
        stats, errors = evaluate(watchlist, subset)
        print(f"\npage dev set, {part} part: {len(subset)} pages")
        print_table(stats)
        print_table(evaluate(watchlist, subset, by="lang")[0], first="match/lang")
        print_table(evaluate(watchlist, subset, by="class")[0], first="match/class")
        if args.errors:
            print("\n".join(errors) or "no errors")
    if args.no_speed:
        return 0
    print()
    page_articles = [(str(r["title"]), str(r["text"])) for r in pages]
    for kind, articles in (("dense", synthetic_articles(rows)), ("one story", padded_articles(rows)),
                           ("pages", page_articles)):
        if not articles:
            continue
        mean = sum(len(t) for _, t in articles) / len(articles)
        rate = throughput(watchlist, articles, args.seconds / 2)
        print(f"speed ({kind}): {rate:,.0f} articles/s per core (single process, CPU time, "
              f"mean text {mean:,.0f} chars)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
