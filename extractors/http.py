"""All outbound HTTP: one polite async client with timeouts, size caps, conditional GET and an SSRF guard.

Returns a `Response` or raises `FetchError` naming the URL and what to do; never anything else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
import socket
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from newsmon import __version__
from newsmon.config import HttpSettings
from newsmon.errors import BlockedURLError, FetchError

MAX_REDIRECTS = 5
ACCEPT_ENCODING = "gzip, deflate"
REDIRECT_CODES = {301, 302, 303, 307, 308}


def user_agent(contact_url: str) -> str:
    """The common 'compatible' form: accepted where a bare library UA is refused, and names us."""
    return f"Mozilla/5.0 (compatible; newsmon/{__version__}; +{contact_url})"


@dataclass(frozen=True)
class Response:
    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    permanent_redirect: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                return v.strip("\"' ")
        return None


class Inflater:
    """Undoes a gzip or deflate Content-Encoding chunk by chunk, never holding more than `limit` decoded bytes.

    httpx decodes a whole network chunk at once, so a 60 KB zstd bomb became gigabytes before any cap could
    look at it. Here decompression stops at the cap, and encodings we did not ask for are refused.
    """

    def __init__(self, encoding: str, limit: int, url: str) -> None:
        self.limit, self.url, self.size = limit, url, 0
        enc = encoding.strip().lower()
        if enc not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise FetchError(f"unsupported Content-Encoding {encoding!r} (newsmon asks for "
                             f"{ACCEPT_ENCODING}); the server ignores Accept-Encoding", url=url)
        self._z = None if enc in ("", "identity") else zlib.decompressobj(
            zlib.MAX_WBITS | 16 if "gzip" in enc else zlib.MAX_WBITS)
        self._raw_deflate_ok = enc == "deflate"  # servers send zlib-wrapped or raw deflate

    def feed(self, data: bytes) -> bytes:
        room = self.limit - self.size
        try:
            out = data if self._z is None else self._z.decompress(data, room + 1)
        except zlib.error as exc:
            if not (self._raw_deflate_ok and self.size == 0):
                raise FetchError(f"body is not valid compressed data ({exc})", url=self.url) from exc
            self._z, self._raw_deflate_ok = zlib.decompressobj(-zlib.MAX_WBITS), False
            return self.feed(data)
        self._raw_deflate_ok = False
        if len(out) > room:  # with a length limit, unconsumed input means the limit was reached
            raise FetchError(f"body is over the {self.limit:,}-byte cap; refused", url=self.url)
        self.size += len(out)
        return out


class Fetcher:
    """Async HTTP with a global and a per-host concurrency bound. Use as `async with Fetcher(s) as f`."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._global = asyncio.Semaphore(settings.max_concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}  # per host: the earliest time the next request may start
        timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            headers={"User-Agent": user_agent(settings.contact_url), "Accept-Encoding": ACCEPT_ENCODING},
            limits=httpx.Limits(max_connections=settings.max_concurrency * 2),
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def get(self, url: str, *, max_bytes: int, etag: str | None = None,
                  last_modified: str | None = None) -> Response:
        """GET with redirects followed by hand (each hop re-checked) under a total deadline."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            host = urlsplit(url).hostname or ""
        except ValueError as exc:
            raise FetchError(f"malformed URL ({exc}); fix the link or the config", url=url) from None
        sem = self._hosts.setdefault(host, asyncio.Semaphore(self.settings.max_per_host))
        async with sem:  # the host's slot first: a request waiting on its host never holds a global slot
            await self._pace(host)
            async with self._global:
                return await self._deadline(url, headers, max_bytes)

    async def _deadline(self, url: str, headers: dict[str, str], max_bytes: int) -> Response:
        """The whole exchange (redirects included) under one deadline of twice the timeout."""
        try:
            return await asyncio.wait_for(self._follow(url, headers, max_bytes), timeout=self.settings.timeout_s * 2)
        except TimeoutError:
            raise FetchError(f"no complete answer within {self.settings.timeout_s * 2:.0f} s; "
                             "the server is too slow or hangs", url=url) from None

    async def _pace(self, host: str) -> None:
        """Start requests to one host at least per_host_delay_s (+ random 0..jitter_s) apart."""
        gap = self.settings.per_host_delay_s + random.uniform(0, self.settings.jitter_s)
        if gap <= 0:
            return
        now = asyncio.get_running_loop().time()
        start = max(now, self._next_start.get(host, now))
        self._next_start[host] = start + gap
        if start > now:
            await asyncio.sleep(start - now)

    async def _follow(self, url: str, headers: dict[str, str], max_bytes: int) -> Response:
        current, permanent = url, None
        for _ in range(MAX_REDIRECTS + 1):
            await check_url(current, allow_private=self.settings.allow_private_networks)
            status, resp_headers, body = await self._get_once(current, headers, max_bytes)
            if status in REDIRECT_CODES and "location" in resp_headers:
                target = urljoin(current, resp_headers["location"])
                if status in (301, 308) and permanent is None and current == url:
                    permanent = target
                current = target
                continue
            if status >= 400:
                raise FetchError(_status_advice(status), url=url, status=status,
                                 retry_after=parse_retry_after(resp_headers.get("retry-after")))
            return Response(url, current, status, resp_headers, body, permanent)
        raise FetchError(f"more than {MAX_REDIRECTS} redirects (a loop?); fix the URL in the config", url=url)

    async def _get_once(self, url: str, headers: dict[str, str],
                        max_bytes: int) -> tuple[int, dict[str, str], bytes]:
        try:
            async with self._client.stream("GET", url, headers=headers) as resp:
                hdrs = {k.lower(): v for k, v in resp.headers.items()}
                if resp.status_code >= 300:
                    return resp.status_code, hdrs, b""
                declared = hdrs.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"body of {int(declared):,} bytes is over the {max_bytes:,}-byte cap",
                                     url=url, status=resp.status_code)
                inflater = Inflater(hdrs.get("content-encoding", ""), max_bytes, url)
                chunks = [inflater.feed(raw) async for raw in resp.aiter_raw()]
                return resp.status_code, hdrs, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise FetchError(f"timed out ({type(exc).__name__}); the server is slow or down", url=url) from exc
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # ValueError: an IDNA-invalid host
            raise FetchError(describe_failure(exc, urlsplit(url).hostname), url=url) from exc


async def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse non-http(s) schemes and, unless allowed, hosts that resolve to non-public addresses."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise FetchError(f"malformed URL ({exc}); fix the link or the config", url=url) from None
    if parts.scheme not in ("http", "https") or not host:
        raise BlockedURLError("only http:// and https:// URLs are fetched", url=url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r} ({exc}); check the URL", url=url) from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not is_public(addr):
            raise BlockedURLError(
                f"host resolves to non-public address {addr}; refused before any request "
                "(set [http] allow_private_networks = true to allow it)", url=url)


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global unicast only; IPv6 forms that embed an IPv4 address (6to4, Teredo, NAT64) are judged by it."""
    if not addr.is_global or addr.is_multicast:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        inner = addr.sixtofour or (addr.teredo[1] if addr.teredo else None) or (
            ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF) if addr in NAT64 else None)
        return inner is None or is_public(inner)
    return True


def describe_failure(exc: Exception, host: str | None) -> str:
    """What went wrong on the wire, in words an operator can act on (the cause's text kept)."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.InvalidURL | ValueError):
        return f"malformed URL ({detail}); fix the link or the config"
    if isinstance(exc, httpx.ConnectError):
        if re.search(r"SSL|TLS|CERTIFICATE", detail, re.I):
            return f"TLS handshake failed ({detail}); the site's certificate is invalid or it does not speak HTTPS"
        if re.search(r"name or service|name resolution|nodename|no address associated", detail, re.I):
            return f"cannot resolve host {host!r} ({detail}); check the URL"
        return f"cannot connect ({detail}); the server is down or refuses connections"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server's answer is not HTTP or was cut off ({detail}); newsmon tries again on the next run"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"the connection was reset ({detail}); newsmon tries again on the next run"
    return f"request failed ({detail}); check the URL and the network"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds from now: a delta in seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _status_advice(status: int) -> str:
    if status == 404:
        return "HTTP 404 Not Found; fix or remove this URL in the config"
    if status == 410:
        return ("HTTP 410 Gone: the publisher removed this feed; remove it from the config or replace it "
                "(newsmon keeps retrying it at the backoff cap)")
    if status in (401, 403):
        return f"HTTP {status}: the server refuses this client; it may block bots or need another URL"
    if status == 429:
        return "HTTP 429 Too Many Requests; newsmon backs off (honouring Retry-After) and tries later"
    if status == 503:
        return "HTTP 503 Service Unavailable; newsmon backs off (honouring Retry-After) and tries later"
    if status >= 500:
        return f"HTTP {status} server error; newsmon backs off and tries again later"
    return f"HTTP {status}; check the URL"
