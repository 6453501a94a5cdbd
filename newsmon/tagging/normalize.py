"""Text folding for matching: one function used for rule terms and article text alike.

`fold` applies compatibility decomposition (NFKD, which includes everything NFKC unifies),
drops combining marks, casefolds and maps script variants onto one spelling:

* Azerbaijani ``ə`` / ``ä`` / ``ǝ`` and Cyrillic ``ә`` become ``e`` / ``е``; dotless ``ı`` becomes ``i``;
* diacritics go, so ``ş ç ğ ö ü`` meet their ASCII spellings and ``ё`` / ``й`` become ``е`` / ``и``;
* every dash becomes ``-``, every apostrophe ``'``, every space ``' '`` and ``\\r`` a newline.

Most text folds one character to one character, so the folded string lines up with the original.
When it does not (decomposed accents, ligatures, ``ß``), `Folded.offsets` maps every folded
position back to the original one, so evidence can always quote the text as published.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_SPECIAL = {
    "ə": "e", "ä": "e", "ǝ": "e", "ә": "е", "ı": "i", "\r": "\n",
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-", "﹣": "-", "－": "-",
    "’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "′": "'",
}
_PRECOMPUTED = ((0x80, 0x530), (0x1E00, 0x1F00), (0x2000, 0x2200))
_KEEP = frozenset("йЙ")  # a letter of its own in Russian, not an accented и
_FREQUENT = "əışçğöüёä\xa0–—’"


@dataclass(frozen=True)
class Folded:
    """A folded string and, when lengths differ, the original index of every folded character."""

    text: str
    offsets: tuple[int, ...] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the folded text to the original text."""
        if self.offsets is None:
            return start, end
        if end <= start:
            return self.offsets[start], self.offsets[start]
        last = self.offsets[end - 1]
        following = self.offsets[end]  # after marks dropped from the last character, if any
        return self.offsets[start], following if following > last else last + 1


@lru_cache(maxsize=65536)
def fold_char(ch: str) -> str:
    """Fold one character; letters may expand (``ß`` -> ``ss``), marks vanish, symbols stay."""
    low = ch.casefold()
    if low in _SPECIAL:  # before decomposing: Ä is Azerbaijani ä (e), not A with a diaeresis
        return _SPECIAL[low]
    if ch in _KEEP:
        return low
    out = unicodedata.normalize("NFKD", ch).casefold()
    out = unicodedata.normalize("NFKD", out)
    out = "".join(_SPECIAL.get(c, c) for c in out if not unicodedata.combining(c))
    if len(out) != 1 and out and not unicodedata.category(ch).startswith("L"):
        return ch.casefold() if len(ch.casefold()) == 1 else ch
    if out.isspace() and out != "\n":
        return " "
    return out


def _one_to_one_table() -> tuple[dict[str, str], str]:
    """Characters in common ranges whose fold is a different single character, and those that are not 1:1."""
    table: dict[str, str] = {}
    awkward: list[str] = []
    for lo, hi in _PRECOMPUTED:
        for cp in range(lo, hi):
            ch = chr(cp)
            folded = fold_char(ch)
            if len(folded) != 1:
                awkward.append(ch)
            elif folded != ch and ch not in _KEEP:
                table[ch] = folded
    for ch in map(chr, range(0x80)):  # ASCII that folds past casefold: tab, \r, the separators \x1c-\x1f, `
        if fold_char(ch) != ch.casefold():
            table[ch] = fold_char(ch)
    return table, "".join(awkward)


_TABLE, _AWKWARD = _one_to_one_table()
_ASCII = str.maketrans({ch: _TABLE[ch] for ch in _TABLE if ch.isascii()})
_ASCII_ODD = re.compile("[" + re.escape("".join(ch for ch in _TABLE if ch.isascii())) + "]")
_ranges = "".join(f"{chr(lo)}-{chr(hi - 1)}" for lo, hi in _PRECOMPUTED)
_ATTENTION = re.compile(
    "[" + re.escape("".join(_TABLE) + _AWKWARD) + "]|[^\\x00-\\x7f" + _ranges + "]"
)


def fold(text: str) -> Folded:
    """Fold `text` for matching; see the module docstring."""
    low = (text.replace("İ", "I") if "İ" in text else text).casefold()
    if len(low) != len(text):
        return _fold_slow(text)
    if low.isascii():
        return Folded(low.translate(_ASCII) if _ASCII_ODD.search(low) else low)
    for ch in _FREQUENT:
        if ch in low:
            low = low.replace(ch, _TABLE[ch])
    found = set(_ATTENTION.findall(low))
    if all(ch in _TABLE for ch in found):
        for ch in found:
            low = low.replace(ch, _TABLE[ch])
        return Folded(low)
    return _fold_slow(text)


def _fold_slow(text: str) -> Folded:
    """`fold_char` of every character, joined, with offsets: one translate table of the text's own distinct
    characters does the folding in C, and offsets are built a run of 1:1 characters at a time (a Python loop over
    every character took ~2 ms of a 5 KB page, a third of tagging it)."""
    table = {ord(ch): out for ch in set(text) if (out := fold_char(ch)) != ch}
    uneven = "".join(chr(cp) for cp, out in table.items() if len(out) != 1)
    folded = text.translate(table)
    if not uneven:  # one to one after all (e.g. CJK, outside the precomputed ranges): positions are the same
        return Folded(folded)
    offsets: list[int] = []
    done = 0
    for m in re.finditer(f"[{re.escape(uneven)}]", text):
        i = m.start()
        offsets += range(done, i)
        offsets += [i] * len(table[ord(text[i])])
        done = i + 1
    offsets += range(done, len(text) + 1)
    return Folded(folded, tuple(offsets))
