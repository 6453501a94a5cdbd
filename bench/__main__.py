"""End-to-end bench: newsmon's cycle vs a naive pipeline and the extraction bound, on a local news site.

    python -m bench            # 200 feeds x 25 items, 150 ms per request (the naive pipeline alone takes ~15 min)
    python -m bench --quick    # 40 feeds x 10 items: a few minutes

Prints a table and ends with one line `bench: speedup_vs_naive=... freshness_median_s=...`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bound import extraction_bound
from bench.cycle import ROOT, copy_warehouse, prefill, run_cold, run_warm, write_config
from bench.freshness import run_freshness
from bench.procs import TreeMonitor
from bench.site import SiteSpec, build_site, corpus_pages, find_corpus
from newsmon.demo.receiver import WebhookReceiver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="40 feeds x 10 items, a short freshness window")
    p.add_argument("--feeds", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--latency", type=float, default=0.15, help="seconds the site waits per request")
    p.add_argument("--outlets", type=int, help="distinct hosts the feeds are spread over (default feeds/5)")
    p.add_argument("--scale", type=int, nargs=2, default=(10_000, 1_000_000), metavar=("SMALL", "LARGE"))
    p.add_argument("--stories", type=int, help="stories published during the freshness window")
    p.add_argument("--window", type=float, help="seconds over which they are published")
    p.add_argument("--skip", nargs="*", default=[], choices=["naive", "freshness", "scale"])
    p.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    a = p.parse_args(argv)
    a.feeds = a.feeds or (40 if a.quick else 200)
    a.items = a.items or (10 if a.quick else 25)
    a.outlets = a.outlets or max(1, a.feeds // 5)
    a.stories = a.stories or (3 if a.quick else 8)
    a.window = a.window or (90.0 if a.quick else 360.0)
    return a


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.a, self.work = args, work
        self.rows: list[dict[str, Any]] = []
        self.figures: dict[str, Any] = {}

    def row(self, name: str, wall: float | None, cpu: float | None = None, pss: float | None = None,
            rss: float | None = None, note: str = "", server: float | None = None) -> None:
        self.rows.append({"phase": name, "wall_s": wall, "cpu_s": cpu, "pss_mb": pss, "server_mb": server,
                          "rss_mb": rss, "load": load(), "note": note})
        print(f"  {name}: {wall if wall is None else round(wall, 2)} s  {note}", file=sys.stderr, flush=True)

    def rows_by(self, prefix: str) -> float | None:
        return next((r["cpu_s"] for r in self.rows if r["phase"].startswith(prefix)), None)

    def run(self) -> None:
        a = self.a
        spec = SiteSpec(a.feeds, a.items, a.latency, a.outlets)
        site = subprocess.Popen([sys.executable, "-m", "bench.site", "--feeds", str(a.feeds), "--items",
                                 str(a.items), "--latency", str(a.latency), "--outlets", str(a.outlets)],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        info = json.loads(site.stdout.readline())  # type: ignore[union-attr]
        pages = build_site(spec, corpus_pages(find_corpus()), info["port"], datetime.now(UTC))
        bodies = [pages.pages[u.split(f":{info['port']}", 1)[1]] for u in pages.article_urls()]
        print(f"bench: site on 127.0.0.1-{a.outlets} port {info['port']}: {a.feeds} feeds x {a.items} items, "
              f"{len(bodies)} pages ({sum(map(len, bodies)) / 1e6:.0f} MB), {a.latency * 1000:.0f} ms/request",
              file=sys.stderr, flush=True)
        try:
            with WebhookReceiver() as rx:
                self.cycles(info["feeds"], rx, bodies)
                if "naive" not in a.skip:
                    self.naive(info["feeds"])
                if "freshness" not in a.skip:
                    self.freshness(info["feeds"], info["port"], rx)
        finally:
            site.stdin.close()  # type: ignore[union-attr]
            site.wait()

    def bound(self, bodies: list[bytes], before: str) -> dict[str, Any]:
        """The extraction bound, measured right before the cycle it is compared with: this VM's speed drifts by
        10% within minutes, and a bound measured a quarter of an hour away compares two different machines."""
        b = extraction_bound(bodies)
        self.row(f"extraction bound (trafilatura, all cores), before the {before} cycle", b["wall_s"], b["cpu_s"],
                 note=f"{b['pages']} pages, {b['workers']} workers, warm pool")
        return b

    def cycles(self, feeds: list[str], rx: WebhookReceiver, bodies: list[bytes]) -> None:
        w, url = self.work, rx.apprise_url()
        self.figures["bound_cold"] = self.bound(bodies, "cold")
        cold = run_cold(write_config(w / "cold.toml", feeds, w / "cold.duckdb", url))
        self.row("newsmon cold (newsmon run, fresh process)", cold["wall_s"], cold["cpu_s"], cold["own_pss_mb"],
                 cold["peak_rss_mb"], _counts(cold["summary"]), cold["server_pss_mb"])
        configs = [write_config(w / "warmup.toml", feeds[:1], w / "warmup.duckdb", url),
                   write_config(w / "warm.toml", feeds, w / "warm.duckdb", url), w / "warm.toml"]
        if "scale" not in self.a.skip:
            for n in self.a.scale:
                took = prefill(w / f"scale{n}.duckdb", n)
                self.row(f"prefill {n:,} articles (SQL)", took)
                configs.append(write_config(w / f"scale{n}.toml", feeds, w / f"scale{n}.duckdb", url))
        self.figures["bound"] = self.bound(bodies, "warm")
        warm = run_warm(configs)
        names = ["warm-up flow (1 feed)", "newsmon warm (2nd flow call, server up)",
                 "unchanged re-poll (all 304)"] + [f"cycle into {n:,}-article warehouse" for n in self.a.scale]
        for name, r in zip(names, warm, strict=False):
            cpu = sum(r["summary"].get("cpu_seconds", {}).values())
            self.row(name, r["wall_s"], cpu, r["own_pss_mb"], r["peak_rss_mb"], _counts(r["summary"]),
                     r["server_pss_mb"])
        self.figures.update(cold=cold, warm=warm[1], repoll=warm[2], scale=warm[3:])

    def naive(self, feeds: list[str]) -> None:
        db = self.work / "naive.duckdb"
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bench.naive", str(db), *feeds], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, text=True)
        mon = TreeMonitor(proc.pid).start()
        out, _ = proc.communicate()
        mon.stop()
        r = json.loads(out)
        self.row("naive (feedparser + urllib + trafilatura + row inserts)", time.perf_counter() - start,
                 mon.samples[-1].cpu_s if mon.samples else None, mon.peak_pss_mb(), mon.peak_rss_mb(),
                 f"{r['new_articles']} new, {r['failed_pages']} failed")
        self.figures["naive"] = r | {"wall_s": time.perf_counter() - start}

    def freshness(self, feeds: list[str], port: int, rx: WebhookReceiver) -> None:
        w = self.work
        copy_warehouse(w / "warm.duckdb", w / "fresh.duckdb")
        config = write_config(w / "fresh.toml", feeds, w / "fresh.duckdb", rx.apprise_url(), interval_minutes=1)
        f = run_freshness(config, port, len(feeds), rx, stories=self.a.stories, window_s=self.a.window)
        self.row("freshness: newsmon serve + prefect server, 1-min interval", None, None, f["peak_pss_mb"],
                 f["peak_rss_mb"], f"{f['alerted']}/{f['stories']} stories alerted, median {_r(f['median_s'])} s, "
                 f"worst {_r(f['worst_s'])} s, {f['runs']} runs; between runs serve used {f['idle_cpu_pct']:.1f}% "
                 f"of a core, the prefect server {f['server_cpu_pct']:.1f}% ({f['server_pss_mb']:.0f} MB)")
        self.figures["freshness"] = f


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _counts(s: dict[str, Any]) -> str:
    return (f"{s.get('new_articles', 0)} new, {s.get('feeds_not_modified', 0)} not modified, "
            f"{len(s.get('matches', []))} matches, {s.get('alerts_sent', 0)} alerts")


def print_report(b: Bench) -> None:
    f, a = b.figures, b.a
    print(f"\n## End to end: {a.feeds} feeds x {a.items} items, {a.latency * 1000:.0f} ms per request, "
          f"{a.outlets} hosts, {os.cpu_count()} cores\n")
    print("| phase | wall s | CPU s | peak PSS MB (newsmon) | Prefect server PSS MB | largest RSS MB | load 1/5/15 "
          "| notes |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in b.rows:
        cells = [_fmt(r[k]) for k in ("wall_s", "cpu_s", "pss_mb", "server_mb", "rss_mb")]
        print(f"| {r['phase']} | " + " | ".join(cells) + f" | {r['load']} | {r['note']} |")
    for key in ("cold", "warm"):
        s = f[key]["summary"]
        print(f"\n{key} cycle by stage (wall s / CPU s of the whole process tree):  " + ",  ".join(
            f"{k} {v:.2f}/{s.get('cpu_seconds', {}).get(k, 0):.2f}" for k, v in s["seconds"].items()))
        overhead = f[key]["wall_s"] - sum(s["seconds"].values())
        print(f"{key} overhead outside the stages (process start, imports, Prefect): {overhead:.2f} s")
    pages = f["bound"]["pages"]
    cpu = {"naive": b.rows_by("naive"), "newsmon warm": sum(f["warm"]["summary"].get("cpu_seconds", {}).values()),
           "newsmon cold": f["cold"]["cpu_s"], "bound (before warm)": f["bound"]["cpu_s"],
           "bound (before cold)": f["bound_cold"]["cpu_s"]}
    print("\nCPU ms per page (insensitive to other load on the machine): " + ",  ".join(
        f"{k} {1000 * v / pages:.0f}" for k, v in cpu.items() if v))
    print()
    print(bench_line(f))


def bench_line(f: dict[str, Any]) -> str:
    warm = f["warm"]["wall_s"]
    speedup = f["naive"]["wall_s"] / warm if "naive" in f else None
    scale = f["scale"][1]["wall_s"] / f["scale"][0]["wall_s"] if len(f.get("scale", [])) == 2 else None
    peak = max(f["cold"]["own_pss_mb"], f["warm"]["own_pss_mb"])  # newsmon's processes, Prefect's server apart
    fresh = f.get("freshness", {}).get("median_s")
    cold = f["bound_cold"]["wall_s"] / f["cold"]["wall_s"]
    return (f"bench: speedup_vs_naive={_fmt(speedup)} efficiency_vs_bound={f['bound']['wall_s'] / warm:.2f} "
            f"efficiency_cold={cold:.2f} "
            f"repoll_s={f['repoll']['wall_s']:.2f} scale_ratio_1m_10k={_fmt(scale)} peak_rss_mb={peak:.0f} "
            f"freshness_median_s={_fmt(fresh)}")


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="newsmon-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(args, work)
    b.run()
    print_report(b)
    (work / "figures.json").write_text(json.dumps({"rows": b.rows, "figures": b.figures}, default=str, indent=1))
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
