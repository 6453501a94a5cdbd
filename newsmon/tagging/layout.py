"""Where a hit sits: title, lead or body; which sentence and paragraph; whether on a headline-list line
or outside the story (page boilerplate); and where a sentence's clauses break.

Works on folded text. Paragraphs are lines (extracted article text puts one paragraph per line);
sentences end at ``. ! ? … ;`` followed by a space, or at a line end. A page's text often keeps its
navigation, section headers and "latest news" lists around the story: the story runs from the first
prose line (60+ characters, ending a sentence) to the last one, and the lead is its first paragraph.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from newsmon.tagging.rules import Zones

_SENTENCE_END = re.compile(r"[.!?…;\n][.!?…;\"'»”)\]]*")
_NEWLINE = re.compile(r"\n")
_CLOSED = tuple(".!?…:;\"'»”)")
_SHORT_LINE = 100
_LIST_RUN = 3
_PROSE_LINE = 60
_LONG_PROSE = 200
_PROSE_END = tuple(".!?…\"'»”)")


@dataclass(frozen=True)
class Layout:
    """Sentence and paragraph boundaries of one field, its lead end and its list lines."""

    sentence_ends: tuple[int, ...]
    line_starts: tuple[int, ...]
    lead_end: int
    list_lines: frozenset[int]
    story_start: int = 0
    story_end: int = 0
    tail_start: int = 0

    def sentence(self, pos: int) -> int:
        return bisect_right(self.sentence_ends, pos)

    def paragraph(self, pos: int) -> int:
        return bisect_right(self.line_starts, pos) - 1


def layout(text: str, zones: Zones) -> Layout:
    """Segment folded body text."""
    n = len(text)
    ends = tuple(e for m in _SENTENCE_END.finditer(text)
                 if (e := m.end()) >= n or text[e].isspace() or text[e - 1] == "\n")
    starts = (0, *(m.end() for m in _NEWLINE.finditer(text)))
    lists, story_start, story_end = _lines(text, starts)
    tail_start = story_start + zones.tail_chars if zones.tail_chars else n + 1
    return Layout(ends, starts, _lead_end(text, ends, starts, zones.lead_chars, story_start), lists,
                  story_start, story_end, tail_start)


def _lead_end(text: str, ends: tuple[int, ...], starts: tuple[int, ...], lead_chars: int, begin: int) -> int:
    """The story's first paragraph (from `begin`), cut after the sentence that crosses `lead_chars`."""
    i = bisect_right(ends, begin + lead_chars - 1)
    cut = ends[i] if i < len(ends) else len(text)
    first = next((s for s in starts[1:] if s > begin and text[begin:s].strip()), len(text))
    if first - begin >= lead_chars // 3:
        cut = min(cut, first)
    return cut


def _lines(text: str, starts: tuple[int, ...]) -> tuple[frozenset[int], int, int]:
    """Lines in a run of three or more short lines without closing punctuation (headline lists), and the
    story's span: from the first prose line to the end of the last one (the whole text if none is)."""
    marked: set[int] = set()
    run: list[int] = []
    bounds = (*starts, len(text) + 1)
    prose: list[tuple[int, int, bool]] = []  # (line, its rank among non-empty lines, whether long)
    short: list[int] = []  # short lines without closing punctuation: list items, headlines, "read also"
    rank = 0
    for i in range(len(starts)):
        line = text[bounds[i]:bounds[i + 1] - 1].strip()
        if not line:
            continue
        rank += 1
        size = len(line)
        if size < _SHORT_LINE and not line.endswith(_CLOSED):  # never prose: _PROSE_END is within _CLOSED
            run.append(i)
            short.append(i)
            continue
        if size >= _PROSE_LINE and line.endswith(_PROSE_END):
            prose.append((i, rank, size >= _LONG_PROSE))
        if len(run) >= _LIST_RUN:
            marked.update(run)
        run = []
    if len(run) >= _LIST_RUN:
        marked.update(run)
    if not prose:
        return frozenset(marked), 0, len(text) + 1
    # A story is long prose lines or prose lines at most one line apart: a lone short prose line among
    # navigation (a teaser, a caption, a footer) neither starts nor ends it.
    kept = [i for k, (i, r, long) in enumerate(prose)
            if long or (k and r - prose[k - 1][1] <= 2) or (k + 1 < len(prose) and prose[k + 1][1] - r <= 2)]
    kept = kept or [prose[0][0]]
    first, last = kept[0], kept[-1]
    # Inside the story, a lone headline-like line ("read also: ...") counts like a list line.
    marked.update(i for i in short if first < i < last)
    return frozenset(marked), starts[first], bounds[last + 1]


def clause_breaks(text: str, start: int, end: int, words: re.Pattern[str] | None) -> list[int]:
    """Offsets in [start, end) of folded `text` where a new clause begins: after ``; : ( )`` and spaced
    dashes, and at a comma followed by one of the clause words (`words`, compiled by `clause_pattern`)."""
    out = [m.end() for m in _HARD_BREAK.finditer(text, start, end)]
    dash = text.find(" - ", start, end)
    while dash >= 0:  # folded text: every dash is "-" and every space " "
        out.append(dash + 3)
        dash = text.find(" - ", dash + 1, end)
    if words is not None and text.find(",", start, end) >= 0:
        out += [m.start() for m in words.finditer(text, start, end)]
    if len(out) > 1:
        out.sort()
    return out


def clause_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """Comma, then one of `words` (folded) as a whole word: where a subordinate clause starts."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(r",\s+(?:" + alternatives + r")(?!\w)")


_HARD_BREAK = re.compile(r"[;:()\[\]]")
