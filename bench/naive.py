"""The afternoon script newsmon is measured against: what most people write first.

Sequential `feedparser.parse(url)`, then per entry: a lookup in DuckDB, a plain urllib GET (trafilatura's
fetch_url refuses loopback addresses), `trafilatura.extract`, one INSERT. No concurrency, no conditional GET.

    python -m bench.naive DB FEED_URL...   prints one JSON line {"seconds", "feeds", "new_articles", ...}
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

import duckdb
import feedparser
import trafilatura


def run_naive(feed_urls: list[str], db_path: str) -> dict[str, float | int]:
    start = time.perf_counter()
    con = duckdb.connect(db_path)
    con.execute("CREATE TABLE IF NOT EXISTS articles (url VARCHAR PRIMARY KEY, feed VARCHAR, title VARCHAR, "
                "published VARCHAR, text VARCHAR)")
    new, failed = 0, 0
    for feed_url in feed_urls:
        parsed = feedparser.parse(feed_url)
        for e in parsed.entries:
            link = e.get("link", "")
            if con.execute("SELECT 1 FROM articles WHERE url = ?", [link]).fetchone():
                continue
            try:
                with urllib.request.urlopen(link, timeout=20) as resp:
                    html = resp.read()
            except OSError:
                failed += 1
                continue
            text = trafilatura.extract(html, url=link) or ""
            con.execute("INSERT INTO articles VALUES (?, ?, ?, ?, ?)",
                        [link, feed_url, e.get("title", ""), e.get("published", ""), text])
            new += 1
    con.close()
    return {"seconds": time.perf_counter() - start, "feeds": len(feed_urls), "new_articles": new,
            "failed_pages": failed}


if __name__ == "__main__":
    print(json.dumps(run_naive(sys.argv[2:], sys.argv[1])))
