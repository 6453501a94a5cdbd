"""Growth bench (issue 19): wall, CPU and peak memory of a run against new articles per run and against feeds,
with the fitted growth exponent, and cold `newsmon run` with and without a running Prefect server.

    python -m bench.growth --dir /tmp/growth        # 200 feeds x 25 items; feeds 20 / 200 / 2,000 x 2 items
    python -m bench.growth --quick                  # small sizes: a smoke test of a few minutes

Each warm figure is one flow call in a worker process whose Prefect server is up (its first call, one feed, is
the warm-up). Peak PSS is newsmon's processes, Prefect's server apart. Figures JSON: DIR/growth.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.cycle import ROOT, bench_env, remove_warehouse, run_cold, run_warm, write_config
from newsmon.config import WarehouseSettings
from newsmon.demo.receiver import WebhookReceiver

MEASURES = ("wall_s", "cpu_s", "pss_mb")


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """b of the least-squares fit log(y) = a + b log(x) over the points with x, y > 0 (None below 2 distinct x).
    b <= 1: the measure grows linearly or better."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


@contextmanager
def site(feeds: int, items: int, latency: float, outlets: int) -> Iterator[dict[str, Any]]:
    """bench.site in a subprocess while the block runs: {"port", "feeds": [urls]}."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.site", "--feeds", str(feeds), "--items", str(items),
                             "--latency", str(latency), "--outlets", str(outlets)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()


def publish(port: int, feeds: int, k: int, offset: int) -> None:
    """k new stories on feeds offset, offset+1, ... (mod feeds): spread over the feeds."""
    for j in range(k):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/_bench/publish?feed={(offset + j) % feeds}",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()


def warm_series(work: Path, name: str, info: dict[str, Any], alert_url: str,
                steps: Sequence[int]) -> list[dict[str, Any]]:
    """One warm worker on the site `info`: the warm-up (1 feed), then one flow call per step on one warehouse,
    each after publishing `step` new stories (0: none). One result per step, the warm-up dropped."""
    feeds = info["feeds"]
    fresh(work, f"{name}-warmup", name)
    warmup = write_config(work / f"{name}-warmup.toml", feeds[:1], work / f"{name}-warmup.duckdb", alert_url)
    main = write_config(work / f"{name}.toml", feeds, work / f"{name}.duckdb", alert_url)
    args = ["--worker", str(info["port"]), str(len(feeds)), f"0:{warmup}", *(f"{k}:{main}" for k in steps)]
    out = run_warm(args, module="bench.growth")[1:]
    for k, r in zip(steps, out, strict=True):
        s = r["summary"]
        r.update(published=k, cpu_s=sum(s.get("cpu_seconds", {}).values()), pss_mb=r["own_pss_mb"],
                 new=s.get("new_articles", 0), not_modified=s.get("feeds_not_modified", 0))
    return out


def fresh(work: Path, *names: str) -> None:
    """No warehouse left by an earlier run in a kept --dir: each series starts empty."""
    for n in names:
        remove_warehouse(WarehouseSettings(path=work / f"{n}.duckdb"))


def _worker(port: int, feeds: int, steps: list[str]) -> None:
    from newsmon.cli import prefect_env

    prefect_env(verbose=False)
    from flows.ephemeral import run_api
    from flows.poll import poll_feeds

    offset = 0
    for step in steps:
        k, _, config = step.partition(":")
        publish(port, feeds, int(k), offset)
        offset += int(k)
        start, t0 = time.time(), time.perf_counter()
        with run_api():  # as `newsmon run` calls the flow
            summary = poll_feeds(config=config)
        print(json.dumps({"config": config, "start": start, "wall_s": time.perf_counter() - t0,
                          "summary": summary}, default=str), flush=True)


class Growth:
    def __init__(self, a: argparse.Namespace, work: Path, alert_url: str) -> None:
        self.a, self.work, self.url = a, work, alert_url
        self.rows: list[dict[str, Any]] = []
        self.fits: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def row(self, axis: str, x: int, run: str, r: dict[str, Any], note: str = "") -> None:
        self.rows.append({"axis": axis, "x": x, "run": run, "note": note,
                          **{k: r.get(k) for k in (*MEASURES, "new", "not_modified")}})
        print(f"  {axis} {x} {run}: {r['wall_s']:.2f} s  {note}", file=sys.stderr, flush=True)

    def fit(self, series: str, xs: list[int], rs: list[dict[str, Any]]) -> None:
        self.fits.append({"series": series, "x": xs, **{m: fit_exponent(xs, [r[m] for r in rs]) for m in MEASURES}})

    def articles(self) -> None:
        a = self.a
        steps = [0, *a.new]
        with site(a.feeds, a.items, a.latency, a.outlets) as info:
            rs = warm_series(self.work, "articles", info, self.url, steps)
        xs = [r["new"] if k == 0 else k for k, r in zip(steps, rs, strict=True)]
        for k, x, r in zip(steps, xs, rs, strict=True):
            check = "" if k == 0 or r["new"] == k else f"; stored {r['new']}, published {k}"
            self.row("new articles", x, "backlog (first run, corpus pages)" if k == 0 else f"{k} published", r, check)
        self.fit(f"new articles ({a.feeds} feeds, {a.outlets} hosts)", xs, rs)

    def feeds(self) -> None:
        a, repoll, fresh = self.a, [], []
        for f in a.feed_sizes:
            hosts = min(40, max(1, f // 5))
            with site(f, a.feed_items, a.latency, hosts) as info:
                backlog, r0, r10 = warm_series(self.work, f"feeds{f}", info, self.url, [0, 0, 10])
            self.row("feeds", f, f"backlog ({a.feed_items} items per feed, {hosts} hosts)", backlog)
            self.row("feeds", f, "unchanged re-poll", r0, f"{r0['not_modified']}/{f} not modified")
            self.row("feeds", f, "10 published", r10, "" if r10["new"] == 10 else f"stored {r10['new']}")
            repoll.append(r0)
            fresh.append(r10)
        self.fit("feeds: unchanged re-poll", a.feed_sizes, repoll)
        self.fit("feeds: 10 published", a.feed_sizes, fresh)
        for f, limit in ((200, 1.5), (2000, 8.0)):
            if f in a.feed_sizes:
                w = repoll[a.feed_sizes.index(f)]["wall_s"]
                self.notes.append(f"target: {f} unchanged feeds warm <= {limit} s: {w:.2f} s, "
                                  f"{'met' if w <= limit else 'missed'}")

    def cold(self) -> None:
        a, w = self.a, self.work
        env = bench_env() | {"PREFECT_HOME": str(w / "prefect-run")}  # no `newsmon serve` record to find
        fresh(w, "cold")
        with site(20, a.cold_items, a.latency, 4) as info:
            config = write_config(w / "cold.toml", info["feeds"], w / "cold.duckdb", self.url)
            first = run_cold(config, env)
            self.row("cold", 20, f"first run, temporary server ({a.cold_items} items per feed)", _cold(first))
            for i in range(a.repeat):
                r = run_cold(config, env)
                self.row("cold", 20, f"unchanged, no server ({i + 1})", _cold(r), _stages(r))
            self.notes.append("imports of a cold run (python -X importtime, cumulative s): " + import_top())
            with prefect_server(w / "prefect-server", self.notes) as api:
                before = flow_runs(api)
                for i in range(a.repeat):
                    r = run_cold(config, env | {"PREFECT_API_URL": api})
                    self.row("cold", 20, f"unchanged, PREFECT_API_URL server ({i + 1})", _cold(r), _stages(r))
                counted = flow_runs(api) - before
            self.notes.append(f"the PREFECT_API_URL server recorded {counted} new flow runs for {a.repeat} runs")
            best = min(r["wall_s"] for r in self.rows if "PREFECT_API_URL" in r["run"])
            self.notes.append(f"target: unchanged 20-feed cold run with a running server <= 5 s: {best:.2f} s "
                              f"(best of {a.repeat}), {'met' if best <= 5 else 'missed'}")


def _cold(r: dict[str, Any]) -> dict[str, Any]:
    s = r["summary"]
    return r | {"pss_mb": r["own_pss_mb"], "new": s.get("new_articles", 0),
                "not_modified": s.get("feeds_not_modified", 0)}


def _stages(r: dict[str, Any]) -> str:
    s = r["summary"]["seconds"]
    return (f"stages {', '.join(f'{k} {v:.2f}' for k, v in s.items())}; outside them (start, imports, Prefect, "
            f"exit) {r['wall_s'] - sum(s.values()):.2f} s")


def import_top(n: int = 8) -> str:
    """The slowest packages imported by newsmon.cli + flows.poll: the largest cumulative import time of each
    top-level package (a package's time includes what it imports first)."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import newsmon.cli, flows.poll"], cwd=ROOT,
                         env=bench_env(), capture_output=True, text=True).stderr
    top: dict[str, float] = {}
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            root = parts[2].strip().split(".")[0]
            top[root] = max(top.get(root, 0.0), int(parts[1]) / 1e6)
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:n])


@contextmanager
def prefect_server(home: Path, notes: list[str]) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME, healthy, while the block runs: its API.
    Adds to `notes` how long it took to answer /api/health."""
    from flows.ephemeral import free_port, wait_healthy

    port = free_port()
    env = bench_env() | {"PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                             "127.0.0.1", "--port", str(port)], cwd=home.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api, started = f"http://127.0.0.1:{port}/api", time.monotonic()
    try:
        if not wait_healthy(api, proc, started + 120):
            raise SystemExit("bench: `prefect server start` did not become healthy")
        notes.append(f"`prefect server start` answered /api/health {time.monotonic() - started:.1f} s after its "
                     "start (the no-server runs start such a server themselves)")
        yield api
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def flow_runs(api: str) -> int:
    req = urllib.request.Request(f"{api}/flow_runs/count", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(json.loads(r.read()))


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


def report(g: Growth) -> None:
    a = g.a
    print(f"\n## Growth: {a.latency * 1000:.0f} ms per request, {os.cpu_count()} cores, load "
          + "/".join(f"{x:.1f}" for x in os.getloadavg()) + "\n")
    print("| axis | x | run | wall s | CPU s | peak PSS MB | new | not modified | notes |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for r in g.rows:
        print(f"| {r['axis']} | {r['x']:,} | {r['run']} | " + " | ".join(_f(r[m]) for m in MEASURES)
              + f" | {r['new']} | {r['not_modified']} | {r['note']} |")
    if g.fits:
        print("\nFitted growth, b of log(y) = a + b log(x) (b <= 1: linear or better):\n")
        print("| series | x | b wall | b CPU | b peak PSS |")
        print("|---|---|---:|---:|---:|")
    for f in g.fits:
        xs = ", ".join(f"{x:,}" for x in sorted(f["x"]))
        print(f"| {f['series']} | {xs} | " + " | ".join(_f(f[m]) for m in MEASURES) + " |")
    print()
    for n in g.notes:
        print(f"- {n}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    p.add_argument("--latency", type=float, default=0.15, help="seconds the site waits per request")
    p.add_argument("--skip", nargs="*", default=[], choices=["articles", "feeds", "cold"])
    p.add_argument("--dir", type=Path, help="work folder, kept (default: a temporary one, removed)")
    a = p.parse_args(argv)
    a.feeds, a.items = (40, 10) if a.quick else (200, 25)
    a.outlets = a.feeds // 5
    a.new = [10, 50] if a.quick else [10, 100, 1000]
    a.feed_sizes = [10, 40, 100] if a.quick else [20, 200, 2000]
    a.feed_items = 1 if a.quick else 2
    a.cold_items = 2 if a.quick else 25
    a.repeat = 2 if a.quick else 3
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(int(argv[1]), int(argv[2]), argv[3:])
        return 0
    a = parse_args(argv)
    work = a.dir or Path(tempfile.mkdtemp(prefix="newsmon-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    with WebhookReceiver() as rx:
        g = Growth(a, work, rx.apprise_url())
        for part in ("articles", "feeds", "cold"):
            if part not in a.skip:
                getattr(g, part)()
    report(g)
    (work / "growth.json").write_text(json.dumps({"rows": g.rows, "fits": g.fits, "notes": g.notes}, indent=1))
    if not a.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
