"""Connections are pooled per origin (extractors.http.PoolPerOrigin): each host's keep-alive connections are
reused by its next requests, and hosts never share or crowd out each other's connections. Real HTTP/1.1
servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from extractors.http import Fetcher
from newsmon.config import HttpSettings

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
                body = b"<html><body>page</body></html>"
                self.send_response(200)
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
