"""Make tests/data/legacy/v5-demo.duckdb with the release at commit 233ec0d (schema 5, DuckDB 2.0.1).

Run with that release's interpreter (see README.md beside this file), never with the current code:

    /tmp/oldrel/.venv/bin/python tests/data/legacy/make_v5_demo.py [OUT_DIR]   (default: this folder)

It is `newsmon demo` made a little richer, so that every table has rows:
* the bundled demo site, plus a "wire" feed whose entries point at stored stories under other links
  and a query parameter that is not a tracking one, so only the pages' canonical URLs tell them apart
  (-> article_aliases);
* [extraction] keep_raw_pages = true (-> raw_pages);
* two alert channels: the demo's webhook inbox (sent) and a second inbox that always answers 500
  (pending, then failed: retry_minutes = 0, max_attempts = 2);
* two runs. Between them the feeds' next_poll_at is moved to now (as if the poll interval had passed),
  the English feed edits one entry's title, the wire feed gains a new story and one more copy of a stored one;
  the Russian feed is unchanged (-> 304 through its ETag). The broken feed fails both times.
Then FORCE CHECKPOINT and VACUUM, and the database is copied (COPY FROM DATABASE) into a fresh
OUT_DIR/v5-demo.duckdb with 16 KiB blocks instead of the default 256 KiB (11 MiB -> about 0.6 MB), and
OUT_DIR/v5-demo.expected.json is written from that copy.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb

from newsmon.cli import run_once
from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root

HERE = Path(__file__).resolve().parent

WIRE_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>Caspian Wire</title>
    <link>{{BASE_URL}}/</link>
    <description>Syndicated copies of Caspian Ledger stories</description>
    <language>en</language>
"""
WIRE_ITEM = """    <item>
      <title>{title}</title>
      <link>{{{{BASE_URL}}}}/articles/{slug}.html?partner=caspianwire</link>
      <guid isPermaLink="false">{guid}</guid>
      <pubDate>{{{{DATE:{offset}:rfc822}}}}</pubDate>
    </item>
"""
RUN1_WIRE = [("Power of Siberia deliveries to rise under new Gazprom-CNPC deal",
              "gazprom-cnpc-agree-higher-power-of-siberia-deliveries", "wire-1001", "-10d+1h")]
RUN2_WIRE = RUN1_WIRE + [
    ("Russian firms asked to invest in Azerbaijan's renewables", "azerbaijan-invites-russian-companies-green-energy",
     "wire-1002", "-3h+30m"),
    ("Azerbaijan and Russia to speed up North-South corridor works", "azerbaijan-russia-north-south-corridor",
     "wire-1003", "-30m"),
]

NEW_STORY = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Azerbaijan and Russia to speed up North-South corridor works | Caspian Ledger</title>
<meta name="description" content="Transport ministers agreed a timetable for the Astara rail link and new border crossings.">
<meta name="author" content="Tural Jafarov">
<link rel="canonical" href="{{BASE_URL}}/articles/azerbaijan-russia-north-south-corridor.html">
<meta property="og:site_name" content="Caspian Ledger">
<meta property="og:type" content="article">
<meta property="og:title" content="Azerbaijan and Russia to speed up North-South corridor works">
<meta property="article:published_time" content="{{DATE:-30m:iso}}">
</head>
<body>
<main>
<article>
<h1>Azerbaijan and Russia to speed up North-South corridor works</h1>
<p class="byline">By Tural Jafarov · <time datetime="{{DATE:-30m:iso}}">{{DATE:-30m:human}}</time></p>
<div class="story-body">
<p><strong>BAKU</strong> — Azerbaijan and Russia agreed on Tuesday to speed up work on the North-South transport
corridor, the transport ministers of the two countries said after a meeting in Baku.</p>
<p>The ministers approved a timetable for new freight terminals near the Yalama-Samur border crossing and for
longer trains on the rail line between Derbent and Baku. Russian Railways and Azerbaijan Railways will set up a
joint dispatch centre to cut waiting times at the border, which shippers say can reach two days.</p>
<p>Officials said cargo on the route grew by a third last year, driven by grain, fertiliser and container traffic
bound for Iran and the Gulf. Baku expects the Astara rail link to take most of the new volumes once the section
through Iran is finished.</p>
<p>“The corridor is one of the priorities of our economic cooperation with Moscow,” the Azerbaijani minister said.
His Russian counterpart said both sides wanted to double freight on the route by the end of the decade.</p>
<p>The agreements will be presented at the next session of the Azerbaijan-Russia intergovernmental commission.</p>
</div>
</article>
</main>
</body>
</html>
"""


def write_wire(site: Path, items: list[tuple[str, str, str, str]]) -> None:
    body = "".join(WIRE_ITEM.format(title=t, slug=s, guid=g, offset=o) for t, s, g, o in items)
    (site / "feeds" / "wire.xml").write_text(WIRE_HEAD + body + "  </channel>\n</rss>\n", encoding="utf-8")


def config_text(base_url: str, inbox: str, dead: str) -> str:
    feeds = [("Caspian Ledger (en)", "/feeds/en.xml"), ("Caspian Ledger (ru)", "/feeds/ru.xml"),
             ("Broken feed (on purpose)", "/feeds/broken.xml"), ("Caspian Wire", "/feeds/wire.xml")]
    listed = "".join(f'\n[[feeds]]\nname = "{name}"\nurl = "{base_url}{path}"\n' for name, path in feeds)
    return f"""[warehouse]
path = "demo.duckdb"

[http]
allow_private_networks = true
per_host_delay_s = 0.02
jitter_s = 0

[alerts]
urls = ["{inbox}", "{dead}"]
retry_minutes = 0
max_attempts = 2

[extraction]
keep_raw_pages = true
{listed}"""


def write_expected(db: Path, out: Path) -> None:
    """What the migration test compares against: row counts of every table and view, article ids, alert
    statuses and feed validators, as DuckDB 2.x reads them from the file."""
    con = duckdb.connect(str(db), read_only=True)
    objects = con.execute("SELECT table_name, table_type FROM information_schema.tables "
                          "WHERE table_schema = 'main' ORDER BY table_name").fetchall()

    def count(name: str) -> int:
        return int(con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])

    expected = {
        "made_by": f"newsmon 233ec0d (schema 5), duckdb {duckdb.__version__}; see README.md",
        "schema_version": int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]),
        "tables": {n: count(n) for n, kind in objects if kind == "BASE TABLE"},
        "views": {n: count(n) for n, kind in objects if kind == "VIEW"},
        "article_ids": [r[0] for r in con.execute("SELECT article_id FROM articles ORDER BY 1").fetchall()],
        "alerts": dict(con.execute("SELECT alert_id, status FROM alerts ORDER BY 1").fetchall()),
        "feeds": {u: {"etag": e, "last_modified": m} for u, e, m in
                  con.execute("SELECT feed_url, etag, last_modified FROM feeds ORDER BY 1").fetchall()},
    }
    con.close()
    out.write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(out_dir: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="newsmon-v5-fixture-") as tmp:
        return make(Path(tmp), out_dir)


def make(work: Path, out_dir: Path) -> int:
    site = work / "site"
    shutil.copytree(demo_site_root(), site)
    write_wire(site, RUN1_WIRE)
    db = work / "demo.duckdb"
    with SiteServer(site) as server, WebhookReceiver(log_path=work / "alerts.jsonl") as inbox, \
            WebhookReceiver(fail_first=10**6) as dead:
        config = work / "newsmon.toml"
        config.write_text(config_text(server.base_url, inbox.apprise_url(), dead.apprise_url("down")),
                          encoding="utf-8")
        print("run 1:", run_once(config))
        with duckdb.connect(str(db)) as con:
            con.execute("UPDATE feeds SET next_poll_at = now() - INTERVAL 1 MINUTE")
        en = site / "feeds" / "en.xml"
        en.write_text(en.read_text(encoding="utf-8").replace(
            "Baku Jazz Festival", "Baku Jazz Festival (updated)", 1), encoding="utf-8")
        (site / "articles" / "azerbaijan-russia-north-south-corridor.html").write_text(NEW_STORY, encoding="utf-8")
        write_wire(site, RUN2_WIRE)
        print("run 2:", run_once(config))
        print(f"inbox received {len(inbox.received)}, dead channel refused {dead.attempts}")
    with duckdb.connect(str(db)) as con:
        con.execute("FORCE CHECKPOINT")
        con.execute("VACUUM")
    # The run's file keeps the free blocks of every rewrite (about 11 MiB), and even a fresh copy takes two
    # 256 KiB blocks per table (6.5 MiB). A copy into a file with 16 KiB blocks holds the same tables,
    # constraints, views and rows, in the same order, in about 0.6 MB (checked when the fixture was made).
    target = out_dir / "v5-demo.duckdb"
    target.unlink(missing_ok=True)
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
        con.execute(f"ATTACH '{target}' AS dst (BLOCK_SIZE 16384)")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
    with duckdb.connect(str(target)) as con:
        con.execute("FORCE CHECKPOINT")
        con.execute("VACUUM")
    write_expected(target, out_dir / "v5-demo.expected.json")
    print(f"wrote {target} ({target.stat().st_size} bytes) and v5-demo.expected.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else HERE)))
