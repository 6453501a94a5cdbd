"""Text plus compiled rules to a `TagResult` (pure; no I/O, no clock, never raises on str input)."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter

from newsmon.records import Evidence
from newsmon.tagging.layout import Layout, layout
from newsmon.tagging.matcher import Hit, Matcher, word_end
from newsmon.tagging.normalize import Folded, fold
from newsmon.tagging.rules import Concept, Rules, Zones, parse_rules
from newsmon.tagging.scoring import (
    Buckets,
    Contribution,
    LabelPlan,
    Placed,
    Relation,
    RelationRules,
    Texts,
    score_label,
)

_new_placed = partial(tuple.__new__, Placed)
_SNIPPET = 60
_EVIDENCE_PER_LABEL = 6  # strongest hits per label, of which up to two NOT-group hits
_NEGATIVE_EVIDENCE = 2
_CLAUSE = 240  # a relation's snippet: its clause, cut to about this many characters around the relation
_weight = itemgetter(1)
_SPACING = re.compile(r"[^\S ]|  ")  # whitespace other than single spaces


def _hit_start(h: Hit) -> int:
    return h.start


@dataclass(frozen=True)
class TagResult:
    """Label scores, the labels over threshold, the match decision and its evidence."""

    watchlist: str
    rules_version: str
    match: bool
    score: float
    scores: tuple[tuple[str, float], ...]
    tags: tuple[str, ...]
    evidence: tuple[Evidence, ...]

    def to_dict(self, id: object = None) -> dict[str, object]:
        return {
            "id": id, "match": self.match, "score": self.score, "tags": list(self.tags),
            "evidence": [e.to_dict() for e in self.evidence],
            "watchlist": self.watchlist, "rules_version": self.rules_version,
        }


@dataclass(frozen=True, eq=False)
class Watchlist:
    """A compiled watchlist: rules plus one automaton holding all their terms."""

    rules: Rules
    matcher: Matcher = field(repr=False)
    plans: tuple[LabelPlan, ...] = field(repr=False)
    relations: RelationRules = field(repr=False)

    @property
    def name(self) -> str:
        return self.rules.name

    @property
    def version(self) -> str:
        return self.rules.version

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.rules.labels)

    def tag(self, title: str, text: str) -> TagResult:
        """Score `title` and `text` against every label and decide the match."""
        folded_title, folded_text = fold(title), fold(text)
        placed: Buckets = {}
        self._place_title(folded_title, placed)
        ends = self._place_text(folded_text, placed)
        texts = Texts(folded_title.text, folded_text.text, ends)
        prox, repeat, rel = self.rules.proximity, self.rules.repeat, self.relations
        scored = [score_label(plan, placed, prox, repeat, texts, rel) for plan in self.plans]
        scores = tuple((plan.name, round(s, 3)) for plan, (s, _) in zip(self.plans, scored, strict=True))
        ratios = {plan.name: s / plan.threshold for plan, (s, _) in zip(self.plans, scored, strict=True)}
        strength = self.rules.match.strength(ratios)
        originals = {"title": (title, folded_title), "text": (text, folded_text)}
        quotes: dict[tuple[str, int], tuple[int, int, str, str]] = {}
        evidence = tuple(
            ev for plan, (_, found) in zip(self.plans, scored, strict=True)
            for ev in self._evidence(plan.name, found, originals, quotes))
        return TagResult(
            watchlist=self.name, rules_version=self.version, match=strength >= 1.0,
            score=round(strength, 3), scores=scores,
            tags=tuple(name for name, r in ratios.items() if r >= 1.0), evidence=evidence)

    def _place_title(self, folded: Folded, into: Buckets) -> None:
        zone = self.rules.zones.title
        for hit in self.matcher.find(folded.text):
            into.setdefault(hit.concept, []).append(_new_placed((hit, "title", "title", zone, -1, 0)))

    def _place_text(self, folded: Folded, into: Buckets) -> tuple[int, ...]:
        """Place the text's hits; its sentence ends (empty when nothing matched)."""
        hits = self.matcher.find(folded.text)
        if not hits:
            return ()
        shape = layout(folded.text, self.rules.zones)
        _place(hits, shape, self.rules.zones, into)
        return shape.sentence_ends

    def _evidence(self, label: str, found: list[Contribution], originals: dict[str, tuple[str, Folded]],
                  quotes: dict[tuple[str, int], tuple[int, int, str, str]]) -> list[Evidence]:
        ordered = sorted(found, key=_weight)
        against = [c for c in ordered[:_NEGATIVE_EVIDENCE] if c[1] < 0]
        best = [c for c in ordered[::-1][: _EVIDENCE_PER_LABEL - len(against)] if c[1] > 0]
        concepts = self.rules.concepts
        out = []
        for p, weight in best + against:
            if isinstance(p, Relation):
                out.append(_relation_evidence(label, p, weight, originals[p.field], concepts))
                continue
            key = (p.field, p.hit.start)
            quote = quotes.get(key)
            if quote is None:
                quote = quotes[key] = _quote(p, *originals[p.field])
            start, end, snippet, surface = quote
            out.append(Evidence(label, p.hit.term, concepts[p.hit.concept].name, p.where, start, end, snippet,
                                round(weight, 3), surface))
        return out


def _quote(p: Placed, original: str, folded: Folded) -> tuple[int, int, str, str]:
    """Original [start, end) of a hit (stems run to the word end), its snippet and its surface text."""
    start, end = p.hit.start, word_end(folded.text, p.hit.end)
    if folded.offsets is not None:
        start, end = folded.original_span(start, end)
    lo, hi = max(0, start - _SNIPPET), min(len(original), end + _SNIPPET)
    snippet = ("…" if lo > 0 else "") + _one_line(original[lo:hi]) + ("…" if hi < len(original) else "")
    return start, end, snippet, original[start:end]


def _one_line(chunk: str) -> str:
    """`chunk` with every run of whitespace made one space, and trimmed (the common case needs no split)."""
    return " ".join(chunk.split()) if _SPACING.search(chunk) else chunk.strip(" ")


def _relation_evidence(label: str, r: Relation, weight: float, original: tuple[str, Folded],
                       concepts: tuple[Concept, ...]) -> Evidence:
    """A relation (or a side set aside): the span from its first to its last hit, its clause as snippet,
    the patterns of its hits in text order as term, and the two sides as published."""
    text, folded = original
    ft = folded.text
    a, b, cue = r.a.hit, r.b.hit, r.cue.hit
    a_end, b_end, cue_end = word_end(ft, a.end), word_end(ft, b.end), word_end(ft, cue.end)
    first, last = min(a.start, b.start, cue.start), max(a_end, b_end, cue_end)
    clause = (r.start, min(r.end, len(ft)))
    if folded.offsets is None:  # the text folded one character to one: offsets are the same
        start, end, a_span, b_span, (lo, hi) = first, last, (a.start, a_end), (b.start, b_end), clause
    else:
        span = folded.original_span
        (start, end), a_span, b_span, (lo, hi) = span(first, last), span(a.start, a_end), span(b.start, b_end), \
            span(*clause)
    lo, hi = min(max(lo, start - _CLAUSE // 2), start), max(min(hi, end + _CLAUSE // 2), end)
    snippet = ("…" if lo > 0 else "") + _one_line(text[lo:hi]) + ("…" if hi < len(text) else "")
    concept = r.kind if r.kind in ("relation", "venue") else concepts[cue.concept].name
    parts = sorted((a, b, cue), key=_hit_start)
    term = f"{parts[0].term} … {parts[1].term} … {parts[2].term}"
    return Evidence(label, term, concept, r.a.where, start, end, snippet, round(weight, 3), text[start:end],
                    (text[a_span[0]:a_span[1]], text[b_span[0]:b_span[1]]))


def _place(hits: list[Hit], shape: Layout, zones: Zones, into: Buckets) -> None:
    """Zone, sentence and paragraph of every body hit, into per-concept buckets (a hot loop: kept flat).

    Hits outside the story (page boilerplate around it) and on headline-list lines are damped; story
    text from `tail_start` on counts the tail weight instead of the body weight."""
    ends, starts, lead_end = shape.sentence_ends, shape.line_starts, shape.lead_end
    first, tail_start = shape.story_start, shape.tail_start
    lead, body, tail = zones.lead, zones.body, zones.tail
    factors = _line_factors(shape, zones)
    get = into.get
    for hit in hits:
        start = hit.start
        paragraph = bisect_right(starts, start) - 1
        if start < lead_end and start >= first:
            zone, where = lead, "lead"
        else:
            zone, where = (body if start < tail_start else tail), "body"
        if factors is not None:
            zone *= factors[paragraph]
        placed = _new_placed((hit, "text", where, zone, bisect_right(ends, start), paragraph))
        bucket = get(hit.concept)
        if bucket is None:
            into[hit.concept] = [placed]
        else:
            bucket.append(placed)


def _line_factors(shape: Layout, zones: Zones) -> list[float] | None:
    """Per line: the damping of list lines times that of lines outside the story (None: all 1.0)."""
    starts, lists, first, last = shape.line_starts, shape.list_lines, shape.story_start, shape.story_end
    if not lists and first == 0 and last > starts[-1]:
        return None
    factors = [1.0 if first <= s < last else zones.boilerplate for s in starts]
    for i in lists:
        factors[i] *= zones.list_lines
    return factors


def compile_rules(rules: Rules) -> Watchlist:
    """Build the automaton and label plans for validated rules."""
    index = {c.name: i for i, c in enumerate(rules.concepts)}
    plans = tuple(LabelPlan.build(lab, index, rules.concepts) for lab in rules.labels)
    return Watchlist(rules, Matcher(rules.concepts), plans, RelationRules.build(rules.relations))


def parse_watchlist(text: str, source: str) -> Watchlist:
    """Parse, validate and compile a rules file's text; errors name `source`."""
    return compile_rules(parse_rules(text, source))
