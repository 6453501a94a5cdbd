"""Where a hit sits: title, lead or body; which sentence and paragraph; whether on a headline-list line.

Works on folded text. Paragraphs are lines (extracted article text puts one paragraph per line);
sentences end at ``. ! ? … ;`` followed by a space, or at a line end.
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


@dataclass(frozen=True)
class Layout:
    """Sentence and paragraph boundaries of one field, its lead end and its list lines."""

    sentence_ends: tuple[int, ...]
    line_starts: tuple[int, ...]
    lead_end: int
    list_lines: frozenset[int]

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
    return Layout(ends, starts, _lead_end(text, ends, starts, zones.lead_chars), _list_lines(text, starts))


def _lead_end(text: str, ends: tuple[int, ...], starts: tuple[int, ...], lead_chars: int) -> int:
    """The first paragraph, cut after the sentence that crosses `lead_chars`."""
    i = bisect_right(ends, lead_chars - 1)
    cut = ends[i] if i < len(ends) else len(text)
    first = next((s for s in starts[1:] if text[:s].strip()), len(text))
    if first >= lead_chars // 3:
        cut = min(cut, first)
    return cut


def _list_lines(text: str, starts: tuple[int, ...]) -> frozenset[int]:
    """Lines in a run of three or more short lines without closing punctuation (headline lists)."""
    if len(starts) < _LIST_RUN:
        return frozenset()
    marked: set[int] = set()
    run: list[int] = []
    bounds = (*starts, len(text) + 1)
    for i in range(len(starts)):
        line = text[bounds[i]:bounds[i + 1] - 1].strip()
        if not line:
            continue
        if len(line) < _SHORT_LINE and not line.endswith(_CLOSED):
            run.append(i)
            continue
        if len(run) >= _LIST_RUN:
            marked.update(run)
        run = []
    if len(run) >= _LIST_RUN:
        marked.update(run)
    return frozenset(marked)
