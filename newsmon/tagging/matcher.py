"""All terms of a watchlist in one Aho-Corasick automaton, and the word-boundary checks around it.

Each term is folded (see `normalize`) and keyed in the automaton by its first literal part:
the whole term for plain words and stems; for phrases the first word with the separator after it
("moscow ", "azerbaijan-" and "azerbaijan -"), or its stem when the first word ends with ``*``. A key hit is
then checked: whole words need a non-word character after them, stems are extended to the end of
the word, and phrases are confirmed with a small anchored regular expression that allows any
whitespace between words and spaced dashes around ``-``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import ahocorasick

from newsmon.tagging.normalize import fold
from newsmon.tagging.rules import Concept

WHOLE, STEM, PHRASE = 0, 1, 2
_MAX_CONCEPTS = 1 << 16
_TAIL = re.compile(r"\w*")


class Hit(NamedTuple):
    """One term found in a folded field: [start, end) are folded offsets; a stem hit ends with its stem."""

    concept: int
    weight: float
    term: str
    start: int
    end: int


_new_hit = partial(tuple.__new__, Hit)


@dataclass(frozen=True)
class _Entry:
    concepts: tuple[int, ...]
    weight: float
    term: str
    kind: int
    pattern: re.Pattern[str] | None


def _phrase_pattern(folded: str) -> str:
    words = []
    for word in folded.split():
        parts = [re.escape(p.removesuffix("*")) + (r"\w*" if p.endswith("*") else "")
                 for p in word.split("-")]
        words.append(r"\s*-\s*".join(parts))
    tail = "" if folded.endswith("*") else r"(?!\w)"
    return r"\s+".join(words) + tail


def _entry(term: str, concepts: tuple[int, ...], weight: float) -> tuple[tuple[str, ...], _Entry]:
    """Automaton keys and entry for one term; phrases are keyed by their first word and separator."""
    folded = " ".join(fold(term).text.split())
    if " " in folded or "-" in folded:
        m = re.match(r"([^\s*-]+)(\*?)([\s-])", folded)
        assert m is not None  # check_term guarantees a first stem
        word, star, sep = m.groups()
        keys = (word,) if star else (word + "-", word + " -") if sep == "-" else (word + " ",)
        return keys, _Entry(concepts, weight, term, PHRASE, re.compile(_phrase_pattern(folded)))
    if folded.endswith("*"):
        return (folded[:-1],), _Entry(concepts, weight, term, STEM, None)
    return (folded,), _Entry(concepts, weight, term, WHOLE, None)


class Matcher:
    """Finds concept hits in folded text; built once per watchlist, safe to share."""

    def __init__(self, concepts: tuple[Concept, ...]) -> None:
        index = {c.name: i for i, c in enumerate(concepts)}
        table: dict[str, list[_Entry]] = {}
        seen: set[tuple[str, int]] = set()
        for i, concept in enumerate(concepts):
            targets = (i, *(index[name] for name in concept.implies))
            for _lang, term in concept.terms:
                folded = fold(term).text
                if (folded, i) not in seen:  # "azərbaycan*" and "azerbaycan*" are one term
                    seen.add((folded, i))
                    keys, entry = _entry(term, targets, concept.weight)
                    for key in keys:
                        table.setdefault(key, []).append(entry)
        self._automaton = ahocorasick.Automaton()
        for key, entries in table.items():
            # One flat row per (entry, concept), so the hot loop in `find` has no inner loop over concepts.
            rows = tuple((e.kind, e.weight, e.term, c, e.pattern) for e in entries for c in e.concepts)
            self._automaton.add_word(key, (len(key), rows))
        self._automaton.make_automaton()

    def find(self, text: str) -> list[Hit]:
        """Every hit in folded `text`, at most one per concept and start offset (the longest); unordered."""
        best: dict[int, Hit] = {}
        get = best.get
        n = len(text)
        for last, (size, rows) in self._automaton.iter(text):
            start = last - size + 1
            if start:
                before = text[start - 1]
                if before.isalnum() or before == "_":
                    continue
            stop = last + 1
            for kind, weight, term, concept, pattern in rows:
                if kind == WHOLE:
                    if stop < n:
                        after = text[stop]
                        if after.isalnum() or after == "_":
                            continue
                    end = stop
                elif kind == STEM:
                    end = stop  # extended to the word end only when quoted: see word_end
                else:
                    m = pattern.match(text, start)
                    if m is None:
                        continue
                    end = m.end()
                slot = start * _MAX_CONCEPTS + concept
                old = get(slot)
                if old is None or end > old[4]:
                    best[slot] = _new_hit((concept, weight, term, start, end))
        return list(best.values())


def word_end(text: str, pos: int) -> int:
    """The end of the word running through `pos` (stem hits end where their stem ends)."""
    m = _TAIL.match(text, pos)
    return m.end() if m else pos





