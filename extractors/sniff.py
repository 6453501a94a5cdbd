"""What a fetched body is before it is parsed (pure): undo a stray gzip layer, refuse what is not HTML."""

from __future__ import annotations

import json
import zlib

from newsmon.errors import ExtractionEmpty, ExtractionError

# Largest page we inflate when a server sent gzip bytes without saying so.
MAX_INFLATED_BYTES = 20_000_000

# (magic bytes, what the page is); checked before the Content-Type, which servers get wrong.
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (e.g. an office document)"),
    (b"\xd0\xcf\x11\xe0", "a legacy office document"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
)
_NOT_HTML_TYPES = (
    ("application/pdf", "a PDF document"),
    ("image/", "an image"),
    ("application/json", "JSON"),
    ("+json", "JSON"),
    ("text/json", "JSON"),
    ("audio/", "an audio file"),
    ("video/", "a video"),
    ("application/zip", "a ZIP archive"),
    ("application/msword", "an office document"),
    ("application/vnd.", "an office document"),
    ("font/", "a font"),
    ("text/css", "a stylesheet"),
    ("javascript", "a script"),
)


def inflate(body: bytes, url: str) -> bytes:
    """Undo a gzip layer left on the body by a server that did not declare it."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    try:
        return zlib.decompressobj(wbits=31).decompress(body, MAX_INFLATED_BYTES)
    except zlib.error as err:
        raise ExtractionError("page is a broken gzip stream; re-fetch it", url=url) from err


def refuse_non_html(body: bytes, url: str, content_type: str | None) -> None:
    if not body.strip():
        raise ExtractionEmpty("page body is empty; use the feed summary", url=url)
    what = _sniff_binary(body) or _from_content_type(content_type) or _sniff_json(body)
    if what:
        raise ExtractionError(f"page is {what}, not HTML; use the feed summary", url=url)


def _sniff_binary(body: bytes) -> str | None:
    for magic, what in _MAGIC:
        if body.startswith(magic):
            return what
    if body[8:12] == b"WEBP" and body.startswith(b"RIFF"):
        return "a WebP image"
    if body[4:8] == b"ftyp":
        return "an MP4 video"
    return None


def _from_content_type(content_type: str | None) -> str | None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    for marker, what in _NOT_HTML_TYPES:
        if marker in media_type:
            return f"{what} ({media_type})"
    return None


def _sniff_json(body: bytes) -> str | None:
    head = body[:64].lstrip()
    if not head.startswith((b"{", b"[")):
        return None
    try:
        json.loads(body)
    except ValueError:
        return None
    return "JSON"


