"""Scale-out bench: 1, 2 and 4 shard workers at once over the bench site, and what PostgreSQL costs a run.

    python -m bench.shards                  # 80 feeds x 20 items (1,600 stories), 150 ms per request
    python -m bench.shards --quick          # 40 feeds x 10 items
    python -m bench.shards --feeds 200 --items 25 --repeats 1 --dir /tmp/bs   # the full bench site

What it runs, all on this machine:
1. a PostgreSQL server (initdb into the work folder; fsync on, as in production), a `prefect server start` on a
   database of it, and the bench site (`bench/site.py`, N feeds on N/5 loopback hosts);
2. **shards**: for each of 1, 2 and 4 shards, a fresh state database and lake catalog in PostgreSQL and a fresh
   data folder; the main config split by `newsmon shards K`; then K shard processes started together, each one
   flow run of `poll_feeds` on its shard config against the Prefect server (what a process worker starts per
   run). Wall time from the first start to the last exit, stories stored, CPU seconds of each shard's process
   tree (flow process and its extraction pool), and how much of the machine's cores that is;
3. **PostgreSQL vs embedded**: the same site, one process per run as a worker starts it: a full run into an
   empty warehouse, the unchanged re-poll (every feed 304), then a steady run (three new stories published
   just before: the usual scheduled run), with SQLite state + SQLite catalog (the default) and with both in
   PostgreSQL, in turns (ABBA); store-stage and whole-run seconds, min over --repeats.

Prints markdown tables and one line `bench.shards: ...`; --dir keeps the work folder (figures.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.cycle import ROOT
from bench.procs import TreeMonitor
from newsmon.demo.receiver import WebhookReceiver
from tests.pg import Postgres, bindir

NEWSMON = str(Path(sys.executable).with_name("newsmon"))
PREFECT = str(Path(sys.executable).with_name("prefect"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.shards", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="40 feeds x 10 items")
    p.add_argument("--feeds", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--latency", type=float, default=0.15, help="seconds the site waits per request")
    p.add_argument("--outlets", type=int, help="distinct hosts the feeds are spread over (default feeds/5)")
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--repeats", type=int, default=3, help="runs per backend in the PostgreSQL comparison")
    p.add_argument("--shard-repeats", type=int, default=2, help="rounds of the shard counts (the table shows all)")
    p.add_argument("--skip", nargs="*", default=[], choices=["shards", "backends"])
    p.add_argument("--dir", type=Path, help="work folder (default: a temporary one, removed)")
    a = p.parse_args(argv)
    a.feeds = a.feeds or (40 if a.quick else 80)
    a.items = a.items or (10 if a.quick else 20)
    a.outlets = a.outlets or max(1, a.feeds // 5)
    return a


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores so far, from /proc/stat (every process on the machine)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return float(sum(fields) - idle), float(sum(fields))


class Rig:
    """PostgreSQL, a Prefect server on it and the bench site, for the whole bench."""

    def __init__(self, a: argparse.Namespace, work: Path) -> None:
        self.a, self.work = a, work
        self.procs: list[subprocess.Popen[Any]] = []
        self._db = 0

    def start(self) -> None:
        bins = bindir()
        if bins is None:
            raise SystemExit("bench.shards: no PostgreSQL server binaries (initdb, pg_ctl); install postgresql")
        root = self.work / "pg"
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o777)
        self.pg = Postgres(root, bins)
        self.pg.run("initdb", "-D", str(self.pg.data), "-A", "trust", "-U", self.pg.user, "--no-sync", "-E", "UTF8")
        # durable commits, as a production server has them (the tests' server runs with fsync off)
        self.pg.run("pg_ctl", "-D", str(self.pg.data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                    f"-p {self.pg.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start")
        port = _free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": self.api,
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
                    "PREFECT_HOME": str(self.work / "prefect-home")}
        server_env = {**self.env, "PREFECT_API_DATABASE_CONNECTION_URL":
                      f"postgresql+asyncpg://{self.pg.user}@127.0.0.1:{self.pg.port}/{self.pg.createdb('prefect')}"}
        self.procs.append(subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                           env=server_env, stdout=open(self.work / "server.log", "wb"),
                                           stderr=subprocess.STDOUT, start_new_session=True))
        self.receiver = WebhookReceiver().__enter__()  # the alert channel: matching stories are delivered
        self.alerts = self.receiver.apprise_url()
        a = self.a
        site = subprocess.Popen([sys.executable, "-m", "bench.site", "--feeds", str(a.feeds), "--items", str(a.items),
                                 "--latency", str(a.latency), "--outlets", str(a.outlets)], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(site)
        self.feeds: list[str] = json.loads(site.stdout.readline())["feeds"]  # type: ignore[union-attr]
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("bench.shards: the Prefect server did not start; see server.log") from None
                time.sleep(0.5)

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin:
                p.stdin.close()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, sig)
                    p.wait(timeout=15)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        if hasattr(self, "receiver"):
            self.receiver.__exit__()
        if hasattr(self, "pg"):
            try:
                self.pg.stop("fast")
            except subprocess.CalledProcessError:
                pass

    def publish(self, feed: int) -> None:
        """A new positive story on top of bench feed `feed` (bench/site.py)."""
        host = self.feeds[feed].split("/")[2]
        req = urllib.request.Request(f"http://{host}/_bench/publish?feed={feed}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def warehouse(self, backend: str, name: str) -> str:
        """The [warehouse] table of a fresh warehouse: SQLite files (the default) or PostgreSQL databases."""
        folder = self.work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if backend == "sqlite":
            return f'[warehouse]\npath = "{folder}/newsmon.duckdb"\n'
        self._db += 1
        state, lake = self.pg.createdb(f"state{self._db}"), self.pg.createdb(f"lake{self._db}")
        return (f'[warehouse]\npath = "{folder}/newsmon.duckdb"\nstate = "{self.pg.url(state)}"\n'
                f'catalog = "postgres:{self.pg.conninfo(lake)}"\ndata_path = "{folder}/data"\n')

    def config(self, path: Path, warehouse: str) -> Path:
        feeds = "".join(f'\n[[feeds]]\nname = "bench feed {i}"\nurl = "{u}"\n' for i, u in enumerate(self.feeds))
        path.write_text(f'{warehouse}\n[http]\nallow_private_networks = true\n[alerts]\nurls = ["{self.alerts}"]\n'
                        f"{feeds}", encoding="utf-8")
        return path

    def flow_process(self, config: Path) -> subprocess.Popen[str]:
        """One flow run of poll_feeds in a fresh process against the Prefect server (as a process worker runs
        one): `python -m bench.cycle CONFIG` prints {"wall_s", "summary"}."""
        return subprocess.Popen([sys.executable, "-m", "bench.cycle", str(config)], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], mon: TreeMonitor) -> dict[str, Any]:
    out, err = proc.communicate()
    mon.stop()
    if proc.returncode != 0:
        raise SystemExit(f"bench.shards: a run failed ({proc.returncode}):\n{err[-3000:]}")
    r = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    # the process tree's CPU, imports included: its peak, because the extraction pool's processes take their
    # CPU seconds with them when they exit before the run does (the flow's own per-stage figures, summed, are
    # the cross-check)
    r["cpu_s"] = max((s.cpu_s for s in mon.samples), default=0.0)
    r["stage_cpu_s"] = sum(r["summary"].get("cpu_seconds", {}).values())
    r["pss_mb"] = mon.peak_pss_mb()
    return dict(r)


def run_shards(rig: Rig, k: int) -> dict[str, Any]:
    """K shard processes over every feed, started together into one fresh PostgreSQL warehouse."""
    main = rig.config(rig.work / f"main-{k}.toml", rig.warehouse("postgresql", f"wh-shards-{k}"))
    out_dir = rig.work / f"shards-{k}"
    res = subprocess.run([NEWSMON, "shards", str(k), "--config", str(main), "--out", str(out_dir)], cwd=rig.work,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"bench.shards: newsmon shards {k} failed:\n{res.stdout}{res.stderr}")
    configs = sorted(out_dir.glob("shard-*.toml"))
    busy0, total0 = machine_busy()
    t0 = time.perf_counter()
    procs = [rig.flow_process(c) for c in configs]
    mons = [TreeMonitor(p.pid).start() for p in procs]
    runs = [finish(p, m) for p, m in zip(procs, mons, strict=True)]
    wall = time.perf_counter() - t0
    busy1, total1 = machine_busy()
    stored = sum(r["summary"]["new_articles"] for r in runs)
    cpu = sum(r["cpu_s"] for r in runs)
    return {"shards": k, "wall_s": wall, "articles": stored, "per_s": stored / wall, "cpu_s": cpu,
            "cores_used": cpu / wall,
            "machine_busy": (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0,
            "flow_wall_s": [round(r["wall_s"], 1) for r in runs],
            "shard_cpu_s": [round(r["cpu_s"], 1) for r in runs],
            "stage_cpu_s": sum(r["stage_cpu_s"] for r in runs),
            "shard_articles": [r["summary"]["new_articles"] for r in runs],
            "extract_s": [round(r["summary"]["seconds"].get("extract", 0.0), 1) for r in runs],
            "store_s": [round(r["summary"]["seconds"].get("store", 0.0), 2) for r in runs],
            "peak_pss_mb": sum(r["pss_mb"] for r in runs), "load": load()}


def run_backend(rig: Rig, backend: str, rep: int) -> dict[str, Any]:
    """A full run into an empty warehouse, the unchanged re-poll, then a steady run (three stories published
    just before it, the usual scheduled run); each in its own process, as a worker starts them."""
    cfg = rig.config(rig.work / f"{backend}-{rep}.toml", rig.warehouse(backend, f"wh-{backend}-{rep}"))
    out: dict[str, Any] = {"backend": backend, "load": load()}
    for phase in ("full", "repoll", "steady"):
        if phase == "steady":
            for feed in range(3):
                rig.publish((rep * 3 + feed) * 7 % len(rig.feeds))
        p = rig.flow_process(cfg)
        r = finish(p, TreeMonitor(p.pid).start())
        s = r["summary"]
        out[phase] = {"wall_s": r["wall_s"], "store_s": s["seconds"].get("store", 0.0), "alerts": s["alerts_sent"],
                      "outside_stages_s": r["wall_s"] - sum(s["seconds"].values()), "stages": s["seconds"],
                      "articles": s["new_articles"], "not_modified": s["feeds_not_modified"]}
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report(a: argparse.Namespace, shards: list[dict[str, Any]], backends: list[dict[str, Any]]) -> None:
    ncpu = os.cpu_count() or 1
    if shards:
        print(f"\n## Shards: {a.feeds} feeds x {a.items} items on {a.outlets} hosts, {a.latency * 1000:.0f} ms per "
              f"request, {ncpu} cores; state + catalog in PostgreSQL\n")
        print("| shards | wall s | stories | stories/s | CPU s, all shards (stages) | cores used "
              "| machine busy, every process | per shard: flow wall s / CPU s / stories / store s | peak PSS MB "
              "| load 1/5/15 |")
        print("|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
        for r in sorted(shards, key=lambda r: r["shards"]):
            per = ", ".join(f"{w}/{c}/{n}/{st}" for w, c, n, st in zip(
                r["flow_wall_s"], r["shard_cpu_s"], r["shard_articles"], r["store_s"], strict=True))
            print(f"| {r['shards']} | {r['wall_s']:.1f} | {r['articles']} | {r['per_s']:.1f} | {r['cpu_s']:.0f} "
                  f"({r['stage_cpu_s']:.0f}) | {r['cores_used']:.2f} of {ncpu} | {100 * r['machine_busy']:.0f}% | "
                  f"{per} | {r['peak_pss_mb']:.0f} | {r['load']} |")
    if backends:
        print(f"\n## PostgreSQL vs the embedded default: min over {a.repeats} runs each (one process per run)\n")
        phases = (("full", "full run (empty warehouse)"), ("repoll", "unchanged re-poll (all 304)"),
                  ("steady", "steady run (3 new stories)"))
        print("| run | backend | whole run s | store stage s | alert stage s | outside the stages s (open, Prefect) "
              "| stories, alerts sent (first run) |")
        print("|---|---|---:|---:|---:|---:|---|")
        for phase, name in phases:
            for backend in ("sqlite", "postgresql"):
                rs = [r[phase] for r in backends if r["backend"] == backend]
                if rs:
                    print(f"| {name} | {backend} | {min(r['wall_s'] for r in rs):.2f} | "
                          f"{min(r['store_s'] for r in rs):.2f} | {min(r['stages'].get('alert', 0) for r in rs):.2f} | "
                          f"{min(r['outside_stages_s'] for r in rs):.2f} | {rs[0]['articles']}, {rs[0]['alerts']} |")
        print("\nall runs (whole / store s): " + "; ".join(
            f"{r['backend']} " + ", ".join(f"{ph} {r[ph]['wall_s']:.1f}/{r[ph]['store_s']:.2f}" for ph, _ in phases)
            + f" (load {r['load']})" for r in backends))
    best = {k: max(r["per_s"] for r in shards if r["shards"] == k) for k in sorted({r["shards"] for r in shards})}
    line = [f"shards_{k}_per_s={v:.1f}" for k, v in best.items()]
    for backend in ("sqlite", "postgresql"):
        rs = [r for r in backends if r["backend"] == backend]
        if rs:
            line.append(f"{backend}_store_s={min(r['full']['store_s'] for r in rs):.2f}")
            line.append(f"{backend}_repoll_s={min(r['repoll']['wall_s'] for r in rs):.2f}")
            line.append(f"{backend}_steady_s={min(r['steady']['wall_s'] for r in rs):.2f}")
    print("\nbench.shards: " + " ".join(line))


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    work = a.dir or Path(tempfile.mkdtemp(prefix="newsmon-bench-shards-"))
    work.mkdir(parents=True, exist_ok=True)
    rig = Rig(a, work)
    shards: list[dict[str, Any]] = []
    backends: list[dict[str, Any]] = []
    try:
        rig.start()
        print(f"bench.shards: site {a.feeds} feeds x {a.items} items on {a.outlets} hosts; Prefect {rig.api}; "
              f"PostgreSQL on port {rig.pg.port}; work folder {work}", file=sys.stderr, flush=True)
        if "shards" not in a.skip:
            for k in [k for _ in range(a.shard_repeats) for k in a.shards]:  # interleaved: 1 2 4 1 2 4 ...
                shards.append(run_shards(rig, k))
                r = shards[-1]
                print(f"  {k} shard(s): {r['wall_s']:.1f} s, {r['articles']} stories, {r['cores_used']:.2f} cores "
                      f"(load {r['load']})", file=sys.stderr, flush=True)
        if "backends" not in a.skip:
            for rep in range(a.repeats):
                for backend in ("sqlite", "postgresql") if rep % 2 == 0 else ("postgresql", "sqlite"):
                    backends.append(run_backend(rig, backend, rep))
                    r = backends[-1]
                    print(f"  {backend} #{rep + 1}: full {r['full']['wall_s']:.1f} s (store "
                          f"{r['full']['store_s']:.2f}), re-poll {r['repoll']['wall_s']:.2f} s, steady "
                          f"{r['steady']['wall_s']:.2f} s (store {r['steady']['store_s']:.2f}; load {r['load']})",
                          file=sys.stderr, flush=True)
    finally:
        rig.stop()
        (work / "figures.json").write_text(json.dumps({"shards": shards, "backends": backends}, indent=1))
        if a.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    report(a, shards, backends)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
