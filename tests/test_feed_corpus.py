"""Every file of feedparser's own test suite, served over HTTP as a feed, through the real poller.

One local server (each file's `Header:` lines become response headers) and one asyncio run for all ~2,100
files. Nothing may crash; every feed ends ok, recovered (a "bozo" feed whose entries are kept) or rejected
with a clear error; the outcome of each is recorded in a real warehouse.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from extractors.poller import poll_feeds_async
from newsmon.config import HttpSettings
from newsmon.records import FeedResult, FeedSpec, RunBatch
from tests.conftest import CORPUS, make_warehouse

ROOT = CORPUS / "feedparser-tests"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
_HEADER = re.compile(r"^Header:\s*([\w-]+):[ \t]*(.*?)\s*$", re.M)

pytestmark = [pytest.mark.skipif(not ROOT.is_dir(), reason="the shared feedparser corpus is not here"),
              pytest.mark.slow]  # ~2,100 feeds over HTTP: 5-15 s depending on the machine


def comment_text(raw: bytes) -> str:
    """The file's leading text in its own encoding (BOM or first bytes pick UTF-16/32), for its Header: lines."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            return raw[:4000].decode(codec, errors="ignore")
    for head, codec in ((b"\0\0\0<", "utf-32-be"), (b"<\0\0\0", "utf-32-le"), (b"\0<\0?", "utf-16-be"),
                        (b"<\0?\0", "utf-16-le")):
        if raw.startswith(head):
            return raw[:4000].decode(codec, errors="ignore")
    return raw[:4000].decode("utf-8", errors="ignore")


def corpus_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*") if p.is_file() and p.name not in ("SOURCE.md", "LICENSE"))


SERVE = """
import re, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote
sys.path.insert(0, sys.argv[2])
from tests.test_feed_corpus import response_headers
root = Path(sys.argv[1])

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many feeds

    def do_GET(self):
        raw = (root / unquote(self.path.lstrip("/"))).read_bytes()
        self.send_response(200)
        for name, value in response_headers(raw).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass

httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
httpd.daemon_threads = True
print(httpd.server_address[1], flush=True)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
sys.stdin.read()  # until the test closes our stdin
"""


def response_headers(raw: bytes) -> dict[str, str]:
    """Content-Type text/xml unless the file's own `Header:` lines say otherwise (as upstream serves them)."""
    headers = {"Content-Type": "text/xml"}
    for name, value in _HEADER.findall(comment_text(raw)):
        headers[name.title()] = value
    return headers


class CorpusServer:
    """The corpus over HTTP from another process, so the server does not share the test's GIL."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE, str(root), str(Path(__file__).parents[1])],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = f"http://127.0.0.1:{self.proc.stdout.readline().strip()}/"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def corpus_results() -> Iterator[list[FeedResult]]:
    server = CorpusServer(ROOT)
    files = corpus_files()
    feeds = [FeedSpec(str(p.relative_to(ROOT)), server.base_url + quote(str(p.relative_to(ROOT)))) for p in files]
    settings = HttpSettings(allow_private_networks=True, timeout_s=10, max_concurrency=24, max_per_host=24,
                            per_host_delay_s=0, jitter_s=0)
    try:
        yield asyncio.run(poll_feeds_async(feeds, {}, settings, now=NOW))
    finally:
        server.close()


def outcome(r: FeedResult) -> str:
    if not r.ok:
        return "rejected"
    return "recovered" if r.bozo else "ok"


def test_every_corpus_feed_is_polled_without_a_crash_and_gets_an_outcome(corpus_results: list[FeedResult],
                                                                          tmp_path: Path) -> None:
    served = len(corpus_files())
    counts = Counter(outcome(r) for r in corpus_results)
    print(f"\nfeedparser corpus: {served} served, {dict(counts)}, "
          f"{sum(len(r.entries) for r in corpus_results)} entries")
    assert len(corpus_results) == served == 2107
    assert all(r.status == 200 for r in corpus_results)  # every failure below is the parser's, not HTTP's
    assert counts == {"ok": 1822, "recovered": 264, "rejected": 21}
    # rejected: 7 CDF channels (no RSS/Atom version), a JSON Feed, and 13 documents the XML parser could not
    # read to the end (truncated, unclosed tokens) that yield no entry; each says so and what to do
    rejected = [r for r in corpus_results if not r.ok]
    assert sum(r.feed.name.startswith("wellformed/cdf/") for r in rejected) == 7
    assert sum("SAXParseException" in (r.error or "") for r in rejected) == 14
    for r in rejected:
        assert r.error and r.error.startswith(r.feed.url) and "not a readable RSS/Atom feed" in r.error
        assert "check the URL or tell the publisher" in r.error
    # "bozo" feeds keep their entries: 15 recovered feeds carry entries, the rest (mostly one undefined HTML
    # entity in a complete feed with only a title) are empty but readable
    assert sum(1 for r in corpus_results if r.ok and r.bozo and r.entries) == 15
    assert sum(len(r.entries) for r in corpus_results) == 581

    wh = make_warehouse(tmp_path / "corpus.duckdb")
    wh.runs.store_run(RunBatch("corpus", "corpus", NOW, tuple(corpus_results), (), (), ()), finished_at=NOW)
    _, rows = wh.lake.query("SELECT count(*), count(last_status), count(*) FILTER (WHERE last_error IS NOT NULL), "
                            "sum(entries_seen) FROM feed_health")
    assert rows == [(served, served, counts["rejected"], sum(len(r.entries) for r in corpus_results))]


def by_name(results: list[FeedResult], name: str) -> FeedResult:
    return next(r for r in results if r.feed.name == name)


@pytest.mark.parametrize("name, title", [
    ("illformed/chardet/koi8r.xml", "Как пережить новогоднюю ночь"),
    ("illformed/chardet/windows1255.xml", "האם תדפיס נייר של אתר אינטרנט"),
    ("illformed/chardet/gb2312.xml", "不归移民漫画系列"),
    ("illformed/chardet/shiftjis.xml", "DrecomRSSに記事投稿が反映されない"),
])
def test_undeclared_legacy_charsets_are_detected(corpus_results: list[FeedResult], name: str, title: str) -> None:
    r = by_name(corpus_results, name)
    assert r.entries and r.entries[0].title.startswith(title), r.entries[:1]


def test_utf16_utf32_served_as_text_xml_and_declared_charsets_decode(corpus_results: list[FeedResult]) -> None:
    # served with a bare `text/xml`: read as RFC 7303 says (BOM / autodetection), not as US-ASCII
    for name in ("encoding/utf-16le-bom.xml", "encoding/utf-16be.xml", "encoding/utf-32le-autodetect.xml",
                 "encoding/utf-32be.xml", "encoding/http_i18n.xml"):
        r = by_name(corpus_results, name)
        assert r.ok and not r.bozo, (name, r.error, r.bozo)
    assert by_name(corpus_results, "encoding/euc-kr-item.xml").entries[0].summary == "\ub144"
    assert by_name(corpus_results, "encoding/demoronize-1.xml").entries[0].summary == "don\u2019t"
    assert by_name(corpus_results, "encoding/double-encoded-html.xml").entries[0].summary == "\u2026"
