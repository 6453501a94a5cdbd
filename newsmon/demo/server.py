"""A small threaded HTTP server for the offline demo site (stdlib only).

Feeds and pages (`.xml`, `.html`) are templates. Two placeholders are filled in when a file is served:

* `{{BASE_URL}}`: the server's address, e.g. `http://127.0.0.1:43817`, for absolute links.
* `{{DATE:<offset>:<format>}}`: the server's `now` moved by `<offset>` and written in `<format>`.
  The offset is one or more signed steps in seconds, minutes, hours or days (`-3h`, `-1d-2h`, `+30m`)
  or `now`. The formats are `rfc822` (RSS pubDate, HTTP), `iso` (Atom, meta tags), `date` (2025-06-02),
  `time` (09:05), `year` (2025), `human` (2 June 2025, 09:05) and `ru` (2 июня 2025, 09:05).

`now` is fixed when the server is created, so a page renders to the same bytes (and the same ETag) on
every poll. Other files are served as they are.

    python -m newsmon.demo.server [--port P] [--latency S] [ROOT]
"""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import pathlib
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from newsmon.errors import NewsmonError

TEMPLATED_SUFFIXES = frozenset({".html", ".xml"})

_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
_OFFSET_STEP = re.compile(r"([+-])(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FEED_ROOT = re.compile(rb"<(rss|feed|rdf:RDF)[\s>]")
_FEED_TYPES = {
    b"rss": "application/rss+xml",
    b"feed": "application/atom+xml",
    b"rdf:RDF": "application/rdf+xml",
}
_TEXT_TYPES = frozenset({"application/javascript", "application/json", "image/svg+xml"})

_MONTHS_EN = "January February March April May June July August September October November December".split()
_MONTHS_RU = "января февраля марта апреля мая июня июля августа сентября октября ноября декабря".split()

_DATE_FORMATS: dict[str, Callable[[datetime], str]] = {
    "rfc822": lambda moment: format_datetime(moment, usegmt=True),
    "iso": lambda moment: moment.isoformat(),
    "date": lambda moment: moment.strftime("%Y-%m-%d"),
    "time": lambda moment: moment.strftime("%H:%M"),
    "year": lambda moment: str(moment.year),
    "human": lambda moment: f"{moment.day} {_MONTHS_EN[moment.month - 1]} {moment:%Y, %H:%M}",
    "ru": lambda moment: f"{moment.day} {_MONTHS_RU[moment.month - 1]} {moment:%Y, %H:%M}",
}


class DemoSiteError(NewsmonError):
    """The demo site folder is missing or one of its files uses a placeholder the server does not know."""


# --- templating (pure) ---------------------------------------------------------------------------------


def parse_offset(text: str) -> timedelta:
    """`-3h` -> -3 hours; `-1d-2h`, `+30m` and `now` work too."""
    if text == "now":
        return timedelta(0)
    steps = list(_OFFSET_STEP.finditer(text))
    if not steps or "".join(step.group(0) for step in steps) != text:
        raise DemoSiteError(f"bad date offset {text!r}; write it like -3h, -10d, -1d-2h, +30m or now")
    seconds = 0
    for sign, amount, unit in (step.groups() for step in steps):
        seconds += (-1 if sign == "-" else 1) * int(amount) * _UNIT_SECONDS[unit]
    return timedelta(seconds=seconds)


def format_date(moment: datetime, fmt: str) -> str:
    """Write a UTC datetime in one of the placeholder formats (see the module docstring)."""
    try:
        formatter = _DATE_FORMATS[fmt]
    except KeyError:
        known = ", ".join(sorted(_DATE_FORMATS))
        raise DemoSiteError(f"unknown date format {fmt!r}; use one of {known}") from None
    return formatter(moment)


def expand_placeholder(name: str, *, base_url: str, now: datetime) -> str:
    """The text that replaces `{{name}}`."""
    if name == "BASE_URL":
        return base_url
    kind, _, spec = name.partition(":")
    if kind != "DATE":
        raise DemoSiteError(
            f"unknown placeholder {{{{{name}}}}}; "
            "use {{BASE_URL}} or {{DATE:<offset>:<format>}}, e.g. {{DATE:-3h:iso}}"
        )
    offset, _, fmt = spec.partition(":")
    return format_date(now + parse_offset(offset), fmt)


def render_template(text: str, *, base_url: str, now: datetime) -> str:
    """Fill every `{{...}}` placeholder in `text`; `now` must be timezone-aware."""
    moment = as_utc(now)
    return _PLACEHOLDER.sub(
        lambda match: expand_placeholder(match.group(1).strip(), base_url=base_url, now=moment), text
    )


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC, to the second; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DemoSiteError("the demo clock needs a timezone-aware datetime, e.g. datetime.now(UTC)")
    return moment.astimezone(UTC).replace(microsecond=0)


# --- files to responses ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One rendered file, ready to send."""

    body: bytes
    content_type: str
    etag: str
    last_modified: datetime


def demo_site_root() -> pathlib.Path:
    """The demo site folder shipped inside the package (editable or installed)."""
    site = resources.files("newsmon.demo") / "site"
    if not isinstance(site, pathlib.Path) or not site.is_dir():
        raise DemoSiteError(f"the demo site is not a folder on disk ({site}); install newsmon unzipped")
    return site


def resolve_file(root: pathlib.Path, url_path: str) -> pathlib.Path | None:
    """The file under `root` that a request path names (folders serve index.html), or None."""
    relative = unquote(urlsplit(url_path).path).lstrip("/")
    try:
        candidate = (root / relative).resolve()
    except (OSError, ValueError):  # e.g. an embedded NUL byte
        return None
    if not candidate.is_relative_to(root):
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def content_type_for(path: pathlib.Path, body: bytes) -> str:
    """Feeds are told apart by their root element; everything else goes by file name."""
    if path.suffix == ".xml":
        found = _FEED_ROOT.search(body[:2048])
        return _FEED_TYPES[found.group(1)] if found else "application/xml"
    if path.suffix in {".html", ".htm"}:
        return "text/html; charset=utf-8"
    guessed, _ = mimetypes.guess_type(path.name)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in _TEXT_TYPES:
        return f"{guessed}; charset=utf-8"
    return guessed


def load_resource(path: pathlib.Path, *, base_url: str, now: datetime) -> Resource:
    """Read (and for .xml/.html, render) one file."""
    raw = path.read_bytes()
    if path.suffix in TEMPLATED_SUFFIXES:
        body = render_template(raw.decode("utf-8"), base_url=base_url, now=now).encode("utf-8")
        modified = as_utc(now)
    else:
        body = raw
        modified = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Resource(body, content_type_for(path, body), etag, modified)


def is_not_modified(headers: Message, resource: Resource) -> bool:
    """RFC 9110 conditional GET: If-None-Match wins over If-Modified-Since."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or resource.etag in tags
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return resource.last_modified <= since


# --- the server ------------------------------------------------------------------------------------------


class _Site:
    """What the request handlers share: the folder, the clock, the latency and the request log."""

    def __init__(self, root: pathlib.Path, base_url: str, now: datetime, latency_s: float) -> None:
        self.root = root
        self.base_url = base_url
        self.now = now
        self.latency_s = latency_s
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def load(self, url_path: str) -> Resource | None:
        path = resolve_file(self.root, url_path)
        return None if path is None else load_resource(path, base_url=self.base_url, now=self.now)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    site: _Site

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A client that hangs up mid-response is normal; anything else is a bug worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "CaspianLedger/1.0"
    timeout = 10

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, *, send_body: bool) -> None:
        site = self.server.site
        if site.latency_s:
            time.sleep(site.latency_s)
        try:
            resource = site.load(self.path)
        except DemoSiteError as exc:
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, explain=str(exc))
            return
        if resource is None:
            self.send_error(HTTPStatus.NOT_FOUND, explain=f"no page at {self.path}")
            return
        if is_not_modified(self.headers, resource):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self._send_validators(resource)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", resource.content_type)
        self.send_header("Content-Length", str(len(resource.body)))
        self._send_validators(resource)
        self.end_headers()
        if send_body:
            self.wfile.write(resource.body)

    def _send_validators(self, resource: Resource) -> None:
        self.send_header("ETag", resource.etag)
        self.send_header("Last-Modified", format_datetime(resource.last_modified, usegmt=True))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if isinstance(code, int) else 0
        self.server.site.record(self.command or "", getattr(self, "path", ""), status)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: requests are kept in `SiteServer.requests` instead of printed."""


class SiteServer:
    """Serve a folder on 127.0.0.1 in a background thread; a context manager, or call start()/stop().

    The socket is bound on construction, so `base_url` is known before `start()`.
    """

    def __init__(
        self,
        root: pathlib.Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        now: datetime | None = None,
        latency_s: float = 0.0,
    ) -> None:
        folder = pathlib.Path(root).resolve()
        if not folder.is_dir():
            raise DemoSiteError(f"{folder} is not a folder; pass the site folder to serve")
        if latency_s < 0:
            raise DemoSiteError(f"latency_s must be zero or more, not {latency_s}")
        self.root = folder
        self.now = as_utc(datetime.now(UTC) if now is None else now)
        self._httpd = _HTTPServer((host, port), _Handler)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host = str(bound_host)
        self.port = int(bound_port)
        self.base_url = f"http://{self.host}:{self.port}"
        self._httpd.site = _Site(folder, self.base_url, self.now, latency_s)
        self.requests = self._httpd.site.requests
        self._thread: threading.Thread | None = None
        self._closed = False

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server: url("feeds/en.xml") or url("/feeds/en.xml")."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self) -> SiteServer:
        if self._closed or self._thread is not None:
            raise DemoSiteError(f"the demo server at {self.base_url} was already started or stopped")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"demo-site-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- command line ----------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m newsmon.demo.server", description="Serve the demo news site (or ROOT) until Ctrl-C."
    )
    parser.add_argument("root", nargs="?", type=pathlib.Path, help="folder to serve (default: the demo site)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S", help="seconds to wait per request")
    return parser.parse_args(argv)


def _print_banner(server: SiteServer) -> None:
    print(f"Serving {server.root} at {server.base_url}/ (Ctrl-C to stop)", flush=True)
    for feed in sorted((server.root / "feeds").glob("*.xml")):
        print(f"  feed: {server.url('feeds/' + feed.name)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        server = SiteServer(args.root or demo_site_root(), host=args.host, port=args.port, latency_s=args.latency)
    except (DemoSiteError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with server:
        try:
            _print_banner(server)
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
