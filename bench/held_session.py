"""Held sessions: scheduled runs while analysts keep DuckDB sessions open on the warehouse, and without them.

    python -m bench.held_session [--runs 3] [--feeds 5] [--items 5] [--latency 0.05] [--dir DIR]

A local news site (bench/site.py) and a webhook receiver; the `poll-feeds` flow is called in this process as a
scheduled run calls it (Prefect's temporary server started by a warm-up run first). Two phases, each on its
own warehouse, each starting with one run that stores the feeds' current items:

- held: two other processes open a DuckDB session on the warehouse with the SQL `newsmon sql --attach` prints
  (`warehouse.attach.analyst_sql`, run in a fresh `duckdb.connect()`): one inside an open transaction, one
  read-only and outside any transaction. They stay open through the phase.
- undisturbed: nobody else has the warehouse open.

Before each of `--runs` runs a new matching story appears on one feed. For each run: its wall time, the
stories it stored and the alerts it sent (and whether the new story's alert reached the receiver), and what
each held session's next query sees (count of articles and of matches) next to what the lake holds; after the
last run the transaction holder ends its transaction and queries once more.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cycle import ROOT, bench_env, write_config
from bench.freshness import publish
from newsmon.config import WarehouseSettings, load_settings
from newsmon.demo.receiver import WebhookReceiver

RELEASE = "this release (state DB + DuckLake)"

# A held session: attach, (optionally) open a transaction, answer "q" with what its next query sees; "end"
# ends its transaction first. Counts are articles and matching stories.
HOLDER = r"""
import duckdb, json, sys, time
sql, mode = open(sys.argv[1]).read(), sys.argv[2]
con = duckdb.connect()
for stmt in sql.split(";\n"):
    if stmt.strip():
        con.execute(stmt)
def answer():
    t = time.perf_counter()
    a = con.execute("SELECT count(*) FROM articles").fetchone()[0]
    m = con.execute("SELECT count(*) FROM matches").fetchone()[0]
    print(json.dumps({"articles": a, "matches": m, "query_s": round(time.perf_counter() - t, 3)}), flush=True)
if mode == "tx":
    con.execute("BEGIN TRANSACTION")
answer()
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit":
        break
    if cmd == "end" and mode == "tx":
        con.execute("COMMIT")
    answer()
"""


# --- this release: how an analyst attaches, and what the lake holds ------------------------------------------


def holder_sql(settings: WarehouseSettings) -> str:
    from warehouse import location
    from warehouse.attach import analyst_sql

    return analyst_sql(location(settings))


def lake_counts(settings: WarehouseSettings) -> tuple[int, int]:
    """(articles, matches) in a fresh read-only session."""
    from warehouse import open_reader

    reader = open_reader(settings)
    try:
        return (reader.query("SELECT count(*) FROM articles")[1][0][0],
                reader.query("SELECT count(*) FROM matches")[1][0][0])
    finally:
        reader.close()


# --- the phases (the same for every release) -----------------------------------------------------------------


class Holder:
    def __init__(self, sql_file: Path, mode: str) -> None:
        self.mode = mode
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(sql_file), mode], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=bench_env())
        self.first = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench: the {self.mode} session ended: {self.proc.wait()}")
        got: dict[str, Any] = json.loads(line)
        return got

    def ask(self, cmd: str = "q") -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def story_alerted(received: list[dict[str, Any]], title: str) -> bool:
    n = re.search(r"\(story (\d+)\)", title)
    return any(n and f"(story {n.group(1)})" in str(p.get("title", "")) + str(p.get("message", "")) for p in received)


def phase(name: str, held: bool, config: Path, feeds: int, port: int, runs: int, rx: WebhookReceiver,
          work: Path) -> list[dict[str, Any]]:
    from flows.poll import poll_feeds

    settings = load_settings(config).warehouse
    poll_feeds(config=str(config))  # the feeds' current items, stored before anyone holds a session
    expected = list(lake_counts(settings))  # what the lake holds, plus each run's stored stories and matches
    holders: list[Holder] = []
    if held:
        sql_file = work / f"{name}-attach.sql"
        sql_file.write_text(holder_sql(settings), encoding="utf-8")
        holders = [Holder(sql_file, "tx"), Holder(sql_file, "ro")]
    rows = []
    try:
        for k in range(runs):
            story = publish(port, (k * 3 + 1) % feeds)
            seen = len(rx.received)
            t0 = time.perf_counter()
            summary = poll_feeds(config=str(config))
            wall = time.perf_counter() - t0
            time.sleep(0.2)  # the receiver's last posts
            lake = lake_counts(settings)
            expected[0] += summary.get("new_articles", 0)
            expected[1] += len(summary.get("matches", []))
            row = {"phase": name, "run": k + 1, "wall_s": wall, "new": summary.get("new_articles", 0),
                   "matches": len(summary.get("matches", [])), "alerts_sent": summary.get("alerts_sent", 0),
                   "expected": tuple(expected),
                   "story_alerted": story_alerted(rx.received[seen:], story["title"]),
                   "storage": summary.get("storage", ""), "lake": lake,
                   "store_s": summary.get("seconds", {}).get("store"),
                   "received": [str(m.get("title", ""))[:90] for m in rx.received[seen:]]}
            for h in holders:
                got = h.ask()
                row[h.mode] = got
            rows.append(row)
            print(f"  {name} run {k + 1}: {wall:.2f} s, {row['new']} new, {row['alerts_sent']} alerts sent, "
                  f"lake {lake}, sessions {[row.get(h.mode) for h in holders]}", file=sys.stderr, flush=True)
        for h in holders:
            if h.mode == "tx":
                rows[-1]["tx_after_end"] = h.ask("end")
    finally:
        for h in holders:
            h.close()
    return rows


def _saw(got: dict[str, Any] | tuple[int, int] | None, expected: tuple[int, int]) -> str:
    """Whether a session's counts include every story the runs so far stored (and their matches)."""
    if got is None:
        return "-"
    counts = (got["articles"], got["matches"]) if isinstance(got, dict) else tuple(got)
    mark = "yes" if counts[0] >= expected[0] and counts[1] >= expected[1] else "no"
    took = f"; {got['query_s']:.3f} s" if isinstance(got, dict) else ""
    return f"{mark} ({counts[0]} articles, {counts[1]} matches{took})"


def print_report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\n## Held sessions: {RELEASE}; {args.feeds} feeds x {args.items} items, {args.latency * 1000:.0f} ms "
          f"per request, a new matching story before each run\n")
    print("| phase | run | wall s | store s | stored | matches | alerts sent | its story alerted | a fresh session "
          "sees the run's rows | open-transaction session's next query does | read-only session's next query does |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|")
    for r in rows:
        store = "-" if r["store_s"] is None else f"{r['store_s']:.2f}"
        exp = tuple(r["expected"])
        print(f"| {r['phase']} | {r['run']} | {r['wall_s']:.2f} | {store} | {r['new']} | {r['matches']} | "
              f"{r['alerts_sent']} | {'yes' if r['story_alerted'] else 'no'} | {_saw(tuple(r['lake']), exp)} | "
              f"{_saw(r.get('tx'), exp)} | {_saw(r.get('ro'), exp)} |")
    for r in rows:
        if "tx_after_end" in r:
            print(f"\nthe open-transaction session, after ending its transaction: "
                  f"{_saw(r['tx_after_end'], tuple(r['expected']))}")
    for name in dict.fromkeys(r["phase"] for r in rows):
        walls = [r["wall_s"] for r in rows if r["phase"] == name]
        alerted = sum(r["story_alerted"] for r in rows if r["phase"] == name)
        print(f"{name}: runs {', '.join(f'{w:.2f}' for w in walls)} s (max {max(walls):.2f}), "
              f"{alerted}/{len(walls)} new stories alerted during their run")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.held_session", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--feeds", type=int, default=5)
    p.add_argument("--items", type=int, default=5)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--dir", type=Path, help="work folder (default: a temporary one, removed)")
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    args = p.parse_args(argv)
    os.environ.update({k: v for k, v in bench_env().items() if k.startswith("PREFECT")})
    os.environ.pop("PREFECT_API_URL", None)
    from newsmon.cli import prefect_env

    prefect_env(verbose=False)
    from flows.poll import poll_feeds

    work = args.dir or Path(tempfile.mkdtemp(prefix="newsmon-held-"))
    work.mkdir(parents=True, exist_ok=True)
    site = subprocess.Popen([sys.executable, "-m", "bench.site", "--feeds", str(args.feeds), "--items",
                             str(args.items), "--latency", str(args.latency), "--outlets", str(min(args.feeds, 5))],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=bench_env())
    try:
        info = json.loads(site.stdout.readline())  # type: ignore[union-attr]
        feeds, port = info["feeds"], info["port"]
        with WebhookReceiver() as rx:
            warm = write_config(work / "warmup.toml", feeds[:1], work / "warmup.duckdb", rx.apprise_url())
            t0 = time.perf_counter()
            poll_feeds(config=str(warm))  # starts Prefect's temporary server
            print(f"  warm-up run: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            rows = []
            for name, held in (("held", True), ("undisturbed", False)):
                config = write_config(work / f"{name}.toml", feeds, work / f"{name}.duckdb", rx.apprise_url())
                rows += phase(name, held, config, len(feeds), port, args.runs, rx, work)
    finally:
        site.stdin.close()  # type: ignore[union-attr]
        site.wait()
    print_report(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
