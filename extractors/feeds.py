"""Feed bytes to entry records with feedparser (pure: feedparser is never allowed to fetch)."""

from __future__ import annotations

import calendar
import codecs
import html
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
from charset_normalizer import from_bytes

from extractors.encoding import charset_from_content_type, declared_charset, mostly_decodes, normalise_codec
from extractors.feedtrim import trim_entries
from newsmon.errors import FeedParseError
from newsmon.records import Entry, stable_id

TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|yclid|mc_cid|mc_eid|_ga|ref|ref_src|cmpid|from)$", re.I)
_TAGS = re.compile(r"<[^>]+>")
_XML_ENCODING = re.compile(r"""^(\ufeff?\s*<\?xml[^>]*?)\s+encoding\s*=\s*["'][^"']*["']""")


def normalize_link(url: str) -> str:
    """Canonical form of an entry link: lower-case scheme/host, no default port, fragment or tracking query.

    A malformed link (a port out of range, a broken IPv6 literal) is returned as it is: its fetch then
    records the error for that page instead of the parser failing the whole run."""
    try:
        parts = urlsplit(url.strip())
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return url.strip()
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not TRACKING_PARAMS.match(k)])
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", query, ""))


def strip_html(text: str) -> str:
    """Plain text of a feed's HTML snippet (summaries are HTML in most feeds)."""
    return " ".join(html.unescape(_TAGS.sub(" ", text)).split())


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed document: its entries (capped), the parser's complaint if any, and hints for polling."""

    entries: tuple[Entry, ...]
    bozo: str | None = None
    title: str | None = None
    ttl_minutes: int | None = None
    dropped: int = 0  # entries in the middle of a long document that were not read (extractors.feedtrim)


def parse_feed(body: bytes, feed_url: str, *, base_url: str | None = None,
               headers: Mapping[str, str] | None = None, max_entries: int = 500) -> tuple[list[Entry], str | None]:
    """Parse feed bytes. Returns (entries, bozo note) or raises FeedParseError naming the feed."""
    doc = read_feed(body, feed_url, base_url=base_url, headers=headers, max_entries=max_entries)
    return list(doc.entries), doc.bozo


def read_feed(body: bytes, feed_url: str, *, base_url: str | None = None,
              headers: Mapping[str, str] | None = None, max_entries: int = 500) -> ParsedFeed:
    """Parse feed bytes into a ParsedFeed, or raise FeedParseError naming the feed and what to do.

    `base_url` (the URL after redirects) resolves relative links. A "bozo" feed that still yields
    entries is kept (the note says what was wrong). Entries come in document order: all of them, or of a
    document that lists more than 2 x `max_entries`, its first and last `max_entries` (the run's cap applies
    later, to the new stories among them, newest first: extractors.identity.resolve_entries).
    """
    base = base_url or feed_url
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    hdrs.setdefault("content-location", base)
    hdrs["content-type"] = xml_media_type(hdrs.get("content-type", ""), body)
    body, listed, left_out = trim_entries(body, max_entries)  # parsing cost and memory grow with the entries
    parsed, bozo, note = _parse(body, hdrs)
    if left_out:
        note = (f"{note}; " if note else "") + (f"the feed lists {listed:,} entries; only its first and last "
                                                f"{max_entries} were read")
    meta = parsed.get("feed", {})
    raw_entries = parsed.get("entries") or []
    if not raw_entries:
        if parsed.get("version") and _complete(parsed):
            # a feed with nothing in it right now (recovered from its flaws when `note` says any)
            return ParsedFeed((), note, strip_html(meta.get("title") or "") or None, _ttl(meta))
        raise FeedParseError(_why_not_a_feed(body, note), url=feed_url)
    fields = [_fields(raw, base) for raw in raw_entries]
    guids = Counter(f["guid"] for f in fields if f["guid"])
    links = Counter(normalize_link(f["link"]) for f in fields if _is_web(f["link"]))
    host = (urlsplit(feed_url).hostname or "").lower()
    entries = [e for f in fields
               if (e := _entry(f, feed_url, host, meta, guid_unique=guids[f["guid"]] == 1,
                               link_unique=_is_web(f["link"]) and links[normalize_link(f["link"])] == 1))]
    return ParsedFeed(tuple(entries), note, strip_html(meta.get("title") or "") or None, _ttl(meta),
                      dropped=left_out)


def _fields(raw: Any, base: str) -> dict[str, Any]:
    link = raw.get("link") or ""
    # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed, with a warning
    updated = _when(dict.get(raw, "updated_parsed"))
    return {"link": _join(base, link) if link else "", "guid": (raw.get("id") or "").strip() or None,
            "title": strip_html(raw.get("title") or ""), "summary": strip_html(raw.get("summary") or ""),
            "updated": updated, "published": _when(dict.get(raw, "published_parsed")) or updated,
            "author": raw.get("author") or None, "language": raw.get("language") or None}


def _entry(f: dict[str, Any], feed_url: str, host: str, feed_meta: Any, *, guid_unique: bool,
           link_unique: bool) -> Entry | None:
    guid, link, title = f["guid"], f["link"], f["title"]
    key, aliases = identities(guid if guid_unique else None, link if link_unique else "", title,
                              f["published"], host=host)
    if key is None:
        if not (title or f["summary"] or link):
            return None
        key = f"entry:{stable_id(normalize_link(link) if _is_web(link) else '', title, f['summary'])}"
    return Entry(feed_url=feed_url, key=key, link=link or (guid if guid and guid.startswith("http") else ""),
                 title=title or f["summary"][:120], summary=f["summary"], guid=guid, author=f["author"],
                 published_at=f["published"], updated_at=f["updated"],
                 language=f["language"] or feed_meta.get("language") or None, aliases=aliases)


def identities(guid: str | None, link: str, title: str, published: datetime | None, *,
               host: str = "") -> tuple[str | None, tuple[str, ...]]:
    """(key, aliases) of an entry. The key is the GUID when there is a usable one, else the normalised link,
    else a title+date fingerprint. Aliases hold all three, so a story is recognised later when its feed
    rotates GUIDs (the link or fingerprint still match) or changes links (the GUID still matches).

    Callers pass guid=None / link="" when that value is not unique within the document. Links to a site's
    front page never identify a story. GUIDs that are not URIs are scoped to the feed's host ("123" of one
    outlet is not "123" of another).
    """
    ids: list[str] = []
    if guid:
        ids.append(f"guid:{guid}" if re.match(r"^[a-z][a-z0-9+.-]*:", guid, re.I) else f"guid:{host}/{guid}")
    norm = normalize_link(link) if _is_web(link) else ""
    if norm and (urlsplit(norm).path.rstrip("/") or urlsplit(norm).query):
        ids.append(norm)
    if title and published:
        ids.append(fingerprint(title, published))
    return (ids[0] if ids else None), tuple(ids)


def fingerprint(title: str, published: datetime) -> str:
    """Title + publication minute: the guard that catches a story whose GUID and link both changed."""
    return "fp:" + stable_id(" ".join(title.lower().split()), published.strftime("%Y-%m-%dT%H:%M"))


def entry_key(guid: str | None, link: str, title: str, published: datetime | None) -> str | None:
    """The story's identity key (see `identities`)."""
    return identities(guid, link, title, published)[0]


def _join(base: str, link: str) -> str:
    try:
        return urljoin(base, link)
    except ValueError:  # a malformed link (broken IPv6 literal): kept as is, its fetch records the error
        return link.strip()


def _is_web(link: str) -> bool:
    return link.startswith(("http://", "https://"))


def _ttl(meta: Any) -> int | None:
    value = str(meta.get("ttl") or "").strip()
    return int(value) if value.isdigit() else None


def _when(st: time.struct_time | None) -> datetime | None:
    if not st:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(st), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def xml_media_type(content_type: str, body: bytes) -> str:
    """The Content-Type to parse with, read as RFC 7303 does: a BOM beats any charset parameter, and a
    text/xml without a charset is not US-ASCII (RFC 3023's old rule, which breaks UTF-8 and UTF-16 feeds)."""
    if not content_type or body.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "application/xml"
    main = content_type.split(";")[0].strip().lower()
    if main.startswith("text/") and "xml" in main and "charset" not in content_type.lower():
        return "application/xml"
    return content_type


def _parse(body: bytes, hdrs: dict[str, str]) -> tuple[Any, str | None, str | None]:
    """(feedparser result, its bozo note, the note to keep: says when the charset had to be detected)."""
    parsed = feedparser.parse(body, response_headers=hdrs, sanitize_html=True, resolve_relative_uris=True)
    bozo = _bozo_note(parsed)
    redecoded = _redecode(body, parsed, hdrs.get("content-type", ""))
    if redecoded is None:
        return parsed, bozo, bozo
    text, how = redecoded  # feedparser fell back to windows-1252: parse the text read as _redecode says
    utf8 = {**hdrs, "content-type": "application/xml; charset=utf-8"}
    parsed = feedparser.parse(text, response_headers=utf8, sanitize_html=True, resolve_relative_uris=True)
    bozo = _bozo_note(parsed)
    return parsed, bozo, how + (f"; {bozo}" if bozo else "")


def _complete(parsed: Any) -> bool:
    """False for a document the XML parser could not read to its end (truncated, broken markup): with no
    entries to show for it, that is a broken feed to report. An undefined HTML entity or a charset or media
    type complaint leaves the document whole."""
    exc = parsed.get("bozo_exception")
    return exc is None or type(exc).__name__ != "SAXParseException" or "undefined entity" in str(exc)


def _redecode(body: bytes, parsed: Any, content_type: str) -> tuple[bytes, str] | None:
    """UTF-8 bytes of a feed that feedparser could not decode as declared, and a note saying how it was read.

    feedparser falls back to windows-1252 (then ISO-8859-2) when the declared charset fails, which turns a
    UTF-8 feed with one stray byte, or a KOI8-R, windows-1251 or GB2312 feed, into mojibake. The declared
    charset (the HTTP header's, then the XML declaration's; UTF-8, XML's default, when neither says) is kept
    when it fails on a few bytes only: those bytes are replaced. Only when no declared charset fits is the
    charset guessed (detection), and then only when detection is sure of another.
    """
    if type(parsed.get("bozo_exception")).__name__ != "CharacterEncodingOverride":
        return None
    declared = [c for c in (normalise_codec(charset_from_content_type(content_type)),
                            normalise_codec(declared_charset(body))) if c]
    for codec in dict.fromkeys(declared or ["utf_8"]):
        fits, bad = mostly_decodes(body, codec)
        if fits:
            text = _XML_ENCODING.sub(r"\1", body.decode(codec, errors="replace"), count=1)
            what = f"{bad} bytes that are not {codec} replaced" if bad else f"decoded as declared {codec}"
            return text.encode("utf-8"), what
    best = from_bytes(body).best()
    if best is None or best.encoding in ("utf_8", "ascii", "cp1252", "windows_1252"):
        return None
    text = _XML_ENCODING.sub(r"\1", str(best), count=1)
    return text.encode("utf-8"), f"charset not declared right; decoded as detected {best.encoding}"


def _bozo_note(parsed: Any) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}" if exc else "malformed feed"


def _why_not_a_feed(body: bytes, bozo: str | None) -> str:
    head = body[:512].lstrip().lower()
    if not body.strip():
        return "the feed URL returned an empty body; check the URL"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return ("the URL returned an HTML page, not a feed; use the site's RSS/Atom URL "
                "(look for <link rel=\"alternate\"> on the page)")
    detail = f" ({bozo})" if bozo else ""
    return f"not a readable RSS/Atom feed{detail}; check the URL or tell the publisher"
