"""Bound the work of parsing one feed: a document that lists more entries than a run can use is cut down to its
first and last `keep` entries before feedparser sees it (pure).

feedparser builds a tree of dicts for every entry, at ~0.5 ms and ~2-7 KB each: a 9.5 MB feed of 80,000 items
took 35-60 s of CPU and 170-600 MB. A run takes at most `max_entries_per_feed` entries of a feed, and feeds list
newest first or oldest first, so the entries a run can use are among the first or the last ones; the ones in
between are never parsed. The cut is made at the start tags of two entries, so what remains is the same
document with a run of sibling entries left out, and stays well-formed.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from typing import AnyStr

# An entry's start tag: <item>, <item rdf:about=...>, <entry>, <atom:entry>, <item/> (not <itemid> or </item>).
_ENTRY_BYTES = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)(?=[\s/>])", re.IGNORECASE)
_ENTRY_TEXT = re.compile(_ENTRY_BYTES.pattern.decode(), re.IGNORECASE)
# Encodings in which the ASCII pattern above cannot be matched on the bytes: decoded, cut, encoded again.
_WIDE = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"), (b"<\0?\0", "utf-16-le"), (b"\0<\0?", "utf-16-be"))


def trim_entries(body: bytes, keep: int | None) -> tuple[bytes, int, int]:
    """(body with only its first and last `keep` entries, entries found, entries left out).

    A body with at most 2 x `keep` entries (or any body when `keep` is None) is returned as it is. UTF-16 and
    UTF-32 documents are decoded to be cut; one that does not decode is returned as it is (feedparser reports
    it)."""
    if keep is None:
        return body, 0, 0
    codec = next((name for mark, name in _WIDE if body.startswith(mark)), None)
    if codec is None:
        return _trim(body, _ENTRY_BYTES, keep)
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        return body, 0, 0
    cut_text, found, left_out = _trim(text, _ENTRY_TEXT, keep)
    return (cut_text.encode(codec) if left_out else body), found, left_out


def _trim(doc: AnyStr, pattern: re.Pattern[AnyStr], keep: int) -> tuple[AnyStr, int, int]:
    keep = max(keep, 1)
    head: list[int] = []
    tail: deque[int] = deque(maxlen=keep)
    found = 0
    for m in pattern.finditer(doc):
        found += 1
        if len(head) <= keep:
            head.append(m.start())
        else:
            tail.append(m.start())
    if found <= 2 * keep:
        return doc, found, 0
    # head[keep] starts the first entry left out; tail[0] the first of the last `keep` entries kept
    return doc[:head[keep]] + doc[tail[0]:], found, found - 2 * keep
