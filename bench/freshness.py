"""Freshness: `newsmon serve` polls every feed every minute while new stories appear on the site; how long from
a story's appearance to its alert at the receiver, and how much CPU the serve process tree burns between runs.

Scheduled runs execute in a child of the serve process (a multiprocessing spawn child, or `python -m
prefect.engine`), so "between runs" means: samples where no such child is alive.

Prefect's temporary (ephemeral) API server runs no scheduler service, so `newsmon serve` with no PREFECT_API_URL
registers its deployment and then never starts a run. The bench therefore serves against a local
`prefect server start` (as a deployment would); its CPU between runs is reported beside serve's.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.cycle import ROOT, bench_env
from bench.procs import TreeMonitor
from newsmon.demo.receiver import WebhookReceiver

# a scheduled flow run: a multiprocessing spawn child (flow served from memory) or `python -m prefect.engine`
RUN_MARK = "spawn_main|prefect.engine"


class ArrivalClock:
    """Stamps each alert the receiver gets with the time it was first seen (polled every 50 ms)."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            got = self.receiver.received
            while len(self.arrivals) < len(got):
                self.arrivals.append((time.time(), got[len(self.arrivals)]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def story_times(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for at, payload in self.arrivals:
            m = re.search(r"\(story (\d+)\)", str(payload.get("title", "")) + str(payload.get("message", "")))
            if m:
                out.setdefault(int(m.group(1)), at)
        return out


def publish(port: int, feed: int) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_bench/publish?feed={feed}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def cpu_between_runs(mon: TreeMonitor, since: float) -> tuple[float, int]:
    """(percent of one core used while no run was alive, number of runs seen) after `since`."""
    samples = [s for s in mon.samples if s.t >= since]
    cpu = wall = 0.0
    runs = 0
    for a, b in zip(samples, samples[1:], strict=False):
        runs += int(b.marked and not a.marked)
        if not a.marked and not b.marked:
            cpu += b.cpu_s - a.cpu_s
            wall += b.t - a.t
    return (100 * cpu / wall if wall else 0.0), runs


def prefect_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    """A local `prefect server start` with its own PREFECT_HOME; returns (process, API URL) once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = bench_env() | {"PREFECT_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(api + "/health", timeout=2):
                return proc, api
        except OSError:
            time.sleep(1)
    _stop(proc)
    raise SystemExit("bench: prefect server did not become healthy in 120 s")


def _stop(proc: subprocess.Popen[Any]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_freshness(config: Path, port: int, feeds: int, receiver: WebhookReceiver, *, stories: int,
                  window_s: float, settle_s: float = 150.0, seed: int = 9) -> dict[str, Any]:
    """Serve `config` (interval 1 min), publish `stories` positive stories over `window_s`, time their alerts."""
    clock = ArrivalClock(receiver)
    server, api = prefect_server(config.parent / "prefect-home")
    server_mon = TreeMonitor(server.pid, every=1.0).start()
    proc = subprocess.Popen([sys.executable, "-m", "newsmon.cli", "serve", "--config", str(config)], cwd=ROOT,
                            env=bench_env() | {"PREFECT_API_URL": api}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    mon = TreeMonitor(proc.pid, every=0.5, mark=RUN_MARK).start()
    t0 = time.time()
    try:
        _wait_first_run(mon, proc, timeout_s=150)
        rng = random.Random(seed)
        t0 = time.time()
        published = []
        for k in range(stories):
            time.sleep(max(0.0, t0 + (k + rng.random()) * window_s / stories - time.time()))
            published.append(publish(port, rng.randrange(feeds)))
        deadline = time.time() + settle_s
        while time.time() < deadline and len(_latencies(published, clock)) < len(published):
            time.sleep(0.5)
        idle_pct, runs = cpu_between_runs(mon, t0)
        ss = [s for s in server_mon.samples if s.t >= t0]
        server_pct = 100 * (ss[-1].cpu_s - ss[0].cpu_s) / (ss[-1].t - ss[0].t) if len(ss) > 1 else 0.0
    finally:
        _stop(proc)
        _stop(server)
        mon.stop()
        server_mon.stop()
        clock.stop()
    lat = _latencies(published, clock)
    return {"stories": len(published), "alerted": len(lat), "median_s": statistics.median(lat) if lat else None,
            "worst_s": max(lat) if lat else None, "idle_cpu_pct": idle_pct, "runs": runs,
            "server_cpu_pct": server_pct, "server_pss_mb": server_mon.peak_pss_mb(),
            "peak_pss_mb": mon.peak_pss_mb(), "peak_rss_mb": mon.peak_rss_mb()}


def _wait_first_run(mon: TreeMonitor, proc: subprocess.Popen[str], timeout_s: float) -> None:
    """Until the first scheduled run has come and gone (so the site's backlog is not part of the figure)."""
    deadline, seen = time.time() + timeout_s, False
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: newsmon serve exited ({proc.returncode})")
        last = mon.samples[-1] if mon.samples else None
        seen = seen or bool(last and last.marked)
        if seen and last and not last.marked:
            return
        time.sleep(0.5)


def _latencies(published: list[dict[str, Any]], clock: ArrivalClock) -> list[float]:
    arrived = clock.story_times()
    out = []
    for p in published:
        n = int(re.search(r"\(story (\d+)\)", p["title"]).group(1))  # type: ignore[union-attr]
        if n in arrived:
            out.append(arrived[n] - p["at"])
    return out
