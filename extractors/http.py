"""All outbound HTTP: one polite async client with timeouts, size caps, conditional GET and an SSRF guard
(each host resolved once, every address checked, and the connection made to a checked address).

Returns a `Response` or raises `FetchError` naming the URL and what to do; never anything else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import re
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from extractors.budget import PageBudget
from newsmon import __version__
from newsmon.config import HttpSettings
from newsmon.errors import BlockedURLError, FetchError

MAX_REDIRECTS = 5
ACCEPT_ENCODING = "gzip, deflate"
REDIRECT_CODES = {301, 302, 303, 307, 308}
# The body of a 304, a redirect or an error is read (and dropped) up to this size, so that the connection goes
# back to the pool: one left unread is closed, and the host's next request (every unchanged feed of a re-poll)
# would open a new one, with a TLS handshake.
DRAIN_BYTES = 64 * 1024


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

    def __init__(self, settings: HttpSettings, *, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self._policy = AddressPolicy.from_settings(settings)
        self._resolve = resolver or _resolver[-1]
        self._global = asyncio.Semaphore(settings.max_concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}  # per host: the earliest time the next request may start
        timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            headers={"User-Agent": user_agent(settings.contact_url), "Accept-Encoding": ACCEPT_ENCODING},
            transport=PinnedTransport(httpx.Limits(max_connections=settings.max_concurrency * 2)),
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def get(self, url: str, *, max_bytes: int, etag: str | None = None,
                  last_modified: str | None = None, budget: PageBudget | None = None) -> Response:
        """GET with redirects followed by hand (each hop re-checked) under a total deadline.

        With a `budget` (article pages), a request whose host or run has used its time raises LeftForLater
        before it starts, and one in flight when that time runs out is cut off then (extractors.budget)."""
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
            if budget is not None:
                budget.check(host, url)  # a page left for later does not wait for its turn first
            await self._pace(host)
            async with self._global:
                if budget is None:
                    return await self._deadline(url, headers, max_bytes)
                return await self._within(budget, host, url, headers, max_bytes)

    async def _within(self, budget: PageBudget, host: str, url: str, headers: dict[str, str],
                      max_bytes: int) -> Response:
        """The exchange, cut off when its host's (or the run's) time budget runs out."""
        left = budget.check(host, url)
        with budget.busy(host):
            try:
                return await asyncio.wait_for(self._deadline(url, headers, max_bytes), timeout=left)
            except TimeoutError:  # the exchange's own deadline raises FetchError: this is the budget's
                raise FetchError(f"cut off after {left:.0f} s: {budget.reason(host)} for this run",
                                 url=url) from None

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
            pin = await check_url(current, policy=self._policy, resolver=self._resolve)
            token = _PIN.set(pin)  # this hop connects to the addresses just checked, and to no others
            try:
                status, resp_headers, body = await self._get_once(current, headers, max_bytes)
            finally:
                _PIN.reset(token)
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
                    await _drain(resp)
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


async def _drain(resp: httpx.Response) -> None:
    """Read a body nobody needs, up to DRAIN_BYTES: past that, the connection is closed instead."""
    seen = 0
    async for raw in resp.aiter_raw():
        seen += len(raw)
        if seen > DRAIN_BYTES:
            return


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A resolver maps (host, port) to the host's addresses; newsmon resolves each URL once, checks every address,
# then connects only to those (see `PinnedBackend`). `use_resolver` installs another one (tests, a DoH client).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo), each address once, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_resolver: list[Resolver] = [system_resolver]


@contextmanager
def use_resolver(resolver: Resolver) -> Iterator[None]:
    """Fetchers made inside the block resolve names with `resolver`."""
    _resolver.append(resolver)
    try:
        yield
    finally:
        _resolver.remove(resolver)


@dataclass(frozen=True)
class Pin:
    """The addresses checked for one request's host and port: its connection may go to these only."""

    host: str  # as httpx sends it (IDNA-encoded, IPv6 without brackets), lower case
    port: int
    addresses: tuple[str, ...]


_PIN: ContextVar[Pin | None] = ContextVar("newsmon_http_pin", default=None)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to an address the SSRF check accepted for this request, never to a second DNS answer.

    httpcore still hands the TLS layer the host name, so SNI and certificate verification are for the name,
    and the Host header is the name too: only the TCP destination is fixed.
    """

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        pin = _PIN.get()
        if pin is None or (host.lower(), port) != (pin.host, pin.port):
            raise httpcore.ConnectError(f"no checked address for {host}:{port}; refused")
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for addr in pin.addresses:  # every one was checked; the next is tried when one refuses
            try:
                return WholeReads(await self._inner.connect_tcp(addr, port, timeout=timeout,
                                                                local_address=local_address,
                                                                socket_options=socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


READ_BYTES = 256 * 1024  # what asyncio reads from a socket at once


class WholeReads(httpcore.AsyncNetworkStream):
    """A connection's stream, read up to READ_BYTES at a time where httpcore asks for 64 KiB.

    asyncio hands over up to 256 KiB per socket read, and anyio cut that into 64 KiB pieces, each its own trip
    through anyio, httpcore and h11: ~8 trips for a 250 KB page. Bigger reads took the flow process's fetching and
    hand-off from ~3.0 to ~2.4 ms of CPU a page (2,000 bench pages, BENCHMARKS.md). The body cap (Inflater)
    still checks every piece, so a body is cut off at most one read past it.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, READ_BYTES), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return WholeReads(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (TLS settings, SSL_CERT_FILE, limits) over a connection pool on `PinnedBackend`.

    Environment proxies are not used: a proxy would resolve the name again, after the check.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        ssl_context, backend = shared_ssl_context(), PinnedBackend()
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = PoolPerOrigin(lambda: httpcore.AsyncConnectionPool(  # type: ignore[assignment]
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend))


def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (SSL_CERT_FILE, else SSL_CERT_DIR, else certifi's bundle), made once per
    process for those settings and shared by every client: loading the CA bundle takes ~35 ms, and a run made
    three (a twentieth of an unchanged re-poll)."""
    return _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@cache
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads the same two variables, which are the cache key


class PoolPerOrigin:
    """httpcore connection pools, one per origin (scheme, host, port), in place of one pool for all.

    For every request it assigns or releases, an httpcore pool walks all its connections, asks each idle one
    whether its socket is readable (a getpeername and a poll call), and counts the idle ones once per idle
    connection: a cost that grows with the square of the connections it keeps. With connections to 40 hosts kept
    alive between their paced requests, 2,000 pages cost the flow process 5.9 ms of CPU each; per origin, 3.6 ms
    (and the workers, less crowded, 26.9 ms instead of 31.6). A pool then keeps only its host's few connections,
    and one host's idle connections are never closed to make room for another's.
    """

    def __init__(self, make: Callable[[], httpcore.AsyncConnectionPool]) -> None:
        self._make = make
        self._pools: dict[tuple[bytes, bytes, int | None], httpcore.AsyncConnectionPool] = {}

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        key = (origin.scheme, origin.host, origin.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self._make()
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()

    async def __aenter__(self) -> PoolPerOrigin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _net(text: str) -> Network:
    return ipaddress.ip_network(text)


# Cloud metadata and other link-local services: refused even with allow_private_networks, unless the address
# itself is listed in allow_hosts. Link-local (169.254/16, fe80::/10; AWS, GCP, Azure, Oracle, DigitalOcean
# at 169.254.169.254, Tencent at 169.254.0.23), Alibaba's 100.100.100.200, AWS's and GCP's IPv6 metadata
# servers, and Azure's platform address 168.63.129.16.
METADATA = tuple(_net(n) for n in ("169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::254/128",
                                   "fd20:ce::254/128", "168.63.129.16/32"))
# Not globally reachable, though Python's is_global (3.11-3.13 differ) says so for some or all of them:
# IETF protocol assignments (192.0.0.0/24, 2001::/23 whole), the retired 6to4 relay anycast, IPv6
# documentation (3fff::/20).
_NOT_GLOBAL = tuple(_net(n) for n in ("192.0.0.0/24", "192.88.99.0/24", "2001::/23", "3fff::/20"))
_GLOBAL_UNICAST = _net("2000::/3")  # every globally routed IPv6 address is in here
_NAT64 = _net("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address in the last 32 bits
_SIX_TO_FOUR = _net("2002::/16")  # 6to4: the relay's IPv4 address in bits 16-47
_NAT64_LOCAL = _net("64:ff9b:1::/48")  # RFC 8215 local-use: the operator picks the prefix length
_COMPATIBLE = _net("::/96")  # deprecated IPv4-compatible ::a.b.c.d
_TRANSLATED = _net("::ffff:0:0:0/96")  # SIIT IPv4-translated ::ffff:0:a.b.c.d


def _bits(n: int, start: int, end: int) -> int:
    """Bits start..end-1 of a 128-bit number, counted from the most significant."""
    return (n >> (128 - end)) & ((1 << (end - start)) - 1)


def _rfc6052(n: int, prefix_len: int) -> ipaddress.IPv4Address:
    """The IPv4 address that RFC 6052 puts after a prefix of this length (bits 64-71 are skipped)."""
    if prefix_len == 96:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    head = 64 - prefix_len  # bits of the IPv4 address before the skipped octet
    return ipaddress.IPv4Address(_bits(n, prefix_len, 64) << (32 - head) | _bits(n, 72, 72 + 32 - head))


def embedded_ipv4(addr: Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries: mapped, compatible, translated, 6to4, Teredo (server and
    client) and NAT64 (well-known /96; local-use 64:ff9b:1::/48 at each RFC 6052 prefix length it allows)."""
    if isinstance(addr, ipaddress.IPv4Address):
        return []
    n, low = int(addr), ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    found = [a for a in (addr.ipv4_mapped, addr.sixtofour) if a is not None]
    found += list(addr.teredo or ())
    if addr in _COMPATIBLE or addr in _TRANSLATED or addr in _NAT64:
        found.append(low)
    if addr in _NAT64_LOCAL:
        found += [_rfc6052(n, plen) for plen in (48, 56, 64, 96)]
    return found


def is_public(addr: Address) -> bool:
    """Globally reachable unicast only, judged on the address and on every IPv4 address it embeds."""
    if addr in _SIX_TO_FOUR:  # Python's own answer varies: 3.11.2 counts all of 2002::/16 private, 3.11.7 none
        return all(is_public(inner) for inner in embedded_ipv4(addr))
    if not addr.is_global or addr.is_multicast or any(addr in net for net in _NOT_GLOBAL):
        return False
    if isinstance(addr, ipaddress.IPv6Address) and not (addr in _GLOBAL_UNICAST or addr in _NAT64):
        return False  # site-local fec0::/10, ::a.b.c.d, ::ffff:0:a.b.c.d, 5f00::/16 and the rest of ::/8
    return all(is_public(inner) for inner in embedded_ipv4(addr))


def is_metadata(addr: Address) -> bool:
    """A link-local or cloud metadata address, directly or embedded in an IPv6 address."""
    return any(a in net for a in (addr, *embedded_ipv4(addr)) for net in METADATA if a.version == net.version)


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses may be fetched: public ones; private ones with allow_private_networks;
    the hosts and networks in allow_hosts; metadata addresses only when an allow_hosts network holds them."""

    allow_private: bool = False
    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> AddressPolicy:
        return cls.build(settings.allow_private_networks, settings.allow_hosts)

    @classmethod
    def build(cls, allow_private: bool, allow_hosts: Sequence[str] = ()) -> AddressPolicy:
        names: set[str] = set()
        networks: list[Network] = []
        for entry in allow_hosts:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                names |= _name_forms(entry)
        return cls(allow_private, frozenset(names), tuple(networks))

    def refusal(self, host: str, addr: Address) -> str | None:
        """Why `host` (as written or IDNA-encoded) may not be fetched at `addr`, or None when it may."""
        judged = (addr, *([addr.ipv4_mapped] if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped
                          else []))
        if any(a in net for a in judged for net in self.networks if a.version == net.version):
            return None
        if is_metadata(addr):
            return (f"host resolves to link-local or cloud metadata address {addr}; refused before any request, "
                    "also with allow_private_networks (list the address in [http] allow_hosts to allow it)")
        if is_public(addr):
            return None
        if (self.allow_private or _name_forms(host) & self.names) and not addr.is_multicast:
            return None
        return (f"host resolves to non-public address {addr}; refused before any request "
                "(list the host or its network in [http] allow_hosts to allow it)")


def _name_forms(host: str) -> set[str]:
    """A host name in lower case as written and IDNA-encoded (either may appear in a URL or the config)."""
    name = host.strip().lower().rstrip(".")
    try:
        return {name, name.encode("idna").decode("ascii")}
    except UnicodeError:
        return {name}


async def check_url(url: str, *, allow_private: bool = False, allow_hosts: Sequence[str] = (),
                    resolver: Resolver | None = None, policy: AddressPolicy | None = None) -> Pin:
    """Refuse non-http(s) schemes and hosts with any address the policy refuses; returns the checked
    addresses, the only ones a request for `url` may connect to."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
        wire_host = httpx.URL(url).raw_host.decode("ascii").lower() if host else ""
    except (ValueError, httpx.InvalidURL, UnicodeError) as exc:
        raise FetchError(f"malformed URL ({exc}); fix the link or the config", url=url) from None
    if parts.scheme not in ("http", "https") or not host:
        raise BlockedURLError("only http:// and https:// URLs are fetched", url=url)
    port = port or (443 if parts.scheme == "https" else 80)
    policy = policy or AddressPolicy.build(allow_private, allow_hosts)
    addrs = await _resolve(wire_host, port, url, resolver or _resolver[-1])
    for addr in addrs:
        why = policy.refusal(host, addr)
        if why:
            raise BlockedURLError(why, url=url)
    return Pin(wire_host, port, tuple(str(a) for a in addrs))


async def _resolve(host: str, port: int, url: str, resolver: Resolver) -> list[Address]:
    """An IP literal as it is; a name through the resolver (every answer is checked, none may be refused)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = await resolver(host, port)
        addrs = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
    except (OSError, UnicodeError, ValueError) as exc:
        raise FetchError(f"cannot resolve host {host!r} ({exc}); check the URL", url=url) from exc
    if not addrs:
        raise FetchError(f"cannot resolve host {host!r} (no address); check the URL", url=url)
    return addrs


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
