"""All outbound HTTP: one polite async client with timeouts, size caps, conditional GET and an SSRF guard.

Returns a `Response` or raises `FetchError` naming the URL and what to do; never anything else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
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


class Fetcher:
    """Async HTTP with a global and a per-host concurrency bound. Use as `async with Fetcher(s) as f`."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._global = asyncio.Semaphore(settings.max_concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}  # per host: the earliest time the next request may start
        timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": user_agent(settings.contact_url)},
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
        host = urlsplit(url).hostname or ""
        sem = self._hosts.setdefault(host, asyncio.Semaphore(self.settings.max_per_host))
        await self._pace(host)
        async with self._global, sem:
            try:
                return await asyncio.wait_for(self._follow(url, headers, max_bytes),
                                              timeout=self.settings.timeout_s * 2)
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
                chunks, size = [], 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"body is over the {max_bytes:,}-byte cap; refused", url=url,
                                         status=resp.status_code)
                    chunks.append(chunk)
                return resp.status_code, hdrs, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise FetchError(f"timed out ({type(exc).__name__}); the server is slow or down", url=url) from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"request failed: {exc or type(exc).__name__}; check the URL and the network",
                             url=url) from exc


async def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse non-http(s) schemes and, unless allowed, hosts that resolve to non-public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedURLError("only http:// and https:// URLs are fetched", url=url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443,
                                                             type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError(f"cannot resolve host {parts.hostname!r} ({exc}); check the URL", url=url) from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global or addr.is_multicast:
            raise BlockedURLError(
                f"host resolves to non-public address {addr}; refused before any request "
                "(set [http] allow_private_networks = true to allow it)", url=url)


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
