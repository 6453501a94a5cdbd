"""Label scores from placed hits: weighted OR groups, proximity pairs, relations and NOT groups (pure).

A pair of a label with ``cue`` concepts is judged clause by clause (see `relation_score`): both sides and
a cue in one clause make a relation; a side next to an avoidance or brand concept, or (with another party in the
clause) next to a mediation or venue concept, is set aside, and so is a side joined to another party
("Azerbaijan and Armenia met ...") ahead of the other side.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

from newsmon.tagging.layout import clause_breaks, clause_pattern
from newsmon.tagging.matcher import Hit, word_end
from newsmon.tagging.rules import Concept, Label, Proximity, Relations


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


class Relation(NamedTuple):
    """Two sides in one clause, folded [start, end) of `field`. `kind` "relation": `cue` links `a` and `b`.
    Otherwise `kind` says why side `a` was set aside ("avoid", "brand", "mediate", "venue", "counterpart")
    and `cue` is the hit that did it; `b` is the other side."""

    kind: str
    a: Placed
    b: Placed
    cue: Placed
    field: str
    start: int
    end: int


Contribution = tuple[Placed | Relation, float]


class Texts(NamedTuple):
    """The folded title and text, and the text's sentence ends: what relation checks read."""

    title: str
    text: str
    sentence_ends: tuple[int, ...]


@dataclass(frozen=True)
class RelationRules:
    """`Relations` compiled: the clause-word pattern, the joiner pattern and the window."""

    clauses: re.Pattern[str] | None
    joined: re.Pattern[str]
    venue: re.Pattern[str] | None
    ending: re.Pattern[str] | None
    window: int
    brand_window: int

    @classmethod
    def build(cls, rel: Relations) -> RelationRules:
        words = "|".join(re.escape(w) for w in sorted(rel.joiners, key=len, reverse=True))
        # "Azerbaijan and Armenia", "Azerbaijan's and Armenia's", "de l'Azerbaïdjan et de l'Arménie"
        joiner = rf"(?:(?:{words})(?!\w)\s*(?:\w{{1,3}}'\s*|\w{{1,3}}\s+){{0,2}})?" if words else ""
        places = "|".join(re.escape(w) for w in sorted(rel.venue_words, key=len, reverse=True))
        # "in Kazan", "in the Russian city", "à Moscou" (folded: "a moscou"): matched backwards from a side
        venue = re.compile(rf"(?<!\w)(?:{places})\s+(?:the\s+)?$") if places else None
        endings = "|".join(re.escape(w) for w in sorted(rel.venue_endings, key=len, reverse=True))
        # the rest of a side's word after its term: "Rusiya|da", "Kazan|'da", "Bakü|'de"
        ending = re.compile(rf"'?\w*?(?:{endings})(?!\w)") if endings else None
        return cls(clause_pattern(rel.clause_words), re.compile(rf"(?:'\w{{0,4}})?\s*,?\s*{joiner}"),
                   venue, ending, rel.window, rel.brand_window)


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
    cue: frozenset[int] = frozenset()
    loose: float = 1.0
    avoid: frozenset[int] = frozenset()
    mediate: frozenset[int] = frozenset()
    brand: frozenset[int] = frozenset()
    brandable: frozenset[str] = frozenset()  # terms of concepts that imply a side (companies)

    @classmethod
    def build(cls, label: Label, index: dict[str, int], concepts: Sequence[Concept] = ()) -> LabelPlan:
        def ids(names: Sequence[str]) -> frozenset[int]:
            return frozenset(index[n] for n in names)

        sides = {name for pair in label.pairs for name in pair}
        brandable = frozenset(term for c in concepts if sides & set(c.implies) for _, term in c.terms)
        return cls(label.name, label.threshold, ids(label.any),
                   tuple((index[a], index[b]) for a, b in label.pairs), ids(label.near),
                   ids(label.crowd), ids(label.not_), label.not_mode == "veto", ids(label.cue),
                   label.loose, ids(label.avoid), ids(label.mediate), ids(label.brand), brandable)


Buckets = dict[int, list[Placed]]


def bucket(hits: Sequence[Placed]) -> Buckets:
    """Hits grouped by concept, so each label only looks at the concepts it names."""
    out: Buckets = {}
    for p in hits:
        out.setdefault(p.hit.concept, []).append(p)
    return out


def score_label(plan: LabelPlan, hits: Buckets, prox: Proximity, repeat: float,
                texts: Texts | None = None, rel: RelationRules | None = None) -> tuple[float, list[Contribution]]:
    """The label's score and what each hit contributed (negative for NOT hits and set-aside sides)."""
    total, any_found = weighted(hits, plan.any, repeat)
    found = cast(list[Contribution], any_found)  # a list of hits only so far; relations join it below
    for a, b in plan.pairs:
        if plan.cue and texts is not None and rel is not None:
            value, more = relation_score(plan, hits, (a, b), prox, repeat, texts, rel)
        else:
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


def weighted(hits: Buckets, concepts: frozenset[int], repeat: float) -> tuple[float, list[tuple[Placed, float]]]:
    """OR group: concept weight x zone weight per hit; the k-th repeat of a term counts repeat**k."""
    chosen = [p for c in concepts if c in hits for p in hits[c]]
    chosen.sort(key=_zone)
    seen: dict[tuple[int, str], int] = {}
    total = 0.0
    found: list[tuple[Placed, float]] = []
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
    best_a, best_b = _best_both(side_a), _best_both(side_b)
    units = _sentence_units(plan, hits, side_a, side_b, prox, best_a[0], best_b[0])
    done = {pa.paragraph for _, pa, pb in units}
    units += [(v * prox.paragraph, pa, pb)
              for v, pa, pb in _together(side_a, side_b, "paragraph", best_a[1], best_b[1])
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
                    prox: Proximity, best_a: dict[int, Placed],
                    best_b: dict[int, Placed]) -> list[tuple[float, Placed, Placed]]:
    """Sentences holding both sides (title is sentence -1); crowded sentences are left to paragraphs."""
    near = {p.sentence for c in plan.near if c in hits for p in hits[c]}
    crowd_at = {(p.field, p.hit.start): p.sentence for c in plan.crowd if c in hits for p in hits[c]}
    crowd = Counter(crowd_at.values())
    units = []
    for value, pa, pb in _together(side_a, side_b, "sentence", best_a, best_b):
        if crowd[pa.sentence] > prox.crowd_max:
            continue
        units.append((value * prox.sentence * (prox.near if pa.sentence in near else 1.0), pa, pb))
    return units


def _together(side_a: list[Placed], side_b: list[Placed], level: str, best_a: dict[int, Placed],
              best_b: dict[int, Placed]) -> list[tuple[float, Placed, Placed]]:
    """Per sentence or paragraph holding both sides (at different places): strength and best hits
    (`best_a`, `best_b`: each side's strongest hit per unit, from `_best_both`)."""
    out = []
    for key, pa in best_a.items():
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


def _best_both(side: list[Placed]) -> tuple[dict[int, Placed], dict[int, Placed]]:
    """The strongest hit of `side` per sentence and per paragraph, in one pass."""
    by_sentence: dict[int, Placed] = {}
    by_paragraph: dict[int, Placed] = {}
    get_s, get_p = by_sentence.get, by_paragraph.get
    for p in side:
        strength = p.hit.weight * p.zone
        q = get_s(p.sentence)
        if q is None or strength > q.hit.weight * q.zone:
            by_sentence[p.sentence] = p
        q = get_p(p.paragraph)
        if q is None or strength > q.hit.weight * q.zone:
            by_paragraph[p.paragraph] = p
    return by_sentence, by_paragraph


def _best(group: list[Placed]) -> Placed:
    return group[0] if len(group) == 1 else max(group, key=lambda p: p.hit.weight * p.zone)


def _strength(pa: Placed, pb: Placed) -> float:
    return min(pa.hit.weight, pb.hit.weight) * min(pa.zone, pb.zone)


# ---------------------------------------------------------------------------------------------- relations

_Key = tuple[str, int]  # (field, sentence)
_JUDGED = 2


def _first_desc(item: tuple[float, Placed, Placed]) -> float:
    return -item[0]

_Unit = tuple[float, Relation | None, Placed, Placed]


def relation_score(plan: LabelPlan, hits: Buckets, pair: tuple[int, int], prox: Proximity, repeat: float,
                   texts: Texts, rel: RelationRules) -> tuple[float, list[Contribution]]:
    """Both sides of `pair` judged sentence by sentence. A relation (a clause holding both sides and a cue)
    counts like a pair sentence of `pair_score`; a sentence whose sides were all set aside counts nothing
    and is negative evidence; any other sentence, paragraph or document holding both sides counts
    `plan.loose` of what it would count in `pair_score`."""
    side_a, side_b = hits.get(pair[0]), hits.get(pair[1])
    if not side_a or not side_b:
        return 0.0, []
    best_a, best_b = _best_both(side_a), _best_both(side_b)
    together = _together(side_a, side_b, "sentence", best_a[0], best_b[0])
    done = {pa.paragraph for _, pa, _ in together}
    units, against = _sentences(plan, hits, together, side_a, side_b, prox, texts, rel) if together else ([], [])
    units += [(v * prox.paragraph * plan.loose, None, pa, pb)
              for v, pa, pb in _together(side_a, side_b, "paragraph", best_a[1], best_b[1])
              if pa.paragraph not in done]
    if not units and not against:
        pa, pb = _best(side_a), _best(side_b)
        units = [(prox.document * plan.loose * _strength(pa, pb), None, pa, pb)]
    total = 0.0
    found: list[Contribution] = []
    for k, (value, relation, pa, pb) in enumerate(sorted(units, key=lambda u: -u[0])):
        value *= repeat ** k
        total += value
        if relation is not None:
            found.append((relation, value))
        else:
            found += [(pa, value / 2), (pb, value / 2)]
    return total, found + against


def _sentences(plan: LabelPlan, hits: Buckets, together: list[tuple[float, Placed, Placed]],
               side_a: list[Placed], side_b: list[Placed], prox: Proximity, texts: Texts,
               rel: RelationRules) -> tuple[list[_Unit], list[Contribution]]:
    """Units of the sentences holding both sides, and the negative evidence of those set aside.

    Only a sentence with a cue can hold a relation; of those, the strongest _JUDGED are judged clause by
    clause (past them a relation would add little: repeat decay). The rest count as seen together."""
    if plan.near:
        near = {p.sentence for c in plan.near if c in hits for p in hits[c]}
        together = [(v * (prox.near if pa.sentence in near else 1.0), pa, pb) for v, pa, pb in together]
    candidates = sorted(together, key=_first_desc)
    cued: dict[int, list[Placed]] = {pa.sentence: [] for _, pa, _ in candidates}
    for c in plan.cue:
        for p in hits.get(c, ()):
            group = cued.get(p.sentence)
            if group is not None:
                group.append(p)
    judged = [pa.sentence for _, pa, _ in candidates if cued[pa.sentence]][:_JUDGED]
    extra = _roles(plan, hits, judged, cued) if judged else {}
    by_a, by_b = (_by_sentence(side_a, extra), _by_sentence(side_b, extra)) if judged else ({}, {})
    units: list[_Unit] = []
    against: list[Contribution] = []
    for v, pa, pb in candidates:
        base = prox.sentence * v
        roles = extra.get(pa.sentence)
        verdict = None
        if roles is not None:
            verdict = _judge((pa.field, pa.sentence), by_a[pa.sentence], by_b[pa.sentence], roles, texts, rel,
                             prox, plan.brandable)
        if verdict is None:
            units.append((base * plan.loose, None, pa, pb))
        elif verdict.kind == "relation":
            units.append((base, verdict, verdict.a, verdict.b))
        else:
            against.append((verdict, -base))
    return units, against


def _by_sentence(side: list[Placed], wanted: dict[int, tuple[list[Placed], ...]]) -> dict[int, list[Placed]]:
    out: dict[int, list[Placed]] = {s: [] for s in wanted}
    for p in side:
        group = out.get(p.sentence)
        if group is not None:
            group.append(p)
    return out


def _roles(plan: LabelPlan, hits: Buckets, sentences: list[int],
           cues: dict[int, list[Placed]]) -> dict[int, tuple[list[Placed], ...]]:
    """Cue (from `cues`), other-party, avoidance, mediation and brand hits of `sentences` (the title is
    sentence -1)."""
    extra: dict[int, tuple[list[Placed], ...]] = {s: (cues[s], [], [], [], []) for s in sentences}
    for group, concepts in enumerate((plan.crowd, plan.avoid, plan.mediate, plan.brand), start=1):
        for c in concepts:
            for p in hits.get(c, ()):
                slot = extra.get(p.sentence)
                if slot is not None:
                    slot[group].append(p)
    return extra


def _same(p: Placed, q: Placed) -> bool:
    return p.hit.start == q.hit.start




def _span(key: _Key, texts: Texts) -> tuple[str, int, int]:
    """The folded text of a sentence's field and the sentence's [start, end)."""
    field, sentence = key
    if field == "title":
        return texts.title, 0, len(texts.title)
    ends = texts.sentence_ends
    start = ends[sentence - 1] if sentence > 0 else 0
    end = ends[sentence] if sentence < len(ends) else len(texts.text)
    return texts.text, start, end


def _judge(key: _Key, sa: list[Placed], sb: list[Placed], extra: tuple[list[Placed], ...], texts: Texts,
           rel: RelationRules, prox: Proximity, brandable: frozenset[str] = frozenset()) -> Relation | None:
    """The sentence's strongest relation clause; else why its sides were set aside; else None."""
    text, start, end = _span(key, texts)
    breaks = clause_breaks(text, start, end, rel.clauses)
    rows: list[tuple[int, list[Placed], list[Placed], list[Placed], list[Placed], list[Placed], list[Placed],
                     list[Placed]]]
    if breaks:
        a_by, b_by = _by_clause(sa, breaks), _by_clause(sb, breaks)
        cu, cr, av, me, br = (_by_clause(group, breaks) for group in extra)
        rows = [(c, a_by[c], b_by[c], cu.get(c, []), cr.get(c, []), av.get(c, []), me.get(c, []), br.get(c, []))
                for c in sorted(a_by.keys() & b_by.keys())]
    else:
        rows = [(0, sa, sb, extra[0], extra[1], extra[2], extra[3], extra[4])]
    best: Relation | None = None
    denied: Relation | None = None
    for c, a, b, cues, crowd, avoid, mediate, brand in rows:
        lo = breaks[c - 1] if c > 0 else start
        hi = breaks[c] if c < len(breaks) else end
        taken = {p.hit.start for p in a}
        taken.update(p.hit.start for p in b)
        others = [p for p in crowd if p.hit.start not in taken] if crowd else crowd
        if avoid or brand or others:
            a, b, why = _parties(a, b, others, (cues, avoid, mediate, brand), text, lo, rel, brandable)
            if why is not None:
                denied = denied or Relation(why[0], why[1], why[2], why[3], key[0], lo, hi)
                continue
            if len({p.hit.start for p in others}) > prox.crowd_max:
                continue  # a list of countries, not a relation
        cue = next((p for p in cues if p.hit.start not in taken), None)
        if cue is None:
            continue
        pa, pb = _best(a), _best(b)
        if best is None or _strength(pa, pb) > _strength(best.a, best.b):
            best = Relation("relation", pa, pb, cue, key[0], lo, hi)
    return best or denied


def _parties(a: list[Placed], b: list[Placed], others: list[Placed],
             roles: tuple[list[Placed], list[Placed], list[Placed], list[Placed]], text: str,
             lo: int, rel: RelationRules, brandable: frozenset[str]) -> tuple[list[Placed], list[Placed], _Why | None]:
    """The sides of one clause that are parties, and why a whole side was set aside (the thing avoided, a
    brand, a counterpart, a mediator or a venue) if one was."""
    cues, avoid, mediate, brand = roles
    why: _Why | None = None
    if avoid:
        a, b, why = _set_aside("avoid", a, b, avoid, text, rel.window)
    if why is None and brand:  # only a company (a term implying a side) can be a brand
        a, b, why = _set_aside("brand", a, b, brand, text, rel.brand_window, cues, brandable)
    if others and why is None:
        why = _counterpart(a, b, others, mediate, text, rel)
        if why is None:
            places = _venues(a + b, text, lo, rel)
            a, b, why = _set_aside("mediate", a, b, mediate + places, text, rel.window)
            if why is not None and any(why[3] is p for p in places):
                why = ("venue", *why[1:])
    return a, b, why


def _by_clause(group: list[Placed], breaks: list[int]) -> dict[int, list[Placed]]:
    out: dict[int, list[Placed]] = {}
    for p in group:
        out.setdefault(bisect_right(breaks, p.hit.start), []).append(p)
    return out


_Why = tuple[str, Placed, Placed, Placed]  # kind, side set aside, other side, the hit that set it aside


def _set_aside(kind: str, a: list[Placed], b: list[Placed], near: list[Placed], text: str, window: int,
               unless: Sequence[Placed] = (), only: frozenset[str] | None = None
               ) -> tuple[list[Placed], list[Placed], _Why | None]:
    """Sides within `window` characters of a `near` hit (with none of `unless` between them; with `only`,
    sides matched by one of those terms) are not parties; when a whole side goes, say why."""
    if not near:
        return a, b, None

    def free(p: Placed) -> bool:
        if only is not None and p.hit.term not in only:
            return True
        return all(_gap(p, q, text) > window or _between(p, q, unless) for q in near)

    keep_a = [p for p in a if free(p)]
    keep_b = [p for p in b if free(p)]
    if keep_a and keep_b:
        return keep_a, keep_b, None
    def distance(p: Placed) -> int:
        return min(_gap(p, q, text) for q in near)

    gone, other = (a, b) if not keep_a else (b, a)
    if not keep_a and not keep_b and min(map(distance, b)) < min(map(distance, a)):
        gone, other = b, a  # both sides went: name the one nearest to the reason
    side = min(gone, key=distance)
    reason = min(near, key=lambda q: _gap(side, q, text))
    return keep_a, keep_b, (kind, side, _best(other), reason)


def _venues(sides: list[Placed], text: str, lo: int, rel: RelationRules) -> list[Placed]:
    """Sides named as a place: right after a venue word ("in Kazan", "в Москве") or with a locative ending
    ("Moskvada", "Kazan'da"). Each stands for its own venue."""
    venue, ending = rel.venue, rel.ending
    return [p for p in sides
            if (venue is not None and venue.search(text, max(lo, p.hit.start - 24), p.hit.start))
            or (ending is not None and ending.match(text, p.hit.end))]


def _between(p: Placed, q: Placed, hits: Sequence[Placed]) -> bool:
    """Whether one of `hits` lies between `p` and `q`."""
    lo, hi = sorted((p.hit.start, q.hit.start))
    return any(lo < h.hit.start < hi for h in hits)


def _gap(p: Placed, q: Placed, text: str) -> int:
    """Characters between two hits (0 when they touch or overlap)."""
    first, second = (p, q) if p.hit.start <= q.hit.start else (q, p)
    return max(0, second.hit.start - word_end(text, first.hit.end))


def _counterpart(a: list[Placed], b: list[Placed], others: list[Placed], mediate: list[Placed], text: str,
                 rel: RelationRules) -> _Why | None:
    """A side joined to another party ("Azerbaijan and Armenia", "Putin and Pashinyan") but not to the
    other side: the clause is about that side and its counterpart when the other side comes after them
    (the topic or the venue) or when the clause names a mediation ("Moscow will help Baku and Yerevan").
    Before them without one, the other side deals with both ("Aliyev met Putin and Erdogan")."""
    parties = sorted([(p.hit.start, 0, p) for p in a] + [(p.hit.start, 1, p) for p in b] +
                     [(p.hit.start, 2, p) for p in others], key=lambda t: (t[0], t[1]))
    groups: list[list[tuple[int, int, Placed]]] = [[parties[0]]]
    for prev, cur in zip(parties, parties[1:], strict=False):
        gap_from = word_end(text, prev[2].hit.end)
        if cur[0] == prev[0] or (gap_from <= cur[0] and rel.joined.fullmatch(text, gap_from, cur[0])):
            groups[-1].append(cur)
        else:
            groups.append([cur])
    if any({0, 1} <= {t[1] for t in g} for g in groups):
        return None  # the two sides are joined to each other: "Russia, Azerbaijan and Iran signed ..."
    for g in groups:
        kinds = {t[1] for t in g}
        if 2 not in kinds or not kinds & {0, 1}:
            continue
        side = next(t for t in g if t[1] != 2)
        other = b if side[1] == 0 else a
        if mediate:
            return ("mediate", _best(other), side[2], mediate[0])
        if all(p.hit.start > g[0][0] for p in other):
            third = next(t[2] for t in g if t[1] == 2)
            return ("counterpart", side[2], _best(other), third)
    return None
