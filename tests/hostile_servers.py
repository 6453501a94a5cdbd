"""Misbehaving servers on 127.0.0.1 for the fault and crash tests: raw sockets that hang, drip, reset or
answer garbage, a TLS server with a self-signed certificate, and a generated many-feed news site."""

from __future__ import annotations

import datetime as dt
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

Behaviour = Callable[[socket.socket, threading.Event], None]


def _read_request(conn: socket.socket) -> None:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


def hang(conn: socket.socket, stop: threading.Event) -> None:
    """Accept, read the request, never answer."""
    _read_request(conn)
    stop.wait(30)


def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
    """Slowloris: the status line and headers one byte at a time, each well inside the read timeout."""
    _read_request(conn)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n" + b"X-Pad: " + b"a" * 10_000
    for byte in head:
        if stop.wait(0.1):
            return
        conn.sendall(bytes([byte]))


def drip_body(conn: socket.socket, stop: threading.Event) -> None:
    """Headers at once, then a byte of body every 0.1 s: no single read ever times out."""
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
    while not stop.wait(0.1):
        conn.sendall(b"<")


def reset(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request, then drop the connection with a TCP RST."""
    _read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def reset_midway(conn: socket.socket, stop: threading.Event) -> None:
    """Start a 200 answer, send part of the body, then reset."""
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 5000\r\n\r\n<rss>")
    time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def garbage(conn: socket.socket, stop: threading.Event) -> None:
    """Answer something that is not HTTP at all."""
    _read_request(conn)
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe garbage \x1b[31m\r\n\r\n")


class RawServer:
    """A 127.0.0.1 TCP server whose every connection runs one behaviour in its own thread."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self.behaviour(conn, self._stop)
        except OSError:
            pass
        finally:
            conn.close()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (not trusted by anyone, which is the point)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _ThreadedHttp:
    """A ThreadingHTTPServer (`self._httpd`) served from a daemon thread while the `with` block runs."""

    _httpd: ThreadingHTTPServer

    def __enter__(self) -> Self:
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class TlsServer(_ThreadedHttp):
    """HTTPS on 127.0.0.1 with a self-signed certificate; answers a valid feed to anyone who trusts it."""

    def __init__(self, folder: Path) -> None:
        cert, key = self_signed_cert(folder)
        self.hits = 0
        server = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self._httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.base_url = f"https://127.0.0.1:{self._httpd.server_address[1]}"


# --- a generated many-feed site for the crash test -------------------------------------------------------

MATCH_TEXT = (
    "Azerbaijan has invited Russian companies to invest in green energy projects, the energy ministry in "
    "Baku said on Tuesday. Azerbaijani and Russian officials discussed joint investment in solar and wind "
    "power plants and a new intergovernmental agreement on energy cooperation between Baku and Moscow. "
    "Russian energy companies Lukoil and Rosatom are expected to take part, according to the ministry. "
)
PLAIN_TEXT = (
    "The city council approved a new timetable for the municipal tram network on Monday. Trams will run "
    "every seven minutes during rush hours, and the night service is extended until two in the morning. "
    "The council also plans to repaint the depot and to add benches at several stops along the river. "
)


_SYLLABLES = "ka lo mi ne su ta ri po ve du zo fa gi ho ju be".split()


class ManyFeedSite(_ThreadedHttp):
    """`feeds` RSS feeds of `items` items each, plus one article page per item. Every `match_every`-th item
    is a story the built-in watchlist matches. `visible` (items per feed shown) can grow between runs."""

    def __init__(self, feeds: int = 40, items: int = 10, match_every: int = 5) -> None:
        self.feeds, self.items, self.match_every = feeds, items, match_every
        self.visible = items
        self.page_latency_s = 0.0
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        site = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if site.page_latency_s and self.path.startswith("/a/"):
                    time.sleep(site.page_latency_s)
                body, ctype = site.render(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def feed_urls(self) -> list[tuple[str, str]]:
        return [(f"feed {f:02d}", f"{self.base_url}/feeds/{f}.xml") for f in range(self.feeds)]

    def is_match(self, f: int, i: int) -> bool:
        return (f * self.items + i) % self.match_every == 0

    def title(self, f: int, i: int) -> str:
        if self.is_match(f, i):
            return f"Azerbaijan invites Russian companies to green energy projects, round {f}-{i}"
        return f"City council approves tram timetable, part {f}-{i}"

    def render(self, path: str) -> tuple[bytes | None, str]:
        parts = path.strip("/").split("/")
        try:
            if parts[0] == "feeds":
                return self._feed(int(parts[1].removesuffix(".xml"))), "application/rss+xml"
            if parts[0] == "a":
                f, i = (int(x) for x in parts[1].removesuffix(".html").split("-"))
                return self._page(f, i), "text/html; charset=utf-8"
        except (IndexError, ValueError):
            pass
        return None, "text/plain"

    def _when(self, f: int, i: int) -> dt.datetime:
        return self.now - dt.timedelta(minutes=10 * (self.items - i) + f)

    def _feed(self, f: int) -> bytes:
        items = "".join(
            f"<item><title>{escape(self.title(f, i))}</title><link>{self.base_url}/a/{f}-{i}.html</link>"
            f"<guid>{self.base_url}/a/{f}-{i}.html</guid><pubDate>{format_datetime(self._when(f, i), True)}"
            "</pubDate><description>Summary.</description></item>"
            for i in range(min(self.visible, self.items)))
        return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Feed {f}</title>"
                f"<link>{self.base_url}/</link><description>d</description>{items}</channel></rss>").encode()

    def _page(self, f: int, i: int) -> bytes:
        text = MATCH_TEXT if self.is_match(f, i) else PLAIN_TEXT
        rng = random.Random(f * 10_000 + i)  # filler of its own, so no two stories look like copies
        filler = [" ".join("".join(rng.choice(_SYLLABLES) for _ in range(3)) for _ in range(50)) for _ in range(3)]
        paras = f"<p>{escape(text)}</p>" + "".join(f"<p>{escape(words)}.</p>" for words in filler)
        return (f"<!doctype html><html lang='en'><head><title>{escape(self.title(f, i))}</title>"
                f"<meta property='article:published_time' content='{self._when(f, i).isoformat()}'></head>"
                f"<body><article><h1>{escape(self.title(f, i))}</h1>{paras}</article></body></html>").encode()
