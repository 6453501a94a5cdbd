"""Warehouse stores: the cost of a 1,000-story run into a small vs a large warehouse, bytes per story, memory.

    python -m bench.warehouse [--sizes 10000,1000000] [--runs 5] [--size-stories 20000] [--dir /tmp/newsmon-bench]

A warehouse is the pipeline's state database (SQLite) plus the DuckLake analysts query (a SQLite catalog and a
folder of Parquet files). Each size is built in place: the schema by `open_warehouse`, then `n` stories
written in bulk (DuckDB `INSERT ... SELECT` from `range(n)` into the lake, one commit: the shape of a lake
after upkeep merged its files; SQLite `INSERT ... SELECT` from a counting CTE into the state database, one
transaction), each story with its article, 3 tags, verdict, cluster (with a 128-hash signature in the state),
3 entry aliases, and per 1,000 stories a run row, a fetch-log row and 10 alerts.

Then, for each size, `--runs` runs of 1,000 new stories go through `open_warehouse(settings).runs.store_run(...)`
and `close()`, as a scheduled run does (a fresh process opens the warehouse per run): what is timed is open +
store + close, split into its steps (open; claim in the state DB; lake write by table, and its commit; finish).
One rerun of the same 1,000 stories under a new run id measures the dedup path, and `known_entries` for the
3,000 aliases of 1,000 stored stories the identity lookup every run makes before fetching pages. Peak memory
is the peak RSS of a fresh process that opens the warehouse and stores one run (imports and the built batch
before it are reported apart). Article text is real: the 181 article bodies of the extraction benchmark, each
story a rotation of one of them so that no two texts are equal; 10% of stories match, 1% raise an alert.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from newsmon.config import WarehouseSettings
from newsmon.records import (
    AlertRecord,
    Article,
    ClusterRecord,
    Evidence,
    FeedResult,
    FeedSpec,
    RunBatch,
    Verdict,
    stable_id,
)
from warehouse import lake as lake_module
from warehouse import location, open_warehouse
from warehouse import store as store_module
from warehouse.lake import connect
from warehouse.state import StateDB

TRUTH = Path("/work/shared/corpus/article-extraction-benchmark/ground-truth.json")
FEED = FeedSpec("Bench", "https://bench.example/rss")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RUN = 1000
SIGNATURE = 128  # MinHash hash values per cluster signature (newsmon.alerts.clusters.NUM_PERM)


# --- the run stored (the same batch for every release) ---------------------------------------------------


def texts() -> list[str]:
    return [v["articleBody"] for _, v in sorted(json.loads(TRUTH.read_text(encoding="utf-8")).items())]


def story_text(bodies: list[str], i: int) -> str:
    words = bodies[i % len(bodies)].split(" ")
    k = (i // len(bodies)) % max(len(words), 1)
    return " ".join(words[k:] + words[:k])


def story_aliases(i: int) -> list[str]:
    """An entry's identities, as feeds.identities makes them: GUID, normalised link, title+date fingerprint."""
    return [f"guid:https://bench.example/{i}", f"bench.example/{i}", f"fp:{stable_id('bench', str(i))}"]


def run_batch(run_id: str, first: int, bodies: list[str]) -> RunBatch:
    arts, verdicts, clusters, alerts, aliases = [], [], [], [], []
    for i in range(first, first + RUN):
        text = story_text(bodies, i)
        aid, cid, published = f"b{i:09d}", f"c{i:09d}", NOW - timedelta(minutes=i % 5000)
        arts.append(Article(aid, FEED.url, FEED.name, f"https://bench.example/{i}", f"https://bench.example/{i}",
                            text[:80], text[:300], text, NOW, language="en", published_at=published,
                            word_count=len(text.split()), content_hash=f"h{i}", cluster_id=cid))
        match = i % 10 == 0
        ev = (Evidence("az_ru", "Baku", "az", "body", 10, 14, text[:60], 2.0),)
        verdicts.append(Verdict(aid, "az_ru", "2026.1", match, 3.0, ("az_ru",) if match else (),
                                (("az_ru", 3.0), ("energy", 0.0), ("cooperation", 0.0)), ev))
        clusters.append(ClusterRecord(cid, aid, text[:80], published, NOW,
                                      tuple((i * 2654435761 + k * 40503) % 2**32 for k in range(SIGNATURE))))
        aliases += [(a, aid) for a in story_aliases(i)]
        if i % 100 == 0:
            alerts.append(AlertRecord(stable_id("alert", cid, "az_ru", "ch1"), aid, "az_ru", "ch1", "pending", 0,
                                      text[:80], f"https://bench.example/{i}", FEED.name, published, 3.0,
                                      ("az_ru",), ("Baku",), channel_name="json://127.0.0.1", cluster_id=cid))
    res = FeedResult(FEED, NOW, status=200, etag=f'"{run_id}"')
    return RunBatch(run_id, "bench", NOW, (res,), tuple(arts), tuple(verdicts), tuple(alerts),
                    clusters=tuple(clusters), aliases=tuple(aliases))


# --- bulk fill SQL: the lake's tables (DuckDB; `i` counts stories, {n} of them) -----------------------------

def lake_fill_sql(n: int, *, prefix: str = "x", feeds: int = 1, newest: str = "2026-11-01",
                  step_minutes: int = 60) -> list[str]:
    """Statements that add `n` stories to the lake's tables (or a single-file warehouse with the same
    columns), story i published `i * step_minutes` before `newest`, spread over `feeds` feeds."""
    at = f"(TIMESTAMPTZ '{newest}' - to_minutes(i * {step_minutes}))"
    aid, cid = f"'{prefix}' || lpad(i::VARCHAR, 9, '0')", f"'c{prefix}' || lpad(i::VARCHAR, 9, '0')"
    feed = f"'https://old.example/feed/' || (i % {feeds})"
    return [
        f"""INSERT INTO articles BY NAME SELECT {aid} AS article_id, 'https://old.example/' || i AS url,
            {feed} AS feed_url, 'old feed ' || (i % {feeds}) AS feed_name, 'https://old.example/' || i AS entry_key,
            'Old story ' || i AS title, 'summary of old story ' || i AS summary,
            repeat('word' || (i % 997) || ' ', 200) AS text, 'en' AS language, {at} AS published_at,
            {at} AS fetched_at, 200 AS word_count, 'ok' AS extraction_status, md5(i::VARCHAR) AS content_hash,
            'fill' || (i // 1000) AS run_id, {cid} AS cluster_id, {at} AS first_seen_at, 0 AS edits,
            'old.example/' || i AS url_key FROM range({n}) t(i)""",
        f"""INSERT INTO tags BY NAME SELECT {aid} AS article_id, 'az_ru' AS watchlist, l AS label,
            CASE WHEN l = 'az_ru' AND i % 10 = 0 THEN 3.0 ELSE 0.0 END AS score,
            l = 'az_ru' AND i % 10 = 0 AS passed, '2026.1' AS rules_version, [] AS evidence, {at} AS tagged_at
            FROM range({n}) t(i), unnest(['az_ru', 'energy', 'cooperation']) u(l)""",
        f"""INSERT INTO verdicts BY NAME SELECT {aid} AS article_id, 'az_ru' AS watchlist, '2026.1' AS rules_version,
            i % 10 = 0 AS match, CASE WHEN i % 10 = 0 THEN 3.0 ELSE 0.0 END AS score,
            CASE WHEN i % 10 = 0 THEN ['az_ru'] ELSE [] END AS tags, {at} AS tagged_at FROM range({n}) t(i)""",
        f"""INSERT INTO clusters BY NAME SELECT {cid} AS cluster_id, {aid} AS seed_article_id,
            'Old story ' || i AS title, {at} AS first_published_at, {at} AS created_at FROM range({n}) t(i)""",
        f"""INSERT INTO entry_aliases BY NAME SELECT a || i AS alias, {aid} AS article_id
            FROM range({n}) t(i), unnest(['guid:https://old.example/', 'old.example/', 'fp:old']) u(a)""",
        f"""INSERT INTO poll_runs BY NAME SELECT 'fill' || r AS run_id, 'bench' AS config,
            TIMESTAMPTZ '{newest}' - to_minutes(r * 1000 * {step_minutes}) AS started_at,
            TIMESTAMPTZ '{newest}' - to_minutes(r * 1000 * {step_minutes}) AS finished_at, {feeds} AS feeds_total,
            {feeds} AS feeds_ok, 0 AS feeds_not_modified, 0 AS feeds_failed, 1000 AS new_articles,
            100 AS matches, 10 AS alerts_queued FROM range({max(1, n // 1000)}) t(r)""",
        f"""INSERT INTO fetch_log BY NAME SELECT 'fill' || (i // {feeds}) AS run_id,
            TIMESTAMPTZ '{newest}' - to_minutes((i // {feeds}) * 1000 * {step_minutes}) AS logged_at,
            'feed' AS kind, {feed} AS feed_url, {feed} AS url, 200 AS status
            FROM range({max(1, n // 1000) * feeds}) t(i)""",
        f"""INSERT INTO alerts BY NAME SELECT 'al{prefix}' || i AS alert_id, {aid} AS article_id,
            'az_ru' AS watchlist, 'ch1' AS channel, 'json://127.0.0.1' AS channel_name, 'sent' AS status,
            1 AS attempts, {at} AS created_at, {at} AS last_attempt_at, {at} AS sent_at, 'story' AS kind,
            {cid} AS cluster_id FROM range(0, {n}, 100) t(i)""",
    ]


# --- this release: the state database + DuckLake -----------------------------------------------------------

RELEASE = "this release (state DB + DuckLake)"


def settings_for(path: Path) -> WarehouseSettings:
    return WarehouseSettings(path=path)


def _state_fill_sql(n: int, prefix: str, feeds: int, newest: datetime, step_minutes: int) -> list[str]:
    """The same stories in the state database, generated by SQLite itself (a counting CTE per table)."""
    count = f"WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < {n - 1})"
    at = (f"strftime('%Y-%m-%dT%H:%M:%S', '{newest:%Y-%m-%d %H:%M:%S}', '-' || (i * {step_minutes}) || ' minutes')"
          " || '.000000+00:00'")
    aid, cid = f"'{prefix}' || printf('%09d', i)", f"'c{prefix}' || printf('%09d', i)"
    run = "'fill' || (i / 1000)"
    return [
        f"""INSERT INTO stories {count} SELECT {aid}, {run}, 'https://old.example/feed/' || (i % {feeds}),
            'old feed ' || (i % {feeds}), 'Old story ' || i, 'summary of old story ' || i, 'old.example/' || i,
            'old.example/' || i, {cid}, {at} FROM r""",
        f"""INSERT INTO aliases {count}, a(p) AS (VALUES ('guid:https://old.example/'), ('old.example/'), ('fp:old'))
            SELECT p || i, {aid}, {run} FROM r, a""",
        f"""INSERT INTO clusters {count} SELECT {cid}, {aid}, 'Old story ' || i, {at}, {at},
            randomblob({4 * SIGNATURE}), {run} FROM r""",
        f"""INSERT INTO matched {count} SELECT {cid}, 'az_ru', {at}, 'Old story ' || i, {run} FROM r
            WHERE i % 10 = 0""",
        f"""INSERT INTO alerts (alert_id, kind, article_id, cluster_id, watchlist, channel, channel_name, status,
            attempts, created_at, sent_at, title, url, source, published_at, score, labels, evidence, snippets,
            run_id, synced) {count} SELECT 'al{prefix}' || i, 'story', {aid}, {cid}, 'az_ru', 'ch1',
            'json://127.0.0.1', 'sent', 1, {at}, {at}, 'Old story ' || i, 'https://old.example/' || i,
            'old feed 0', {at}, 3.0, '["az_ru"]', '["Baku"]', '[]', {run}, 1 FROM r WHERE i % 100 = 0""",
        f"""INSERT INTO runs {count} SELECT {run}, 'bench', {at}, {at}, {at}, 'stored', 'bench', 0 FROM r
            WHERE i % 1000 = 0""",
        f"""INSERT INTO feeds (feed_url, name, etag, last_status, consecutive_failures, last_polled_at,
            last_success_at, entries_seen, first_polled_at, run_id) {count}
            SELECT 'https://old.example/feed/' || i, 'old feed ' || i, '"e' || i || '"', 200, 0,
            '{newest:%Y-%m-%dT%H:%M:%S}.000000+00:00', '{newest:%Y-%m-%dT%H:%M:%S}.000000+00:00', 1000,
            '2020-01-01T00:00:00.000000+00:00', 'fill0' FROM r WHERE i < {feeds}""",
    ]


def fill(settings: WarehouseSettings, n: int, *, prefix: str = "x", feeds: int = 1,
         newest: datetime = datetime(2026, 11, 1, tzinfo=UTC), step_minutes: int = 60) -> dict[str, float]:
    """Add `n` stories to a warehouse in bulk: the lake in one commit, the state database in one transaction.
    Seconds taken by each."""
    open_warehouse(settings).close()  # schema (state and lake), as newsmon makes them
    t0 = time.perf_counter()
    con = connect(location(settings), read_only=False)
    con.execute("BEGIN TRANSACTION")
    for sql in lake_fill_sql(n, prefix=prefix, feeds=feeds, newest=f"{newest:%Y-%m-%d %H:%M:%S}+00",
                             step_minutes=step_minutes):
        con.execute(sql)
    con.execute("COMMIT")
    con.close()
    t1 = time.perf_counter()
    db = sqlite3.connect(settings.state_path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    for sql in _state_fill_sql(n, prefix, feeds, newest, step_minutes):
        db.execute(sql)
    db.execute("COMMIT")
    db.close()
    return {"lake_s": t1 - t0, "state_s": time.perf_counter() - t1}


def build(path: Path, n: int) -> dict[str, float]:
    shutil.rmtree(path.parent, ignore_errors=True)
    path.parent.mkdir(parents=True)
    return fill(settings_for(path), n)


class Steps:
    """Seconds spent in the warehouse's steps while a store runs (wrappers around its methods: bench-only)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = defaultdict(float)
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        wrap = self._wrap
        import warehouse as pkg

        wrap(StateDB, "__init__", "open: state DB")
        wrap(lake_module.Lake, "__init__", "open: lake attach+migrate")
        wrap(pkg, "migrate_if_needed", "open: legacy check")
        wrap(store_module.RunStore, "recover", "open: recover")
        wrap(store_module.RunStore, "_claim", "claim (state DB)")
        wrap(lake_module.Lake, "write", "lake write (total)")
        wrap(store_module.RunStore, "_write_run", "  lake rows (all statements)")
        wrap(store_module.RunStore, "_finish", "finish (state DB)")
        for name in ("insert", "replace_rows"):
            self._wrap_table(store_module, name)

    def _wrap(self, owner: Any, name: str, key: str) -> None:
        orig = getattr(owner, name)

        @functools.wraps(orig)
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                self.t[key] += time.perf_counter() - t0

        setattr(owner, name, timed)

    def _wrap_table(self, owner: Any, name: str) -> None:
        orig = getattr(owner, name)

        @functools.wraps(orig)
        def timed(con: Any, table: str, *a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return orig(con, table, *a, **k)
            finally:
                self.t[f"  lake {name} {table}"] += time.perf_counter() - t0

        setattr(owner, name, timed)

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        self.t.clear()
        out: dict[str, float] = {}
        yield out
        out.update(self.t)


STEPS = Steps()


def timed_store(path: Path, batch: RunBatch) -> dict[str, float]:
    """Open, store one run, close: what a scheduled run's store costs; seconds, total and by step."""
    STEPS.install()
    with STEPS.measure() as steps:
        c0, t0 = time.process_time(), time.perf_counter()
        wh = open_warehouse(settings_for(path))
        t1 = time.perf_counter()
        report = wh.runs.store_run(batch, finished_at=NOW)
        t2 = time.perf_counter()
        wh.close()
        t3, c3 = time.perf_counter(), time.process_time()
    assert report.articles + report.claimed_elsewhere == len(batch.articles)
    if "lake write (total)" in steps:  # the rest of the write: BEGIN, the writer's turn and the catalog commit
        steps["  lake commit"] = steps["lake write (total)"] - steps.get("  lake rows (all statements)", 0.0)
    return {"total": t3 - t0, "cpu": c3 - c0, "open": t1 - t0, "store_run": t2 - t1, "close": t3 - t2, **steps,
            "stored": report.articles}


def timed_lookup(path: Path, aliases: list[str]) -> float:
    wh = open_warehouse(settings_for(path))
    try:
        t0 = time.perf_counter()
        found = wh.runs.known_entries(aliases)
        took = time.perf_counter() - t0
    finally:
        wh.close()
    assert len(found) == len(aliases), (len(found), len(aliases))
    return took


def footprint(path: Path) -> dict[str, int]:
    """Bytes on disk: catalog, data folder, state DB (each with its -wal/-shm files, if any), data files."""
    s = settings_for(path)

    def with_journal(p: Path) -> int:
        return sum(q.stat().st_size for q in (p, Path(f"{p}-wal"), Path(f"{p}-shm")) if q.exists())

    data = [f for f in s.data_folder.rglob("*") if f.is_file()]
    return {"catalog": with_journal(Path(s.catalog_target)), "data": sum(f.stat().st_size for f in data),
            "state": with_journal(s.state_path), "files": len(data)}


def tidy(path: Path) -> str:
    """Upkeep as `newsmon` schedules it (inlined rows flushed, files merged, old snapshots expired)."""
    wh = open_warehouse(settings_for(path))
    try:
        done = wh.upkeep(now=datetime.now(UTC) + timedelta(days=8))
    finally:
        wh.close()
    return f"upkeep: {done.files_before} -> {done.files_after} data files, {done.snapshots_expired} snapshots expired"


def raw_text_bytes(path: Path) -> float:
    wh = open_warehouse(settings_for(path))
    try:
        row = wh.lake.read("SELECT avg(strlen(text) + strlen(summary) + strlen(title)) FROM articles")
    finally:
        wh.close()
    return float(row[0][0] or 0)


# --- measurement (the same for every release) ---------------------------------------------------------------


def probe_memory(path: Path, first: int) -> dict[str, float]:
    """In a fresh process: RSS before the store (imports, the built batch), and its peak during open + store +
    close."""
    module = __spec__.name if __spec__ else "bench.warehouse"
    out = subprocess.run([sys.executable, "-m", module, "--probe", str(path), str(first)], check=True,
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    got: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return got


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _probe(path: Path, first: int) -> None:
    batch = run_batch(f"probe{first}", first, texts())
    before = _status_mb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) restarts from the current RSS
    except OSError:
        pass
    t = timed_store(path, batch)
    print(json.dumps({"before_mb": before, "peak_mb": _status_mb("VmHWM"), "store_s": t["total"]}))


def measure(root: Path, n: int, runs: int, bodies: list[str]) -> dict[str, Any]:
    path = root / f"w{n}" / "newsmon.duckdb"
    t0 = time.perf_counter()
    built = build(path, n)
    built["build_s"] = time.perf_counter() - t0
    print(f"  built {n:,} stories in {built['build_s']:.1f} s ({built})", file=sys.stderr, flush=True)
    times = []
    for k in range(runs):
        times.append(timed_store(path, run_batch(f"r{k}", k * RUN, bodies)))
        print(f"  {n:,}: run {k}: {times[-1]['total']:.3f} s", file=sys.stderr, flush=True)
    reruns = [timed_store(path, run_batch(f"r0-again{k}", 0, bodies))["total"] for k in range(3)]  # all known
    aliases = [a for i in range(RUN) for a in story_aliases(i)]
    lookups = [timed_lookup(path, aliases) for _ in range(3)]
    memory = [probe_memory(path, (runs + k) * RUN) for k in range(2)]
    totals = [t["total"] for t in times]
    return {"size": n, **built, "store_median_s": statistics.median(totals), "store_min_s": min(totals),
            "store_cpu_median_s": statistics.median(t["cpu"] for t in times),
            "store_runs": times, "rerun_s": statistics.median(reruns), "rerun_min_s": min(reruns),
            "lookup_s": statistics.median(lookups), "lookup_min_s": min(lookups),
            "peak_rss_mb": min(m["peak_mb"] for m in memory),
            "rss_before_store_mb": min(m["before_mb"] for m in memory)}


def bytes_per_story(root: Path, bodies: list[str], stories: int) -> dict[str, Any]:
    """Bytes on disk per stored story, as stored by `stories / 1,000` runs and after upkeep; raw text bytes."""
    path = root / "size" / "newsmon.duckdb"
    shutil.rmtree(path.parent, ignore_errors=True)
    path.parent.mkdir(parents=True)
    for k in range(stories // RUN):
        timed_store(path, run_batch(f"s{k}", k * RUN, bodies))
    stored = footprint(path)
    note = tidy(path)
    return {"stories": stories, "stored": stored, "after_upkeep": footprint(path), "upkeep": note,
            "raw_text": raw_text_bytes(path)}


def print_report(results: list[dict[str, Any]], size: dict[str, Any]) -> None:
    print(f"\n## Warehouse: {RELEASE}, 1,000-story runs (open + store_run + close)\n")
    print(f"{'warehouse':>10} {'build s':>8} {'store 1k median s':>18} {'min s':>7} {'CPU s':>6} {'stories/s':>10} "
          f"{'rerun s':>8} {'lookup 1k s':>11} {'peak RSS MB':>11}")
    for r in results:
        print(f"{r['size']:>10,} {r['build_s']:>8.1f} {r['store_median_s']:>18.3f} {r['store_min_s']:>7.3f} "
              f"{r['store_cpu_median_s']:>6.3f} {RUN / r['store_median_s']:>10,.0f} {r['rerun_s']:>8.3f} "
              f"{r['lookup_s']:>11.4f} {r['peak_rss_mb']:>11.0f}")
    for r in results:
        keys = [k for k in r["store_runs"][0] if k not in ("total", "cpu", "stored")]
        split = ",  ".join(f"{k.strip()} {min(t[k] for t in r['store_runs']):.3f}" for k in keys)
        print(f"  {r['size']:,}: store split, min over runs (s): {split}")
        print(f"  {r['size']:,}: peak RSS of a fresh process storing one run: {r['peak_rss_mb']:.0f} MB "
              f"({r['rss_before_store_mb']:.0f} MB before the store: imports and the built batch)")
    if len(results) >= 2:
        small, big = results[0], results[-1]
        both = (big["lookup_s"] + big["store_median_s"]) / (small["lookup_s"] + small["store_median_s"])
        print(f"ratio {big['size']:,} / {small['size']:,}: store {big['store_median_s'] / small['store_median_s']:.2f}"
              f" (min {big['store_min_s'] / small['store_min_s']:.2f}), rerun {big['rerun_s'] / small['rerun_s']:.2f}"
              f", lookup {big['lookup_s'] / small['lookup_s']:.2f}, lookup + store {both:.2f}")
    n, raw = size["stories"], size["raw_text"]
    for label in ("stored", "after_upkeep"):
        fp = size[label]
        total = fp["catalog"] + fp["data"] + fp["state"]
        print(f"bytes per stored story ({label.replace('_', ' ')}): {total / n:,.0f} on disk "
              f"(catalog {fp['catalog'] / n:,.0f} + data {fp['data'] / n:,.0f} + state {fp['state'] / n:,.0f}; "
              f"{fp['files']} data files) for {raw:,.0f} bytes of title+summary+text ({total / n / raw:.2f}x; "
              f"{n:,} stories)")
    print(size["upkeep"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-stories", type=int, default=20000, help="stories stored to measure bytes/story")
    ap.add_argument("--dir", default="/tmp/newsmon-bench")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the warehouses built under --dir")
    ap.add_argument("--probe", nargs=2, metavar=("PATH", "FIRST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        _probe(Path(args.probe[0]), int(args.probe[1]))
        return
    root, bodies = Path(args.dir), texts()
    results = [measure(root, int(n), args.runs, bodies) for n in args.sizes.split(",")]
    size = bytes_per_story(root, bodies, args.size_stories)
    print_report(results, size)
    if args.json:
        args.json.write_text(json.dumps({"release": RELEASE, "sizes": results, "bytes": size}, indent=1))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
