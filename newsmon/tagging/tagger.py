"""Text plus compiled rules to a `TagResult` (pure; no I/O, no clock, never raises on str input)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter

from newsmon.records import Evidence
from newsmon.tagging.layout import Layout, layout
from newsmon.tagging.matcher import Hit, Matcher, word_end
from newsmon.tagging.normalize import Folded, fold
from newsmon.tagging.rules import Rules, Zones, parse_rules
from newsmon.tagging.scoring import Buckets, Contribution, LabelPlan, Placed, score_label

_new_placed = partial(tuple.__new__, Placed)
_SNIPPET = 60
_EVIDENCE_PER_LABEL = 6  # strongest hits per label, of which up to two NOT-group hits
_NEGATIVE_EVIDENCE = 2
_weight = itemgetter(1)


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
        self._place_text(folded_text, placed)
        scored = [score_label(plan, placed, self.rules.proximity, self.rules.repeat) for plan in self.plans]
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

    def _place_text(self, folded: Folded, into: Buckets) -> None:
        hits = self.matcher.find(folded.text)
        if hits:
            _place(hits, layout(folded.text, self.rules.zones), self.rules.zones, into)

    def _evidence(self, label: str, found: list[Contribution], originals: dict[str, tuple[str, Folded]],
                  quotes: dict[tuple[str, int], tuple[int, int, str, str]]) -> list[Evidence]:
        ordered = sorted(found, key=_weight)
        against = [c for c in ordered[:_NEGATIVE_EVIDENCE] if c[1] < 0]
        best = [c for c in ordered[::-1][: _EVIDENCE_PER_LABEL - len(against)] if c[1] > 0]
        concepts = self.rules.concepts
        out = []
        for p, weight in best + against:
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
    start, end = folded.original_span(p.hit.start, word_end(folded.text, p.hit.end))
    lo, hi = max(0, start - _SNIPPET), min(len(original), end + _SNIPPET)
    snippet = " ".join(original[lo:hi].split())
    snippet = ("…" if lo > 0 else "") + snippet + ("…" if hi < len(original) else "")
    return start, end, snippet, original[start:end]


def _place(hits: list[Hit], shape: Layout, zones: Zones, into: Buckets) -> None:
    """Zone, sentence and paragraph of every body hit, into per-concept buckets (a hot loop: kept flat)."""
    ends, starts, lead_end, lists = shape.sentence_ends, shape.line_starts, shape.lead_end, shape.list_lines
    lead, body, damp = zones.lead, zones.body, zones.list_lines
    for hit in hits:
        start = hit.start
        paragraph = bisect_right(starts, start) - 1
        zone = lead if start < lead_end else body
        if lists and paragraph in lists:
            zone *= damp
        placed = _new_placed((hit, "text", "lead" if start < lead_end else "body", zone,
                              bisect_right(ends, start), paragraph))
        bucket = into.get(hit.concept)
        if bucket is None:
            into[hit.concept] = [placed]
        else:
            bucket.append(placed)


def compile_rules(rules: Rules) -> Watchlist:
    """Build the automaton and label plans for validated rules."""
    index = {c.name: i for i, c in enumerate(rules.concepts)}
    return Watchlist(rules, Matcher(rules.concepts), tuple(LabelPlan.build(lab, index) for lab in rules.labels))


def parse_watchlist(text: str, source: str) -> Watchlist:
    """Parse, validate and compile a rules file's text; errors name `source`."""
    return compile_rules(parse_rules(text, source))
