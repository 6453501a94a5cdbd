"""Parse and validate watchlist rules from TOML text (pure: text in, frozen `Rules` out).

Rule file format
================

A watchlist is one TOML file. Top-level keys::

    name = "az_ru"                                  # watchlist name, shown in results and alerts
    version = "2025.06.1"                           # rules version, carried in every result
    match = "az_ru and (energy or cooperation)"     # boolean expression over label names
    repeat = 0.5                                    # optional: each repeat of a term counts this much
                                                    # of the one before (0.5: 1, .5, .25, ...)

``[zones]`` (optional) weights where a hit sits: ``title`` (2.0), ``lead`` (1.5) and ``body`` (1.0).
The story is the text from its first prose line (60+ characters ending a sentence) to its last one;
lines before and after it (navigation, section headers, "related" and "latest news" lists, footers)
count ``boilerplate`` (0.2). The lead is the story's first paragraph, cut after the sentence that
crosses ``lead_chars`` (300). Story text more than ``tail_chars`` (0: never) past the story's start
counts ``tail`` instead of ``body``. ``list_lines`` (0.2) multiplies hits on lines that belong to a
run of three or more short lines without closing punctuation: headline lists and sidebars.

``[proximity]`` (optional) scores two concepts seen together (see ``pairs`` below): once per sentence
holding both (``sentence``, 2.0), per paragraph holding both in different sentences
(``paragraph``, 1.0), or once if they are only in the same document (``document``, 0.25). A sentence
that also holds a ``near`` concept (say, "met", "signed") counts ``near`` (1.5) times more. A sentence
with more than ``crowd_max`` (1) hits of a ``crowd`` concept (other countries) is a list, not a
relation: it counts as a paragraph.

``[concepts.<name>]`` is a group of terms with one ``weight`` (1.0), one list per language
(``en``, ``ru``, ``az``, ``tr``, any 2-3 letter code) and optional ``implies``: other concepts every
hit also counts for (SOCAR -> azerbaijan). Terms match case- and accent-insensitively:

* ``gas`` matches the whole word only (not "gasoline");
* ``азербайджан*`` matches words starting with the stem: Азербайджана, Азербайджаном, ...;
* ``intergovernmental commission*`` or ``межправительственн* комисси*``: a phrase; a ``*`` may end
  any word, words may be separated by runs of spaces, and a ``-`` inside a term also matches
  spaced or typographic dashes ("Azerbaijan - Russia", "Azerbaijan–Russia").

``[labels.<name>]`` defines a label (labels are listed in file order)::

    threshold = 3.0                 # tag the label when its score reaches this
    any = ["energy_core"]           # OR group: each hit adds concept weight x zone weight
    pairs = [["azerbaijan", "russia"]]   # both sides must occur; scored by [proximity]
    near = ["bilateral_action"]     # concepts that boost a pair sentence
    crowd = ["third_countries"]     # concepts that turn a pair sentence into a list
    not = ["conflict"]              # NOT group: its hits ...
    not_mode = "subtract"           # ... subtract their score, or "veto" the label outright

Relations (optional, for a label with ``pairs``): two sides named together are not yet a relation.
With ``cue`` set, a pair counts fully only in a clause (a sentence cut at ``; : ( )``, spaced dashes
and a comma before one of ``[relations] clause_words``) that also holds a cue concept: a verb or
preposition of dealing ("signed", "supplies to", "talks with", "stake in", "between")::

    cue = ["relation"]              # a clause with both sides and one of these is a relation
    loose = 0.25                    # both sides seen together without one count this fraction
    avoid = ["avoidance"]           # a side within [relations] window characters of one of these
                                    # is the thing avoided ("to replace Russian gas"): not a party
    brand = ["outlets"]             # a company (a term of a concept that implies a side) within
                                    # [relations] brand_window characters of one of these, with no
                                    # cue between, is a brand ("Lukoil stations"): not a party
    mediate = ["mediation"]         # in a clause that names another party (a ``crowd`` concept), a
                                    # side within the window of one of these, or named as a place (right
                                    # after one of ``[relations] venue_words``, or its word ending in
                                    # one of ``venue_endings``), is the mediator or the venue ("talks in
                                    # Kazan hosted by Lavrov", "Moskvada"): not a party

Only the two strongest sentences holding both sides and a cue (by zone: the title, then the lead) are
judged clause by clause; other sentences holding both sides count ``loose``.
In a clause that names another party, a side joined to it by one of ``[relations] joiners``
("Azerbaijan and Armenia") but not to the other side is that party's counterpart: no relation when the
other side comes after them or the clause holds a ``mediate`` concept. A relation's evidence quotes the
clause and names the two sides; a set-aside side is negative evidence. ``[relations]`` (optional) holds
``clause_words``, ``joiners``, ``venue_words``, ``venue_endings`` (plain words, any language), ``window``
(40 characters) and ``brand_window`` (15 characters).

Every key is checked; a mistake raises `RulesError` naming the file, the key and what is expected.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from newsmon.errors import RulesError
from newsmon.tagging.expr import Expr, ExprSyntaxError, parse_expr
from newsmon.tagging.normalize import fold

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LANG = re.compile(r"^[a-z]{2,3}$")
_RESERVED = {"and", "or", "not"}
_MAX_CONCEPTS = 10_000


@dataclass(frozen=True)
class Zones:
    """Weights by position in the article."""

    title: float = 2.0
    lead: float = 1.5
    body: float = 1.0
    lead_chars: int = 300
    list_lines: float = 0.2
    boilerplate: float = 0.2
    tail: float = 1.0
    tail_chars: int = 0


@dataclass(frozen=True)
class Proximity:
    """How much two concepts seen together count, by distance."""

    sentence: float = 2.0
    paragraph: float = 1.0
    document: float = 0.25
    near: float = 1.5
    crowd_max: int = 1


@dataclass(frozen=True)
class Relations:
    """How a clause is cut and when two named parties are joined."""

    clause_words: tuple[str, ...] = ()
    joiners: tuple[str, ...] = ()
    venue_words: tuple[str, ...] = ()
    venue_endings: tuple[str, ...] = ()
    window: int = 40
    brand_window: int = 15


@dataclass(frozen=True)
class Concept:
    """A named group of weighted terms; `terms` holds (language, term) pairs as written."""

    name: str
    weight: float
    terms: tuple[tuple[str, str], ...]
    implies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Label:
    """How one label is scored from concept hits."""

    name: str
    threshold: float
    any: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    near: tuple[str, ...] = ()
    crowd: tuple[str, ...] = ()
    not_: tuple[str, ...] = ()
    not_mode: str = "subtract"
    cue: tuple[str, ...] = ()
    loose: float = 1.0
    avoid: tuple[str, ...] = ()
    mediate: tuple[str, ...] = ()
    brand: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rules:
    """A validated watchlist definition."""

    name: str
    version: str
    source: str
    match: Expr
    match_text: str
    zones: Zones
    proximity: Proximity
    repeat: float
    concepts: tuple[Concept, ...]
    labels: tuple[Label, ...]
    relations: Relations = Relations()


class _Reader:
    """Typed access to a TOML table that reports the file and the dotted key on every mistake."""

    def __init__(self, source: str, data: Mapping[str, Any], path: str = "") -> None:
        self.source, self.data, self.path = source, data, path

    def key(self, name: str) -> str:
        if not name:
            return self.path
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, expected: str, got: object) -> RulesError:
        return RulesError(f"{self.key(name)}: expected {expected}, got {got!r}", url=self.source)

    def only(self, allowed: set[str]) -> None:
        for name in self.data:
            if name not in allowed and not (allowed and "*lang" in allowed and _LANG.match(name)):
                raise self.fail(name, f"one of {sorted(k for k in allowed if k != '*lang')}", name)

    def text(self, name: str, default: str | None = None) -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, "a non-empty string", value)
        return value.strip()

    def number(self, name: str, default: float, *, positive: bool = False, at_most: float = 1e9) -> float:
        value = self.data.get(name, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or value < 0 or (positive and value == 0) or value > at_most:
            low = "> 0" if positive else ">= 0"
            raise self.fail(name, f"a number {low} and <= {at_most:g}", value)
        return float(value)

    def names(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "a list of strings", value)
        return tuple(value)

    def table(self, name: str) -> _Reader:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, "a table", value)
        return _Reader(self.source, value, self.key(name))


def parse_rules(text: str, source: str) -> Rules:
    """Parse rules TOML `text`; `source` (a file name) is named in every error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"not valid TOML: {exc}", url=source) from exc
    top = _Reader(source, data)
    top.only({"name", "version", "match", "repeat", "zones", "proximity", "concepts", "labels", "relations"})
    concepts = _concepts(top.table("concepts"))
    labels = _labels(top.table("labels"), {c.name for c in concepts})
    match_text = top.text("match")
    return Rules(
        name=top.text("name"), version=_version(top), source=source,
        match=_match(top, match_text, {lab.name for lab in labels}), match_text=match_text,
        zones=_zones(top.table("zones")), proximity=_proximity(top.table("proximity")),
        repeat=top.number("repeat", 0.5, at_most=1.0), concepts=concepts, labels=labels,
        relations=_relations(top.table("relations")),
    )


def _version(top: _Reader) -> str:
    value = top.data.get("version")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return top.text("version")


def _match(top: _Reader, text: str, labels: set[str]) -> Expr:
    try:
        expr = parse_expr(text)
    except ExprSyntaxError as exc:
        raise top.fail("match", f"an expression over labels ({exc})", text) from exc
    unknown = sorted(expr.labels() - labels)
    if unknown:
        raise top.fail("match", f"only defined labels {sorted(labels)}", ", ".join(unknown))
    return expr


def _zones(r: _Reader) -> Zones:
    r.only({"title", "lead", "body", "lead_chars", "list_lines", "boilerplate", "tail", "tail_chars"})
    d = Zones()
    return Zones(
        title=r.number("title", d.title), lead=r.number("lead", d.lead), body=r.number("body", d.body),
        lead_chars=int(r.number("lead_chars", d.lead_chars, positive=True, at_most=100_000)),
        list_lines=r.number("list_lines", d.list_lines, at_most=1.0),
        boilerplate=r.number("boilerplate", d.boilerplate, at_most=1.0),
        tail=r.number("tail", d.tail), tail_chars=int(r.number("tail_chars", d.tail_chars, at_most=10_000_000)),
    )


def _relations(r: _Reader) -> Relations:
    r.only({"clause_words", "joiners", "venue_words", "venue_endings", "window", "brand_window"})
    d = Relations()
    words = {}
    for key in ("clause_words", "joiners", "venue_words", "venue_endings"):
        folded = tuple(" ".join(fold(w).text.split()) for w in r.names(key))
        if not all(folded):
            raise r.fail(key, "a list of non-empty words", list(r.names(key)))
        words[key] = folded
    return Relations(words["clause_words"], words["joiners"], words["venue_words"], words["venue_endings"],
                     int(r.number("window", d.window, at_most=10_000)),
                     int(r.number("brand_window", d.brand_window, at_most=10_000)))


def _proximity(r: _Reader) -> Proximity:
    r.only({"sentence", "paragraph", "document", "near", "crowd_max"})
    d = Proximity()
    return Proximity(
        sentence=r.number("sentence", d.sentence), paragraph=r.number("paragraph", d.paragraph),
        document=r.number("document", d.document), near=r.number("near", d.near),
        crowd_max=int(r.number("crowd_max", d.crowd_max, at_most=1000)),
    )


def _concepts(r: _Reader) -> tuple[Concept, ...]:
    if not r.data:
        raise r.fail("", "at least one [concepts.<name>] table", "nothing")
    if len(r.data) > _MAX_CONCEPTS:
        raise r.fail("", f"at most {_MAX_CONCEPTS} concepts", len(r.data))
    out = tuple(_concept(r, name) for name in r.data)
    names = {c.name for c in out}
    for c in out:
        for target in c.implies:
            if target not in names or target == c.name:
                raise r.table(c.name).fail("implies", f"names of other concepts {sorted(names)}", target)
    return out


def _concept(parent: _Reader, name: str) -> Concept:
    _check_name(parent, name)
    r = parent.table(name)
    r.only({"weight", "implies", "*lang"})
    terms: list[tuple[str, str]] = []
    for lang in (k for k in r.data if _LANG.match(k)):
        for term in r.names(lang):
            check_term(term, r, lang)
            terms.append((lang, term.strip()))
    if not terms:
        raise r.fail("en", "at least one term in a language list (en = [...], ru = [...])", "none")
    return Concept(name, r.number("weight", 1.0, positive=True), tuple(terms), r.names("implies"))


def check_term(term: str, r: _Reader, lang: str) -> None:
    """Reject terms the matcher cannot use: empty parts, a ``*`` inside a word, a first stem under 2 letters."""
    words = term.split()
    parts = [p for w in words for p in w.removesuffix("*").split("-")]
    bad = not words or any("*" in w.removesuffix("*") for w in words)
    if bad or not all(fold(p).text for p in parts) or len(fold(parts[0]).text) < 2:
        raise r.fail(lang, "terms of words with an optional trailing '*' and a first stem of 2+ letters", term)


def _labels(r: _Reader, concepts: set[str]) -> tuple[Label, ...]:
    if not r.data:
        raise r.fail("", "at least one [labels.<name>] table", "nothing")
    return tuple(_label(r, name, concepts) for name in r.data)


def _label(parent: _Reader, name: str, concepts: set[str]) -> Label:
    _check_name(parent, name)
    r = parent.table(name)
    r.only({"threshold", "any", "pairs", "near", "crowd", "not", "not_mode", "cue", "loose", "avoid", "mediate",
            "brand"})
    for key in ("any", "near", "crowd", "not", "cue", "avoid", "mediate", "brand"):
        for ref in r.names(key):
            if ref not in concepts:
                raise r.fail(key, f"names of defined concepts {sorted(concepts)}", ref)
    pairs = _pairs(r, concepts)
    if not r.names("any") and not pairs:
        raise r.fail("any", "at least one concept in 'any' or one pair in 'pairs'", [])
    mode = r.text("not_mode", "subtract")
    if mode not in ("subtract", "veto"):
        raise r.fail("not_mode", "'subtract' or 'veto'", mode)
    for key in ("cue", "avoid", "mediate", "brand"):
        if r.names(key) and not pairs:
            raise r.fail(key, "a label with 'pairs' (relations are between the two sides of a pair)", key)
    return Label(name, r.number("threshold", 0, positive=True), r.names("any"), pairs,
                 r.names("near"), r.names("crowd"), r.names("not"), mode, r.names("cue"),
                 r.number("loose", 1.0, at_most=1.0), r.names("avoid"), r.names("mediate"), r.names("brand"))


def _pairs(r: _Reader, concepts: set[str]) -> tuple[tuple[str, str], ...]:
    value = r.data.get("pairs", [])
    ok = isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) and x in concepts for x in p)
        for p in value)
    if not ok:
        raise r.fail("pairs", f"a list of [concept, concept] pairs from {sorted(concepts)}", value)
    return tuple((a, b) for a, b in value)


def _check_name(r: _Reader, name: str) -> None:
    if not _NAME.match(name) or name.lower() in _RESERVED:
        raise r.fail(name, "a name of letters, digits and '_' (not and/or/not)", name)
