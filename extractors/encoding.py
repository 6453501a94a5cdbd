"""Page bytes to text: HTTP charset, then the page's own declaration, then detection (pure).

Servers often send a default charset (``ISO-8859-1``, ``UTF-8``) that does not match the page, and
single-byte charsets such as windows-1251 or KOI8-R decode any bytes without error. So a declared
charset is taken as is only when it is a strict one (UTF-8 fails loudly on the wrong bytes) or when the
header and the page agree; otherwise charset detection decides between the declared candidates. A strict
charset that fails on a few bytes only (one stray byte in a UTF-8 page) is still the page's charset: those
bytes are replaced, the rest of the text is kept.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

# How far into the page to look for <meta charset> or an XML declaration.
_SNIFF_BYTES = 8192
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.\-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF8, "utf_8_sig"),
    (codecs.BOM_UTF32_LE, "utf_32"),
    (codecs.BOM_UTF32_BE, "utf_32"),
    (codecs.BOM_UTF16_LE, "utf_16"),
    (codecs.BOM_UTF16_BE, "utf_16"),
)
# Labels that browsers read as another codec (WHATWG Encoding Standard), plus a BOM-less UTF-16 label,
# which in an HTML page is practically always a copy-paste mistake for UTF-8.
_BROWSER_ALIASES = {
    "latin_1": "cp1252",
    "ascii": "cp1252",
    "iso8859_9": "cp1254",
    "iso8859_11": "cp874",
    "utf_16": "utf_8",
    "utf_16_le": "utf_8",
    "utf_16_be": "utf_8",
}
# Codecs that map (almost) every byte, so a clean decode says little about whether they are right.
_STRICT = {"utf_8", "utf_8_sig", "euc_jp", "euc_kr", "gb2312", "gbk", "gb18030", "big5", "shift_jis"}


@dataclass(frozen=True)
class Decoded:
    """Decoded page text, the codec used and where it came from (bom, header, meta, utf-8, detected)."""

    text: str
    encoding: str
    source: str


def charset_from_content_type(content_type: str | None) -> str | None:
    """The ``charset=`` parameter of a Content-Type header value, if any."""
    match = _HEADER_CHARSET.search(content_type or "")
    return match.group(1) if match else None


def normalise_codec(label: str | None) -> str | None:
    """Python's codec name for a charset label, with browser aliases applied; None if unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name.replace("-", "_")
    except LookupError:
        return None
    return _BROWSER_ALIASES.get(name, name)


def declared_charset(body: bytes) -> str | None:
    """The charset the page declares in a <meta> tag or an XML declaration, as written."""
    head = body[:_SNIFF_BYTES]
    match = _XML_DECLARATION.search(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


def decode_html(body: bytes, http_charset: str | None = None) -> Decoded:
    """Decode page bytes: BOM, then a declared charset that decodes cleanly, then detection."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return Decoded(body.decode(codec, errors="replace"), codec, "bom")
    if body.isascii():
        return Decoded(body.decode("ascii"), "ascii", "ascii")
    header = normalise_codec(http_charset)
    meta = normalise_codec(declared_charset(body))
    sources = {codec: source for codec, source in ((meta, "meta"), (header, "header")) if codec}
    declared = [codec for codec in sources if _decodes(body, codec)]
    if len(declared) == 1 and (declared[0] in _STRICT or header == meta):
        return Decoded(body.decode(declared[0]), declared[0], sources[declared[0]])
    if not declared:  # a declared UTF-8 (or other strict codec) with a few bad bytes: those bytes are replaced
        for codec in (*(c for c in sources if c in _STRICT), "utf_8"):
            if mostly_decodes(body, codec)[0]:
                return Decoded(body.decode(codec, errors="replace"), codec, sources.get(codec, "utf-8"))
    return _detect(body, declared, sources)


_ESCAPED = re.compile("[\udc80-\udcff]")


def mostly_decodes(body: bytes, codec: str) -> tuple[bool, int]:
    """(whether `body` is text in `codec` save for a few bad bytes, how many bytes are bad).

    It is when no byte is bad, or when at least 4 in 5 of its non-ASCII characters decode: one stray byte in
    a UTF-8 feed is that byte's fault, while text in another charset fails on nearly every non-ASCII byte
    (and a body that mixes two charsets about evenly is left to detection).
    """
    try:
        text = body.decode(codec, errors="surrogateescape")
    except LookupError:
        return False, 0
    bad = len(_ESCAPED.findall(text))
    good = len(text) - len(text.encode("ascii", errors="ignore")) - bad
    return bad == 0 or good >= 4 * bad, bad


def _decodes(body: bytes, codec: str) -> bool:
    try:
        body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _detect(body: bytes, declared: list[str], sources: dict[str, str]) -> Decoded:
    """Detection; a declared candidate wins when detection finds it as good as anything else."""
    best = from_bytes(body).best()
    if best is None:
        codec = declared[0] if declared else "utf_8"
        return Decoded(body.decode(codec, errors="replace"), codec, sources.get(codec, "fallback"))
    readings = {normalise_codec(name) for name in best.could_be_from_charset}
    for codec in declared:
        if codec in readings:
            return Decoded(body.decode(codec), codec, sources[codec])
    codec = normalise_codec(best.encoding) or "utf_8"
    return Decoded(body.decode(codec, errors="replace"), codec, "detected")
