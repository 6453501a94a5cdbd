"""Connections are pooled per origin (extractors.http.PoolPerOrigin): each host's keep-alive connections are
reused by its next requests, and hosts never share or crowd out each other's connections; an answer without a
body newsmon uses (304, redirect, error) leaves its connection reusable too. Real HTTP/1.1 servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from extractors.http import DRAIN_BYTES, Fetcher
from newsmon.config import HttpSettings
from newsmon.errors import FetchError

# one request at a time over all hosts: one shared pool would then hold 2 connections (2 x max_concurrency) for the
# 3 hosts, and close one host's idle connection to open another's
SETTINGS = HttpSettings(allow_private_networks=True, timeout_s=5, per_host_delay_s=0, jitter_s=0, max_concurrency=1)


class KeepAliveServer:
    """An HTTP/1.1 server that keeps connections open and records the client port of each request."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        seen = self.ports

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen.append(self.client_address[1])
                status, body, extra = 200, b"<html><body>page</body></html>", {"ETag": '"v1"'}
                if self.path.startswith("/feed") and self.headers.get("If-None-Match") == '"v1"':
                    status, body = 304, b""
                elif self.path.startswith("/moved"):  # a redirect with the usual short page
                    status, body, extra = 301, b"<html><body>Moved</body></html>", {"Location": "/feed"}
                elif self.path.startswith("/gone"):
                    status, body = 404, b"<html><body>" + b"not here " * 200 + b"</body></html>"
                elif self.path.startswith("/bulky"):  # a redirect carrying more than is worth reading
                    status, body, extra = 302, b"x" * (DRAIN_BYTES * 4), {"Location": "/feed"}
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if status != 304:
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def servers() -> Iterator[list[KeepAliveServer]]:
    made = [KeepAliveServer() for _ in range(3)]
    yield made
    for s in made:
        s.httpd.shutdown()
        s.httpd.server_close()


def test_each_origin_reuses_its_own_keep_alive_connections(servers: list[KeepAliveServer]) -> None:
    async def go() -> list[int]:
        async with Fetcher(SETTINGS) as f:
            statuses = []
            for round_ in range(4):  # the origins in turn, one request at a time
                for s in servers:
                    statuses.append((await f.get(f"{s.url}/p{round_}", max_bytes=10_000)).status)
            # then every origin at once, two requests each (queued by the global limit)
            got = await asyncio.gather(*(f.get(f"{s.url}/q{i}", max_bytes=10_000) for s in servers for i in range(2)))
            return statuses + [r.status for r in got]

    assert asyncio.run(go()) == [200] * 18
    for s in servers:
        assert len(s.ports) == 6
        assert len(set(s.ports)) == 1  # one connection served all six


def test_not_modified_redirect_and_error_answers_leave_the_connection_reusable(
        servers: list[KeepAliveServer]) -> None:
    """An unchanged feed (304) used to close its connection, so every feed of a re-poll paid a new connection
    (and, over HTTPS, a TLS handshake)."""
    site = servers[0]

    async def go() -> list[object]:
        async with Fetcher(SETTINGS) as f:
            got: list[object] = [(await f.get(f"{site.url}/feed", max_bytes=10_000)).status]
            for _ in range(3):
                got.append((await f.get(f"{site.url}/feed", max_bytes=10_000, etag='"v1"')).status)
            got.append((await f.get(f"{site.url}/moved", max_bytes=10_000)).final_url)
            try:
                await f.get(f"{site.url}/gone", max_bytes=10_000)
            except FetchError as exc:
                got.append(exc.status)
            got.append((await f.get(f"{site.url}/feed", max_bytes=10_000, etag='"v1"')).status)
            before = len(set(site.ports))
            got.append((await f.get(f"{site.url}/bulky", max_bytes=10_000)).status)
            got.append(len(set(site.ports)) - before)
            return got

    assert asyncio.run(go()) == [200, 304, 304, 304, f"{site.url}/feed", 404, 304, 200, 1]
    # one connection for the first eight requests (and the redirect's hop); the bulky redirect's body is not read
    # to its end, so its connection closes and the hop it leads to opens a second one
    assert len(set(site.ports[:9])) == 1
