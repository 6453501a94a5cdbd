"""Peak memory of fetch + extract as the number of pages grows (the bound the pipeline promises).

    python -m bench.extraction_memory [--pages 200 800 2000] [--kb 150]

Each size runs in a fresh process: a local server serves distinct ~`kb` KB article pages, the pages are
fetched and extracted in batches of flows.poll.EXTRACT_BATCH with raw pages kept (packed), as a poll
run does, and the parent's peak RSS is reported. Bounded means: peak RSS grows with the extracted text
(a few KB per article), not with the HTML.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ("gas pipeline Baku Moscow contract energy minister agreed supply winter volume company said talks "
         "signed project investment market price oil export refinery deal cooperation").split()


def page(i: int, kb: int) -> bytes:
    rng = random.Random(i)
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(60)) + "." for _ in range(8)]
    filler = "".join(f"<div class='menu'><a href='/x/{rng.random()}'>{rng.choice(WORDS)}</a></div>"
                     for _ in range(kb * 1024 // 60))
    return (f"<html><head><title>Story {i}</title></head><body>{filler}<article><h1>Story {i}</h1>"
            + "".join(f"<p>{p}</p>" for p in paragraphs) + "</article></body></html>").encode()


def serve(kb: int) -> str:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page(int(self.path.rsplit("/", 1)[-1]), kb)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def child(n: int, kb: int) -> None:
    from extractors.pages import fetch_articles
    from flows.poll import EXTRACT_BATCH
    from newsmon.config import HttpSettings
    from newsmon.records import Entry

    base = serve(kb)
    entries = [Entry(feed_url="f", key=f"k{i}", link=f"{base}/a/{i}", title=f"Story {i}") for i in range(n)]
    http = HttpSettings(allow_private_networks=True, max_per_host=16)
    now = datetime.now(UTC)
    kept_text = raw = 0
    texts = []
    for i in range(0, n, EXTRACT_BATCH):
        got = fetch_articles(entries[i:i + EXTRACT_BATCH], {}, http, now=now, keep_raw=True)
        texts += got.articles  # a run keeps its articles until the one store transaction
        kept_text += sum(len(a.text) for a in got.articles)
        raw += sum(len(r.body) for r in got.raw_pages)  # written per batch, then dropped
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n:6d} pages x {kb} KB: peak RSS {peak:6.0f} MB; text kept {kept_text / 1e6:5.1f} MB; "
          f"HTML fetched {n * kb / 1024:6.0f} MB; raw packed {raw / 1e6:5.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[200, 800, 2000])
    parser.add_argument("--kb", type=int, default=150)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.kb)
        return 0
    for n in args.pages:
        subprocess.run([sys.executable, "-m", "bench.extraction_memory", "--child", str(n), "--kb", str(args.kb)],
                       check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
