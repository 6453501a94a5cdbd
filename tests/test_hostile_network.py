"""Hostile input, round two, the network and feed parts: DNS rebinding (the connection goes to the address
that was checked, for feeds, pages and redirect hops, with TLS still verified for the name), every
non-global address refused (property-tested against a reference), `[http] allow_hosts` instead of opening
every private network, feeds decoded per their declared charset with a few bad bytes replaced, and the
newest entries of a long feed taken first, the rest in later runs.

Real servers on 127.0.0.1 and 127.0.0.2 (the same port on two loopback addresses: "the checked address" and
"the address DNS answers the second time"), real certificates, real warehouse files. Name lookups go through
newsmon's own resolver seam (`extractors.http.use_resolver`), which a test fills with a small DNS server of
its own: an answer table, public first and loopback on the next lookup, as a zero-TTL rebinding server would
answer. Nothing here reaches the internet: a connection to a public address is stopped by conftest's guard,
which is how the tests see where newsmon tried to connect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from extractors.encoding import decode_html
from extractors.http import AddressPolicy, Fetcher, check_url, embedded_ipv4, is_metadata, is_public, use_resolver
from extractors.identity import all_aliases, left_for_later, newest_first, resolve_entries
from extractors.pages import build_article, fetch_articles
from extractors.poller import poll_feeds
from extractors.summary import from_feed
from newsmon.config import HttpSettings, load_settings
from newsmon.errors import BlockedURLError, ConfigError, FetchError
from newsmon.records import Entry, FeedSpec, RunBatch
from tests.conftest import RouteServer, lake_query, make_warehouse

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
PUBLIC = "93.184.215.14"  # a global address; conftest refuses any connection to it
FAST = dict(timeout_s=3, per_host_delay_s=0, jitter_s=0)


# --- servers and a DNS of our own ----------------------------------------------------------------------------


class Origin:
    """An HTTP server on one loopback address; paths answer (status, headers, body). Records (path, Host)."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[tuple[str, str]] = []
        origin = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.hits.append((self.path, self.headers.get("Host", "")))
                status, headers, body = origin.routes.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for k, v in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer((address, port), H)
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def add(self, path: str, body: bytes, content_type: str = "application/rss+xml",
            status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.routes[path] = (status, {"Content-Type": content_type, **(headers or {})}, body)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def pair() -> Iterator[tuple[Origin, Origin]]:
    """The checked origin on 127.0.0.1 and the rebound one on 127.0.0.2, on the same port."""
    for _ in range(20):
        checked = Origin("127.0.0.1")
        try:
            rebound = Origin("127.0.0.2", checked.port)
        except OSError:  # that port is taken on 127.0.0.2: try another
            checked.close()
            continue
        yield checked, rebound
        checked.close()
        rebound.close()
        return
    pytest.skip("no port free on both 127.0.0.1 and 127.0.0.2")


class Dns:
    """A name server as the resolver seam sees it: per name, the first lookup gets `first` and every later
    one `then` (what a rebinding server with a zero TTL answers). Unknown names do not resolve."""

    def __init__(self, answers: dict[str, tuple[list[str], list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        first, then = self.answers[host]
        return first if self.lookups.count(host) == 1 else then


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a socket in this process tries to connect to (conftest's loopback guard still applies)."""
    seen: list[str] = []
    guarded = socket.socket.connect

    def record(self: socket.socket, address: object) -> object:
        if isinstance(address, tuple):
            seen.append(str(address[0]))
        return guarded(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", record)
    return seen


def rss(items: Sequence[tuple[str, str, dt.datetime | None]], encoding: str = "utf-8",
        declare: bool = True, links: str = "http://site.example/") -> bytes:
    """RSS 2.0 in `encoding`; items are (guid, title, date or None), linking to `links` + guid."""
    body = "".join(f"<item><title>{t}</title><guid isPermaLink='false'>{g}</guid>"
                   f"<link>{links}{g}</link>"
                   + (f"<pubDate>{format_datetime(d)}</pubDate>" if d else "") + "</item>" for g, t, d in items)
    head = f"<?xml version='1.0' encoding='{encoding}'?>" if declare else "<?xml version='1.0'?>"
    return (head + "<rss version='2.0'><channel><title>Лента</title><link>http://site.example/</link>"
            + body + "</channel></rss>").encode(encoding)


def allowing(*hosts: str, private: bool = False) -> HttpSettings:
    return HttpSettings(allow_private_networks=private, allow_hosts=hosts, **FAST)  # type: ignore[arg-type]


# --- 1. DNS rebinding: the connection goes to the checked address --------------------------------------------

FEED = rss([("a1", "From the checked address", NOW)])
EVIL = rss([("x1", "From the rebound address", NOW)])
PAGE = ("<html><head><title>Checked</title></head><body><article><p>"
        + "The checked server wrote this article about trams and rivers. " * 30 + "</p></article></body></html>")
EVIL_PAGE = PAGE.replace("checked", "rebound")


def serve_both(checked: Origin, rebound: Origin) -> None:
    checked.add("/feed.xml", FEED)
    rebound.add("/feed.xml", EVIL)
    checked.add("/a/1", PAGE.encode(), "text/html; charset=utf-8")
    rebound.add("/a/1", EVIL_PAGE.encode(), "text/html; charset=utf-8")
    checked.add("/go", b"", status=302, headers={"Location": f"http://news.rebind.test:{checked.port}/feed.xml"})


def test_a_rebinding_name_is_fetched_from_the_checked_address_for_feeds_pages_and_redirect_hops(
        pair: tuple[Origin, Origin]) -> None:
    """Only 127.0.0.1 is allowed. For each request the name answers 127.0.0.1 to the first lookup (the check)
    and 127.0.0.2 to any later one: a client that looked the name up again to connect would reach 127.0.0.2."""
    checked, rebound = pair
    serve_both(checked, rebound)
    dns = Dns({"news.rebind.test": (["127.0.0.1"], ["127.0.0.2"])})
    http = allowing("127.0.0.1")
    base = f"http://news.rebind.test:{checked.port}"
    entry = Entry(feed_url=base + "/feed.xml", key="k1", link=base + "/a/1", title="T", summary="S")
    lookups = []
    with use_resolver(dns):
        [feed] = poll_feeds([FeedSpec("feed", base + "/feed.xml")], {}, http, now=NOW)
        lookups.append(dns.lookups[:])
        dns.lookups.clear()
        # robots.txt off here: its fetch is a request of its own, with a lookup that would take the first answer
        got = fetch_articles([entry], {}, replace(http, robots=False), now=NOW, workers=1)
        lookups.append(dns.lookups[:])
        dns.lookups.clear()
        [hop] = poll_feeds([FeedSpec("hop", f"http://127.0.0.1:{checked.port}/go")], {}, http, now=NOW)
        lookups.append(dns.lookups[:])
    assert feed.ok and [e.title for e in feed.entries] == ["From the checked address"], feed.error
    assert got.articles[0].extraction_status == "ok" and "checked server" in got.articles[0].text, got.errors
    assert hop.ok and [e.title for e in hop.entries] == ["From the checked address"], hop.error
    assert rebound.hits == []  # the second answer was never asked for, let alone used
    assert lookups == [["news.rebind.test"]] * 3  # one lookup per request (per hop), then its connection
    # the Host header is the name, not the address connected to
    assert [h for _, h in checked.hits] == [f"news.rebind.test:{checked.port}"] * 2 + \
        [f"127.0.0.1:{checked.port}", f"news.rebind.test:{checked.port}"]


def test_a_name_answering_public_then_loopback_connects_to_the_public_address(
        pair: tuple[Origin, Origin], connects: list[str]) -> None:
    """The issue's attack with the shipped policy: the check sees a public address, the connection goes there
    (and conftest's guard stops it); the loopback server behind the second answer sees nothing."""
    checked, _ = pair
    serve_both(checked, pair[1])
    dns = Dns({"news.rebind.test": ([PUBLIC], ["127.0.0.1"])})
    base = f"http://news.rebind.test:{checked.port}"
    http = HttpSettings(**FAST)  # type: ignore[arg-type]
    with use_resolver(dns):
        [feed] = poll_feeds([FeedSpec("feed", base + "/feed.xml")], {}, http, now=NOW)
        dns.lookups.clear()
        entry = Entry(feed_url=base + "/feed.xml", key="k1", link=base + "/a/1", title="T", summary="S")
        got = fetch_articles([entry], {}, replace(http, robots=False), now=NOW, workers=1)  # as above
    assert not feed.ok and "cannot connect" in (feed.error or ""), feed.error
    assert got.articles[0].extraction_status == "summary" and "cannot connect" in got.errors[0][2]
    assert checked.hits == [] and "127.0.0.1" not in connects and connects.count(PUBLIC) == 2


@pytest.mark.parametrize("answers", [[PUBLIC, "127.0.0.1"], ["127.0.0.1", PUBLIC], [PUBLIC, "169.254.169.254"],
                                     [PUBLIC, "::1"], [PUBLIC, "::ffff:10.0.0.1"], [PUBLIC, "fec0::1"]])
def test_every_address_of_an_answer_is_checked_and_one_refused_refuses_the_host(connects: list[str],
                                                                             answers: list[str]) -> None:
    dns = Dns({"mixed.rebind.test": (answers, answers)})
    with use_resolver(dns):
        [r] = poll_feeds([FeedSpec("mixed", "http://mixed.rebind.test/feed.xml")], {}, HttpSettings(**FAST),
                         now=NOW)  # type: ignore[arg-type]
    assert not r.ok and "refused before any request" in (r.error or "") and connects == []


# TLS: the connection goes to the checked address, the certificate is verified for the name.

def _cert(folder: Path, name: str, ca: tuple[object, object] | None, *, dns: Sequence[str] = (),
          ips: Sequence[str] = ()) -> tuple[object, object, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = ca if ca else (None, key)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)  # type: ignore[attr-defined]
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca is None:
        builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                  critical=True))
    else:
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = (builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_key.public_key()), critical=False))  # type: ignore[attr-defined]
    cert = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key, cert_path, key_path


@pytest.fixture
def tls_origins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Origin, Origin, list[str]]]:
    """Two HTTPS servers on 127.0.0.1 whose certificates come from a CA that this test's clients trust
    (SSL_CERT_FILE, which httpx honours): one for news.pinned.test, one for another name that also lists the
    address 127.0.0.1. Records the SNI names the servers were asked for."""
    ca_cert, ca_key, ca_path, _ = _cert(tmp_path, "Test CA", None)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    sni: list[str] = []
    origins = []
    for name, dns in (("news", ["news.pinned.test"]), ("other", ["other.pinned.test"])):
        _, _, crt, key = _cert(tmp_path, name, (ca_cert, ca_key), dns=dns, ips=["127.0.0.1"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        ctx.sni_callback = lambda _sock, server_name, _ctx: sni.append(server_name or "")  # type: ignore[misc]
        origins.append(Origin("127.0.0.1", tls=ctx))
    good, other = origins
    good.add("/feed.xml", FEED)
    other.add("/feed.xml", EVIL)
    yield good, other, sni
    good.close()
    other.close()


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_name(
        tls_origins: tuple[Origin, Origin, list[str]]) -> None:
    good, other, sni = tls_origins
    dns = Dns({"news.pinned.test": (["127.0.0.1"], ["127.0.0.2"])})
    http = allowing("127.0.0.1")
    with use_resolver(dns):
        [ok] = poll_feeds([FeedSpec("tls", f"https://news.pinned.test:{good.port}/feed.xml")], {}, http, now=NOW)
        # the same name at a server whose certificate is for another name, though it lists the address we
        # connect to: verifying the address instead of the name would accept it
        dns.lookups.clear()
        [wrong] = poll_feeds([FeedSpec("wrong", f"https://news.pinned.test:{other.port}/feed.xml")], {}, http,
                             now=NOW)
        [literal] = poll_feeds([FeedSpec("ip", f"https://127.0.0.1:{other.port}/feed.xml")], {}, http, now=NOW)
    assert ok.ok and [e.title for e in ok.entries] == ["From the checked address"], ok.error
    assert good.hits == [("/feed.xml", f"news.pinned.test:{good.port}")]
    assert sni[:2] == ["news.pinned.test", "news.pinned.test"]
    assert not wrong.ok and "TLS handshake failed" in (wrong.error or "") and "news.pinned.test" in wrong.error
    assert "mismatch" in wrong.error or "doesn't match" in wrong.error or "not valid for" in wrong.error
    assert literal.ok, literal.error  # an address URL is verified against the certificate's IP entries
    assert other.hits == [("/feed.xml", f"127.0.0.1:{other.port}")]


# --- 2. every non-global address is refused ----------------------------------------------------------------

_V4_SPECIAL = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
               "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
               "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"]
_V6_SPECIAL = ["::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
               "2001::/23", "2001::/32", "2001:db8::/32", "2001:20::/28", "2002::/16", "3fff::/20", "5f00::/16",
               "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2000::/3", "4000::/2"]
V4_NOT_GLOBAL = [ipaddress.IPv4Network(n) for n in _V4_SPECIAL]
METADATA_V4 = [ipaddress.IPv4Network(n) for n in ("169.254.0.0/16", "100.100.100.200/32", "168.63.129.16/32")]
METADATA_V6 = [ipaddress.IPv6Network(n) for n in ("fe80::/10", "fd00:ec2::254/128", "fd20:ce::254/128")]
# RFC 6052: which octets of the IPv6 address hold the IPv4 address, by prefix length
RFC6052_OCTETS = {32: (4, 5, 6, 7), 40: (5, 6, 7, 9), 48: (6, 7, 9, 10), 56: (7, 9, 10, 11), 64: (9, 10, 11, 12),
                  96: (12, 13, 14, 15)}


def ref_public_v4(a: ipaddress.IPv4Address) -> bool:
    """The IANA IPv4 special-purpose registry's not-globally-reachable blocks, plus multicast, as a table."""
    return not any(a in n for n in V4_NOT_GLOBAL)


def _v4(octets: bytes) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(octets)


def ref_embedded(a: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, read octet by octet from the RFCs' layouts."""
    b, out = a.packed, []
    if b[:10] == bytes(10) and b[10:12] in (b"\xff\xff", b"\0\0"):  # mapped ::ffff:x, compatible ::x
        out.append(_v4(b[12:]))
    if b[:8] == bytes(8) and b[8:12] == b"\xff\xff\0\0":  # translated ::ffff:0:x
        out.append(_v4(b[12:]))
    if b[:2] == b"\x20\x02":  # 6to4 2002:V4::/48
        out.append(_v4(b[2:6]))
    if b[:4] == b"\x20\x01\0\0":  # Teredo: server in octets 4-7, client inverted in 12-15
        out += [_v4(b[4:8]), _v4(bytes(x ^ 0xFF for x in b[12:]))]
    if b[:12] == b"\x00\x64\xff\x9b" + bytes(8):  # NAT64 64:ff9b::/96
        out.append(_v4(b[12:]))
    if b[:6] == b"\x00\x64\xff\x9b\x00\x01":  # local-use NAT64 64:ff9b:1::/48, any prefix length >= 48
        out += [_v4(bytes(b[i] for i in RFC6052_OCTETS[p])) for p in (48, 56, 64, 96)]
    return out


def ref_public(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(a, ipaddress.IPv4Address):
        return ref_public_v4(a)
    if a in ipaddress.IPv6Network("64:ff9b::/96"):
        return ref_public_v4(_v4(a.packed[12:]))
    if a not in ipaddress.IPv6Network("2000::/3") or any(
            a in ipaddress.IPv6Network(n) for n in ("2001::/23", "2001:db8::/32", "3fff::/20")):
        return False
    return ref_public_v4(_v4(a.packed[2:6])) if a.packed[:2] == b"\x20\x02" else True


def ref_metadata(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(a, ipaddress.IPv4Address):
        return any(a in n for n in METADATA_V4)
    return any(a in n for n in METADATA_V6) or any(ref_metadata(x) for x in ref_embedded(a))


def _in(net: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    n = ipaddress.ip_network(net)
    return st.integers(0, n.num_addresses - 1).map(lambda i: ipaddress.ip_address(int(n.network_address) + i))


V4 = st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
               st.sampled_from(_V4_SPECIAL + ["100.100.100.200/32", "168.63.129.16/32", "8.8.8.0/24"]).flatmap(_in))


def _embed(v4: ipaddress.IPv4Address, form: str, rest: int) -> ipaddress.IPv6Address:
    """`v4` carried in an IPv6 address of the given form; `rest` fills the bits the form leaves free."""
    n = int(v4)
    if form == "mapped":
        return ipaddress.IPv6Address(0xFFFF << 32 | n)
    if form == "compatible":
        return ipaddress.IPv6Address(n)
    if form == "translated":
        return ipaddress.IPv6Address(0xFFFF << 48 | n)
    if form == "6to4":
        return ipaddress.IPv6Address(0x2002 << 112 | n << 80 | rest & (2**80 - 1))
    if form == "teredo":
        return ipaddress.IPv6Address(0x20010000 << 96 | (rest & 0xFFFFFFFF) << 64 | (rest >> 32 & 0xFFFFFFFF) << 32
                                     | n ^ 0xFFFFFFFF)
    if form == "nat64":
        return ipaddress.IPv6Address(0x64FF9B << 96 | n)
    plen = int(form.removeprefix("nat64-local/"))  # RFC 6052 layout at this prefix length, u octet zero
    octets = bytearray((0x0064FF9B0001 << 80 | rest & (2**80 - 1)).to_bytes(16, "big"))
    octets[8] = 0
    for i, value in zip(RFC6052_OCTETS[plen], v4.packed, strict=True):
        octets[i] = value
    return ipaddress.IPv6Address(bytes(octets))


FORMS = ["mapped", "compatible", "translated", "6to4", "teredo", "nat64", "nat64-local/48", "nat64-local/56",
         "nat64-local/64", "nat64-local/96"]
EMBEDDED = st.builds(_embed, V4, st.sampled_from(FORMS), st.integers(0, 2**96 - 1))
V6 = st.one_of(st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
               st.sampled_from(_V6_SPECIAL + ["fd00:ec2::254/128", "fd20:ce::254/128"]).flatmap(_in), EMBEDDED)
ANY = st.one_of(V4, V6)
PROPERTY = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(ANY)
@example(ipaddress.ip_address("::127.0.0.1"))  # the three
@example(ipaddress.ip_address("fec0::1"))
@example(ipaddress.ip_address("::ffff:0:127.0.0.1"))
@example(ipaddress.ip_address("::8.8.8.8"))  # deprecated IPv4-compatible: not routed, whatever it embeds
@example(ipaddress.ip_address("64:ff9b::8.8.8.8"))  # NAT64 of a public address: public
@example(ipaddress.ip_address("64:ff9b::10.0.0.1"))
@example(ipaddress.ip_address("2002:808:808::1"))  # 6to4 of a public address: public
@example(ipaddress.ip_address("2002:a00:1::1"))
@example(ipaddress.ip_address("2001:3::1"))  # IETF protocol assignments (Python's answer differs by version)
@example(ipaddress.ip_address("192.0.0.9"))
@example(ipaddress.ip_address("3fff::1"))
@example(ipaddress.ip_address("5f00::1"))
@example(ipaddress.ip_address("ff0e::1"))
@example(ipaddress.ip_address("224.0.0.1"))
@example(ipaddress.ip_address("192.88.99.1"))
def test_is_public_agrees_with_the_reference_on_every_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address
                                                              ) -> None:
    assert is_public(addr) == ref_public(addr), addr


@PROPERTY
@given(ANY)
@example(ipaddress.ip_address("::ffff:169.254.169.254"))
@example(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
@example(ipaddress.ip_address("64:ff9b:1:a9fe:a9:fe00::"))  # local-use NAT64 /48 layout
@example(ipaddress.ip_address("2002:a9fe:a9fe::"))
@example(ipaddress.ip_address("fd00:ec2::254"))
def test_metadata_addresses_are_found_in_every_disguise(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert is_metadata(addr) == ref_metadata(addr), addr
    expected = set(ref_embedded(addr)) if isinstance(addr, ipaddress.IPv6Address) else set()
    assert set(embedded_ipv4(addr)) == expected, addr
    # allow_private_networks opens every other address, metadata and multicast never
    opened = AddressPolicy.build(True).refusal("h.example", addr) is None
    assert opened == (not ref_metadata(addr) and not addr.is_multicast), addr


@pytest.mark.parametrize("url", ["http://[::127.0.0.1]/a", "http://[fec0::1]/a", "http://[::ffff:0:127.0.0.1]/a",
                                 "http://[::ffff:0:8.8.8.8]/a", "http://[::8.8.8.8]/a", "http://[5f00::1]/a",
                                 "http://[3fff::1]/a", "http://[2001:3::1]/a", "http://192.0.0.9/a",
                                 "http://[64:ff9b:1::a00:1]/a", "http://[2002:c0a8:101::1]/a",
                                 "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a"])
def test_non_global_literals_are_refused_before_any_request(url: str, connects: list[str]) -> None:
    with pytest.raises(BlockedURLError, match="refused before any request"):
        asyncio.run(check_url(url))
    with pytest.raises(FetchError, match="refused"):
        asyncio.run(_get(HttpSettings(**FAST), url))  # type: ignore[arg-type]
    assert connects == []


async def _get(http: HttpSettings, url: str) -> bytes:
    async with Fetcher(http) as f:
        return (await f.get(url, max_bytes=100_000)).body


# --- 3. [http] allow_hosts ---------------------------------------------------------------------------------

def test_allow_hosts_lets_in_exactly_the_listed_hosts_and_networks(pair: tuple[Origin, Origin]) -> None:
    checked, rebound = pair
    checked.add("/f", FEED)
    rebound.add("/f", EVIL)
    dns = Dns({"feeds.intranet": (["127.0.0.2"], ["127.0.0.2"]), "other.intranet": (["127.0.0.2"], ["127.0.0.2"])})
    one, two = f"http://127.0.0.1:{checked.port}/f", f"http://127.0.0.2:{checked.port}/f"
    named, unnamed = f"http://feeds.intranet:{checked.port}/f", f"http://other.intranet:{checked.port}/f"

    def outcome(http: HttpSettings, url: str) -> str:
        try:
            asyncio.run(_get(http, url))
        except BlockedURLError:
            return "refused"
        return "fetched"

    with use_resolver(dns):
        assert [outcome(allowing("127.0.0.1"), u) for u in (one, two, named)] == ["fetched", "refused", "refused"]
        assert [outcome(allowing("127.0.0.0/30"), u) for u in (one, two, named)] == ["fetched"] * 3
        assert [outcome(allowing("FEEDS.intranet."), u) for u in (one, named, unnamed)] == \
            ["refused", "fetched", "refused"]
        assert [outcome(HttpSettings(**FAST), u) for u in (one, two, named)] == ["refused"] * 3  # type: ignore
        assert [outcome(allowing(private=True), u) for u in (one, two, named)] == ["fetched"] * 3
    assert len(rebound.hits) == 5 and len(checked.hits) == 3


METADATA_URLS = ["http://169.254.169.254/latest/meta-data/", "http://169.254.0.23/", "http://100.100.100.200/",
                 "http://168.63.129.16/", "http://[fd00:ec2::254]/", "http://[fd20:ce::254]/", "http://[fe80::1]/",
                 "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::169.254.169.254]/",
                 "http://[2002:a9fe:a9fe::1]/", "http://metadata.google.internal/"]


@pytest.mark.parametrize("url", METADATA_URLS)
def test_metadata_addresses_stay_refused_with_allow_private_networks_unless_listed(url: str,
                                                                                   connects: list[str]) -> None:
    dns = Dns({"metadata.google.internal": (["169.254.169.254"], ["169.254.169.254"])})
    with use_resolver(dns):
        for http in (allowing(private=True), allowing("metadata.google.internal", "10.0.0.0/8", private=True)):
            with pytest.raises(BlockedURLError, match="metadata address .* also with allow_private_networks"):
                asyncio.run(check_url(url, allow_private=http.allow_private_networks, allow_hosts=http.allow_hosts))
            with pytest.raises(FetchError, match="metadata"):
                asyncio.run(_get(http, url))
    assert connects == []


@pytest.mark.parametrize("listed, url", [
    ("169.254.169.254", "http://169.254.169.254/"), ("169.254.0.0/16", "http://169.254.0.23/"),
    ("fd00:ec2::254", "http://[fd00:ec2::254]/"), ("169.254.0.0/16", "http://[::ffff:169.254.169.254]/"),
    ("100.100.100.200/32", "http://100.100.100.200/"), ("fe80::/10", "http://[fe80::1]/"),
    ("169.254.169.254", "http://metadata.google.internal/")])
def test_a_metadata_address_listed_in_allow_hosts_passes_the_check(listed: str, url: str) -> None:
    """Listed by address or network it is allowed (the check passes; nothing listens there in a test)."""
    dns = Dns({"metadata.google.internal": (["169.254.169.254"], ["169.254.169.254"])})
    pin = asyncio.run(check_url(url, allow_hosts=[listed], resolver=dns))
    assert len(pin.addresses) == 1 and ipaddress.ip_address(pin.addresses[0]) in ipaddress.ip_network(listed) or \
        ipaddress.ip_address(pin.addresses[0]).ipv4_mapped in ipaddress.ip_network(listed)


def _config(tmp_path: Path, http: str) -> Path:
    path = tmp_path / "newsmon.toml"
    path.write_text(f'[warehouse]\npath = "wh/n.duckdb"\n[http]\n{http}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("bad", ["http://feeds.intranet/", "10.0.0.0/33", "300.1.2.3", "feeds..intranet",
                                 "-feeds.intranet", "feeds intranet", "*.intranet", "", "fd00::/129"])
def test_a_bad_allow_hosts_entry_is_one_clear_config_error(tmp_path: Path, bad: str) -> None:
    cfg = _config(tmp_path, f'allow_hosts = ["10.0.0.0/8", {bad!r}]'.replace("'", '"'))
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    msg = str(err.value)
    assert msg.startswith(f"{cfg}: http.allow_hosts[1]: expected a host name") and repr(bad) in msg
    assert "\n" not in msg


def test_allow_hosts_accepts_names_addresses_and_networks(tmp_path: Path) -> None:
    entries = ["feeds.intranet", "FEEDS.Intranet.", "localhost", "10.0.0.5", "10.0.0.0/8", "10.1.2.3/8",
               "fd00::/8", "::1", "новости.рф", "xn--b1amarcd.xn--p1ai"]
    cfg = _config(tmp_path, "allow_hosts = [" + ", ".join(f'"{e}"' for e in entries) + "]")
    assert load_settings(cfg).http.allow_hosts == tuple(entries)
    assert load_settings(_config(tmp_path, "")).http.allow_hosts == ()


def test_a_bad_allow_hosts_entry_exits_2_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = _config(tmp_path, 'allow_hosts = ["10.0.0.0/8", "https://intranet/"]')
    proc = subprocess.run([str(Path(sys.executable).parent / "newsmon"), "feeds", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    assert len(lines) == 1 and "http.allow_hosts[1]" in lines[0] and "https://intranet/" in lines[0], lines
    assert "Traceback" not in proc.stderr


# --- 4. charsets: the declared one, a few bad bytes replaced ---------------------------------------------

TITLES = [f"Новость {i}: Баку и Москва обсудили энергетику и транспорт" for i in range(12)]
BAD_BYTES = {
    "0xff": b"\xff",
    "lone continuation": b"\x80",
    "truncated sequence": b"\xd0",
    "overlong slash": b"\xc0\xaf",
    "encoded surrogate": b"\xed\xa0\x80",
    "cp1251 word": "Баку".encode("cp1251"),
}


def _corrupt(body: bytes, marker: str, encoding: str, bad: bytes) -> bytes:
    at = body.index(marker.encode(encoding))
    return body[:at] + bad + body[at:]


def _titles(routes: RouteServer, path: str, body: bytes, content_type: str) -> tuple[list[str], str | None]:
    url = routes.add(path, body=body, content_type=content_type)
    [r] = poll_feeds([FeedSpec("enc", url)], {}, HttpSettings(allow_private_networks=True, **FAST), now=NOW)
    assert r.ok, r.error
    return [e.title for e in r.entries], r.bozo


@pytest.mark.parametrize("bad", list(BAD_BYTES))
@pytest.mark.parametrize("declared", ["xml", "header", "both", "header-only-undeclared-xml"])
def test_a_utf8_feed_with_bad_bytes_keeps_every_other_title(routes: RouteServer, bad: str, declared: str) -> None:
    items = [(f"g{i}", t, NOW - dt.timedelta(hours=i)) for i, t in enumerate(TITLES)]
    body = rss(items, "utf-8", declare=declared in ("xml", "both"))
    body = _corrupt(body, "Новость 4:", "utf-8", BAD_BYTES[bad])
    ctype = "application/rss+xml" + ("; charset=utf-8" if declared != "xml" else "")
    titles, note = _titles(routes, "/u.xml", body, ctype)
    assert titles[:4] + titles[5:] == TITLES[:4] + TITLES[5:]
    assert titles[4].endswith(TITLES[4]) and titles[4].startswith("\ufffd"), titles[4]
    assert "replaced" in (note or ""), note


def test_an_undeclared_utf8_feed_with_a_bad_byte_is_read_as_xml_s_default(routes: RouteServer) -> None:
    body = _corrupt(rss([(f"g{i}", t, None) for i, t in enumerate(TITLES)], declare=False), "Новость 7", "utf-8",
                    b"\xff")
    titles, note = _titles(routes, "/nu.xml", body, "application/xml")
    assert titles[:7] + titles[8:] == TITLES[:7] + TITLES[8:] and titles[7] == "\ufffd" + TITLES[7]


def test_a_utf8_feed_with_a_whole_title_in_cp1251_keeps_the_others(routes: RouteServer) -> None:
    body = rss([(f"g{i}", t, None) for i, t in enumerate(TITLES)])
    at = body.index(TITLES[3].encode())
    body = body[:at] + TITLES[3].encode("cp1251") + body[at + len(TITLES[3].encode()):]
    titles, note = _titles(routes, "/mix.xml", body, "application/rss+xml")
    assert [t for i, t in enumerate(titles) if i != 3] == [t for i, t in enumerate(TITLES) if i != 3]
    assert "replaced" in (note or "")


@pytest.mark.parametrize("declared", ["xml", "header"])
@pytest.mark.parametrize("bad", [b"", b"\x98"])  # 0x98 is the one byte windows-1251 leaves undefined
def test_a_cp1251_feed_is_read_as_declared(routes: RouteServer, declared: str, bad: bytes) -> None:
    body = rss([(f"g{i}", t, None) for i, t in enumerate(TITLES)], "windows-1251", declare=declared == "xml")
    body = _corrupt(body, "Новость 2", "cp1251", bad)
    ctype = "application/rss+xml" + ("; charset=windows-1251" if declared == "header" else "")
    titles, note = _titles(routes, "/w.xml", body, ctype)
    assert titles[:2] + titles[3:] == TITLES[:2] + TITLES[3:]
    assert titles[2] == ("\ufffd" if bad else "") + TITLES[2]
    assert ("replaced" in (note or "")) == bool(bad), note


@pytest.mark.parametrize("encoding", ["windows-1251", "koi8-r"])
def test_an_undeclared_legacy_feed_is_detected(routes: RouteServer, encoding: str) -> None:
    titles, note = _titles(routes, "/d.xml", rss([(f"g{i}", t, None) for i, t in enumerate(TITLES)], encoding,
                                                 declare=False), "application/xml")
    assert titles == TITLES and "detected" in (note or ""), (titles[:2], note)


def test_a_utf8_feed_declared_as_cp1251_in_the_header_but_utf8_in_xml_keeps_the_header(routes: RouteServer) -> None:
    """RFC 7303: the HTTP charset wins, as before; a declaration that decodes cleanly is not second-guessed."""
    body = rss([(f"g{i}", t, None) for i, t in enumerate(TITLES)])
    titles, _ = _titles(routes, "/h.xml", body, "application/rss+xml; charset=windows-1251")
    assert titles[0] == TITLES[0].encode().decode("cp1251")


@pytest.mark.parametrize("where", ["meta", "header", "undeclared"])
def test_a_utf8_page_with_a_bad_byte_keeps_its_text(where: str) -> None:
    text = "Баку и Москва обсудили энергетику и транспорт. " * 30
    meta = "<meta charset='utf-8'>" if where == "meta" else ""
    body = f"<html><head>{meta}<title>t</title></head><body><p>{text}</p></body></html>".encode()
    body = _corrupt(body, "Москва", "utf-8", b"\xff")
    decoded = decode_html(body, "utf-8" if where == "header" else None)
    assert decoded.encoding == "utf_8" and decoded.text.count("Москва") == 30 and decoded.text.count("\ufffd") == 1


def test_a_utf8_page_with_a_bad_byte_is_extracted_whole(routes: RouteServer) -> None:
    text = "Баку и Москва обсудили энергетику и транспорт на встрече в столице. " * 20
    body = _corrupt(f"<html><head><meta charset='utf-8'><title>t</title></head><body><article><p>{text}</p>"
                    "</article></body></html>".encode(), "Москва", "utf-8", b"\x80")
    url = routes.add("/page", body=body, content_type="text/html")
    entry = Entry(feed_url="http://f/", key="k", link=url, title="T", summary="S")
    got = fetch_articles([entry], {}, HttpSettings(allow_private_networks=True, **FAST), now=NOW, workers=1)
    assert got.articles[0].extraction_status == "ok" and got.articles[0].text.count("Москва") == 20


# --- 5. the newest entries first, the rest in later runs -------------------------------------------------

def _entry(i: int, when: dt.datetime | None) -> Entry:
    return Entry(feed_url="http://f/", key=f"g{i}", link=f"http://f/{i}", title=f"t{i}", published_at=when,
                 aliases=(f"g{i}",))


@given(st.lists(st.booleans(), min_size=0, max_size=30), st.booleans())
def test_newest_first_orders_by_date_and_places_undated_entries_by_the_feed_s_own_order(
        dated: list[bool], oldest_first: bool) -> None:
    """A feed of entries e0 (oldest) .. eN (newest), listed either way, some undated: the dated ones come out
    newest first, each undated one right after the dated entry that is newer than it in the feed."""
    n = len(dated)
    when = [NOW + dt.timedelta(minutes=i) for i in range(n)]
    entries = [_entry(i, when[i] if dated[i] else None) for i in range(n)]
    listed = entries if oldest_first else entries[::-1]
    got = [int(e.key[1:]) for e in newest_first(listed)]
    assert sorted(got) == list(range(n))
    dated_order = [i for i in got if dated[i]]
    assert dated_order == sorted(dated_order, reverse=True)
    if sum(dated) >= 2 or not oldest_first:  # the direction is known: the whole order is the true one
        assert got == list(range(n - 1, -1, -1)), (dated, oldest_first, got)


def test_shuffled_dates_are_taken_newest_first() -> None:
    import random

    rnd = random.Random(7)
    entries = [_entry(i, NOW + dt.timedelta(minutes=i)) for i in range(40)]
    rnd.shuffle(entries)
    assert [int(e.key[1:]) for e in newest_first(entries)] == list(range(39, -1, -1))


class GrowingFeed:
    """A feed on a real server that answers ETag / If-Modified-Since with 304 while it is unchanged."""

    def __init__(self, routes: RouteServer, path: str, links: str = "http://site.example/") -> None:
        self.links = links
        self.items: list[tuple[str, str, dt.datetime | None]] = []
        self.version = 0
        self.statuses: list[int] = []
        routes.routes[path] = self._handle
        self.url = routes.base_url + path

    def set(self, items: list[tuple[str, str, dt.datetime | None]]) -> None:
        self.items, self.version = items, self.version + 1

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        etag, lm = f'"v{self.version}"', format_datetime(NOW + dt.timedelta(minutes=self.version), usegmt=True)
        if h.headers.get("If-None-Match") == etag or h.headers.get("If-Modified-Since") == lm:
            self.statuses.append(304)
            h.send_response(304)
            h.end_headers()
            return
        body = rss(self.items, links=self.links)
        self.statuses.append(200)
        h.send_response(200)
        for k, v in (("Content-Type", "application/rss+xml"), ("Content-Length", str(len(body))), ("ETag", etag),
                     ("Last-Modified", lm)):
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)


def _items(numbers: Sequence[int], *, oldest_first: bool, dated: bool = True) -> list[tuple[str, str,
                                                                                              dt.datetime | None]]:
    items = [(f"e{i}", f"Entry {i}", NOW - dt.timedelta(days=1) + dt.timedelta(minutes=i) if dated else None)
             for i in numbers]
    return items if oldest_first else items[::-1]


@pytest.mark.parametrize("oldest_first, dated", [(True, True), (False, True), (True, False), (False, False)])
def test_over_several_runs_every_entry_is_stored_and_the_newest_come_first(
        routes: RouteServer, tmp_path: Path, oldest_first: bool, dated: bool) -> None:
    """Cap 4: a feed of 7 entries (more come later) is taken 4, then 3 newest-first, the leftovers truly
    left for later (no 304, no unchanged-body skip while some are left), then the feed rests at 304."""
    cap = 4
    http = HttpSettings(allow_private_networks=True, max_entries_per_feed=cap, **FAST)  # type: ignore[arg-type]
    feed = GrowingFeed(routes, "/grow.xml")
    spec = FeedSpec("grow", feed.url)
    wh = make_warehouse(tmp_path / "wh.duckdb")
    stored: list[set[int]] = []
    notes: list[str | None] = []

    def run(label: str) -> None:
        states = wh.runs.feed_states()
        results = poll_feeds([spec], states, http, now=NOW)
        found = resolve_entries(results, wh.runs.known_entries(all_aliases(results)), now=NOW, max_per_feed=cap)
        results = left_for_later(results, found.left, cap)  # as flows.poll does
        notes.append(results[0].bozo)
        stored.append({int(e.key.rsplit("/", 1)[-1][1:]) for e in found.new})
        articles = tuple(build_article(e, from_feed(e, "test"), "grow", NOW) for e in found.new)
        wh.runs.store_run(RunBatch(label, "test", NOW, tuple(results), articles, (), (),
                                   aliases=tuple(found.aliases)), finished_at=NOW)

    feed.set(_items(range(7), oldest_first=oldest_first, dated=dated))
    run("r1")
    run("r2")
    feed.set(_items(range(8), oldest_first=oldest_first, dated=dated))  # one more entry, the newest
    run("r3")
    run("r4")
    expected_first = ({3, 4, 5, 6}, {0, 1, 2}) if dated or not oldest_first else ({0, 1, 2, 3}, {4, 5, 6})
    assert stored[:2] == list(expected_first), stored
    assert stored[2:] == [{7}, set()]
    assert "3 new entries over max_entries_per_feed = 4 were left for later" in (notes[0] or "")
    assert notes[1] is None and notes[2] is None
    assert feed.statuses == [200, 200, 200, 304]  # leftovers: the whole feed again; then conditional GET works


@pytest.mark.usefixtures("prefect_harness")
def test_the_poll_flow_takes_an_oldest_first_feed_newest_first_and_the_rest_in_later_runs(
        routes: RouteServer, tmp_path: Path) -> None:
    """The real flow (poll, identify, pages, store) and its fetch_log, over three runs."""
    from flows.poll import poll_feeds as flow

    feed = GrowingFeed(routes, "/old-first.xml", links=routes.base_url + "/")
    for i in range(9):
        routes.add(f"/e{i}", body=f"<html><body><article><p>{'Entry text. ' * 60}</p></article></body></html>"
                   .encode(), content_type="text/html")
    feed.set([(f"e{i}", f"Entry {i}", NOW + dt.timedelta(minutes=i)) for i in range(9)])  # oldest first
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text(f"""[warehouse]\npath = "wh/n.duckdb"\n[http]\nallow_private_networks = true\ntimeout_s = 5
per_host_delay_s = 0\njitter_s = 0\nmax_entries_per_feed = 5\n[[feeds]]\nname = "old-first"\nurl = "{feed.url}"
""", encoding="utf-8")
    summaries = [flow(config=str(cfg)) for _ in range(3)]
    assert [s["new_articles"] for s in summaries] == [5, 4, 0]
    rows = lake_query(cfg, "SELECT a.title, r.started_at FROM articles a JOIN poll_runs r USING (run_id) "
                           "ORDER BY r.started_at, a.title")
    runs = sorted({r[1] for r in rows})
    first = {t for t, at in rows if at == runs[0]}
    assert first == {f"Entry {i}" for i in range(4, 9)}  # the newest five of an oldest-first feed
    assert {t for t, _ in rows} == {f"Entry {i}" for i in range(9)}
    log = lake_query(cfg, "SELECT error FROM fetch_log f JOIN poll_runs r USING (run_id) WHERE kind = 'feed' "
                          "ORDER BY r.started_at")
    assert "4 new entries over max_entries_per_feed = 5 were left for later" in (log[0][0] or "")
    assert log[1][0] is None and feed.statuses == [200, 200, 304]
