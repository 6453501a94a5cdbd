"""Tagger quality and speed: per-label precision/recall/F1 on the dev set, then articles/s on ~3 KB texts.

The held-out part (rows with "split": "heldout") was written without reading the rules and is also
scored on its own. Speed is measured twice: "dense" texts glue dev-set stories together (every paragraph on topic,
about 140 term hits per article, a worst case); "one story" texts are one dev-set story padded
with neutral local news.

Run: ``python -m bench.tagger_eval [--devset PATH] [--seconds S] [--errors]``
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


@dataclass(frozen=True)
class PRF:
    """Counts and derived precision, recall and F1 for one label."""

    tp: int
    fp: int
    fn: int

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


def evaluate(watchlist: Watchlist, rows: Sequence[dict[str, object]]) -> tuple[dict[str, PRF], list[str]]:
    """Per-label (and match) counts, and one line per wrong decision."""
    names = (*watchlist.labels, "match")
    counts = {name: [0, 0, 0] for name in names}
    errors: list[str] = []
    for row in rows:
        result = watchlist.tag(str(row["title"]), str(row["text"]))
        for name in names:
            predicted = result.match if name == "match" else name in result.tags
            expected = gold(row, name)
            c = counts[name]
            c[0] += predicted and expected
            c[1] += predicted and not expected
            c[2] += expected and not predicted
            if predicted != expected:
                kind = "FP" if predicted else "FN"
                errors.append(f"{kind} {name:<12} {row['id']:<6} {dict(result.scores)}  {row['title']}")
    return {name: PRF(*c) for name, c in counts.items()}, errors


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
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--errors", action="store_true", help="list every wrong decision")
    args = parser.parse_args(argv)
    watchlist = default_watchlist()
    rows = load_devset(args.devset)
    held_out = [r for r in rows if r.get("split") == "heldout"]
    for name, subset in (("dev set", rows), ("held-out part", held_out)):
        if not subset:
            continue
        stats, errors = evaluate(watchlist, subset)
        print(f"watchlist {watchlist.name} {watchlist.version}; {name}: {len(subset)} articles")
        print(f"{'label':<12} {'P':>6} {'R':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}")
        for label, s in stats.items():
            print(f"{label:<12} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} {s.tp:4d} {s.fp:4d} {s.fn:4d}")
        if args.errors:
            print("\n".join(errors) or "no errors")
    for kind, articles in (("dense", synthetic_articles(rows)), ("one story", padded_articles(rows))):
        mean = sum(len(t) for _, t in articles) / len(articles)
        rate = throughput(watchlist, articles, args.seconds / 2)
        print(f"speed ({kind}): {rate:,.0f} articles/s per core (single process, CPU time, "
              f"mean text {mean:,.0f} chars)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
