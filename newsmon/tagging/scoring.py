"""Label scores from placed hits: weighted OR groups, proximity pairs and NOT groups (pure arithmetic)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from newsmon.tagging.matcher import Hit
from newsmon.tagging.rules import Label, Proximity


class Placed(NamedTuple):
    """A hit with its position: field ('title' | 'text'), zone name and weight, sentence and paragraph.

    Sentences of the text count from 0 and the title is sentence -1; the title shares paragraph 0
    with the first line of the text.
    """

    hit: Hit
    field: str
    where: str
    zone: float
    sentence: int
    paragraph: int


Contribution = tuple[Placed, float]


@dataclass(frozen=True)
class LabelPlan:
    """A label with concept names resolved to the matcher's concept indices."""

    name: str
    threshold: float
    any: frozenset[int]
    pairs: tuple[tuple[int, int], ...]
    near: frozenset[int]
    crowd: frozenset[int]
    not_: frozenset[int]
    veto: bool

    @classmethod
    def build(cls, label: Label, index: dict[str, int]) -> LabelPlan:
        def ids(names: Sequence[str]) -> frozenset[int]:
            return frozenset(index[n] for n in names)

        return cls(label.name, label.threshold, ids(label.any),
                   tuple((index[a], index[b]) for a, b in label.pairs), ids(label.near),
                   ids(label.crowd), ids(label.not_), label.not_mode == "veto")


Buckets = dict[int, list[Placed]]


def bucket(hits: Sequence[Placed]) -> Buckets:
    """Hits grouped by concept, so each label only looks at the concepts it names."""
    out: Buckets = {}
    for p in hits:
        out.setdefault(p.hit.concept, []).append(p)
    return out


def score_label(plan: LabelPlan, hits: Buckets, prox: Proximity,
                repeat: float) -> tuple[float, list[Contribution]]:
    """The label's score and what each hit contributed (negative for NOT hits)."""
    total, found = weighted(hits, plan.any, repeat)
    for a, b in plan.pairs:
        value, more = pair_score(plan, hits, (a, b), prox, repeat)
        total += value
        found.extend(more)
    against, vetoes = weighted(hits, plan.not_, repeat)
    if against > 0:
        total = 0.0 if plan.veto else max(0.0, total - against)
        found.extend((p, -w) for p, w in vetoes)
    return total, found


def _zone(p: Placed) -> float:
    return -p.zone


def weighted(hits: Buckets, concepts: frozenset[int], repeat: float) -> tuple[float, list[Contribution]]:
    """OR group: concept weight x zone weight per hit; the k-th repeat of a term counts repeat**k."""
    chosen = [p for c in concepts if c in hits for p in hits[c]]
    chosen.sort(key=_zone)
    seen: dict[tuple[int, str], int] = {}
    total = 0.0
    found: list[Contribution] = []
    for p in chosen:
        key = (p.hit.concept, p.hit.term)
        k = seen.get(key, 0)
        seen[key] = k + 1
        value = p.hit.weight * p.zone * repeat ** k
        total += value
        found.append((p, value))
    return total, found


def pair_score(plan: LabelPlan, hits: Buckets, pair: tuple[int, int], prox: Proximity,
               repeat: float) -> tuple[float, list[Contribution]]:
    """Both concepts of `pair` seen together: per sentence, else per paragraph, else once per document."""
    side_a, side_b = hits.get(pair[0]), hits.get(pair[1])
    if not side_a or not side_b:
        return 0.0, []
    units = _sentence_units(plan, hits, side_a, side_b, prox)
    done = {pa.paragraph for _, pa, pb in units}
    units += [(v * prox.paragraph, pa, pb) for v, pa, pb in _together(side_a, side_b, "paragraph")
              if pa.paragraph not in done]
    if not units:
        pa, pb = _best(side_a), _best(side_b)
        units = [(prox.document * _strength(pa, pb), pa, pb)]
    total = 0.0
    found: list[Contribution] = []
    for k, (value, pa, pb) in enumerate(sorted(units, key=lambda u: -u[0])):
        value *= repeat ** k
        total += value
        found += [(pa, value / 2), (pb, value / 2)]
    return total, found


def _sentence_units(plan: LabelPlan, hits: Buckets, side_a: list[Placed], side_b: list[Placed],
                    prox: Proximity) -> list[tuple[float, Placed, Placed]]:
    """Sentences holding both sides (title is sentence -1); crowded sentences are left to paragraphs."""
    near = {p.sentence for c in plan.near if c in hits for p in hits[c]}
    crowd_at = {(p.field, p.hit.start): p.sentence for c in plan.crowd if c in hits for p in hits[c]}
    crowd = Counter(crowd_at.values())
    units = []
    for value, pa, pb in _together(side_a, side_b, "sentence"):
        if crowd[pa.sentence] > prox.crowd_max:
            continue
        units.append((value * prox.sentence * (prox.near if pa.sentence in near else 1.0), pa, pb))
    return units


def _together(side_a: list[Placed], side_b: list[Placed], level: str) -> list[tuple[float, Placed, Placed]]:
    """Per sentence or paragraph holding both sides (at different places): strength and best hits."""
    best_b = _best_per_unit(side_b, level)
    out = []
    for key, pa in _best_per_unit(side_a, level).items():
        pb = best_b.get(key)
        if pb is not None and pb.field == pa.field and pb.hit.start == pa.hit.start:
            others = [p for p in side_b if _unit(p, level) == key and
                      (p.field, p.hit.start) != (pa.field, pa.hit.start)]
            pb = _best(others) if others else None
        if pb is not None:
            out.append((_strength(pa, pb), pa, pb))
    return out


def _unit(p: Placed, level: str) -> int:
    return p.sentence if level == "sentence" else p.paragraph


def _best_per_unit(side: list[Placed], level: str) -> dict[int, Placed]:
    best: dict[int, Placed] = {}
    by_sentence = level == "sentence"
    for p in side:
        key = p.sentence if by_sentence else p.paragraph
        q = best.get(key)
        if q is None or p.hit.weight * p.zone > q.hit.weight * q.zone:
            best[key] = p
    return best


def _best(group: list[Placed]) -> Placed:
    return max(group, key=lambda p: p.hit.weight * p.zone)


def _strength(pa: Placed, pb: Placed) -> float:
    return min(pa.hit.weight, pb.hit.weight) * min(pa.zone, pb.zone)
