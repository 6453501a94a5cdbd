"""Shared fixtures: real local servers, real DuckDB files, one Prefect test harness per session."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

DATA = Path(__file__).parent / "data"


def make_warehouse(path: Path) -> Any:
    """A real warehouse (state database + DuckLake) named by `path`, as `[warehouse] path` would name it."""
    from newsmon.config import WarehouseSettings
    from warehouse import open_warehouse

    return open_warehouse(WarehouseSettings(path=path))


def lake_query(config_or_path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of `sql` on the warehouse of a config file (or named by a warehouse path), read-only."""
    from newsmon.config import WarehouseSettings, load_settings
    from warehouse import open_reader

    settings = (load_settings(config_or_path).warehouse if config_or_path.suffix == ".toml"
                else WarehouseSettings(path=config_or_path))
    reader = open_reader(settings)
    try:
        return reader.query(sql, params)[1]
    finally:
        reader.close()



def _find_corpus() -> Path:
    """The shared real-world corpus (feeds and pages from other projects), beside the checkout."""
    candidates = [os.environ.get("NEWSMON_CORPUS", ""), str(Path(__file__).resolve().parents[2] / "shared/corpus"),
                  "/work/shared/corpus"]
    for c in candidates:
        if c and Path(c, "README.md").exists():
            return Path(c)
    return Path(candidates[1])


CORPUS = _find_corpus()

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    """Tests never reach the internet: any connect to a non-loopback address fails loudly."""
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
            raise OSError(f"test tried to reach {host}: tests must stay on 127.0.0.1")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


Handler = Callable[[BaseHTTPRequestHandler], None]


class _BusyServer(ThreadingHTTPServer):
    request_queue_size = 128  # many concurrent test clients: the default backlog of 5 drops connects


class RouteServer:
    """A 127.0.0.1 server whose paths answer with handler functions (for faults and odd responses)."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: list[str] = []
        server = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                route(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = _BusyServer(("127.0.0.1", 0), H)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def add(self, path: str, status: int = 200, body: bytes = b"", content_type: str = "text/xml",
            headers: dict[str, str] | None = None) -> str:
        def respond(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        self.routes[path] = respond
        return self.base_url + path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server on 127.0.0.1 for the whole session (see tests/pg.py)."""
    from tests.pg import postgres_server

    with postgres_server() as pg:
        yield pg


@pytest.fixture
def routes() -> Iterator[RouteServer]:
    srv = RouteServer()
    yield srv
    srv.close()


def config_text(feeds: list[tuple[str, str]], alert_urls: list[str] | None = None, extra: str = "",
                warehouse: str = 'path = "wh/newsmon.duckdb"') -> str:
    """A test config's TOML (local servers allowed, no politeness delay)."""
    feed_tables = "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in feeds)
    urls = ", ".join(f'"{u}"' for u in alert_urls or [])
    return f"""
[warehouse]
{warehouse}
[http]
allow_private_networks = true
timeout_s = 5
per_host_delay_s = 0
jitter_s = 0
[alerts]
urls = [{urls}]
{extra}
{feed_tables}"""


def write_config(tmp_path: Path, feeds: list[tuple[str, str]], alert_urls: list[str] | None = None,
                 extra: str = "") -> Path:
    """A real TOML config file for a test run (local servers allowed)."""
    path = tmp_path / "newsmon.toml"
    path.write_text(config_text(feeds, alert_urls, extra), encoding="utf-8")
    return path
