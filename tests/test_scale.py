"""Scaled out for real: a Prefect server on PostgreSQL, the `newsmon` process pool, two workers and the two
shard deployments `newsmon shards 2 --deployments` writes, polling at the same time into one state database and
one DuckLake (catalog in PostgreSQL, data in one shared folder), against a news site on three loopback hosts.

The shards split the three hosts by site (every feed of a host in one shard, so per-host politeness holds):
one shard gets two hosts, which serve the demo site's English and Russian feeds; the other gets one, which
serves a wire feed carrying copies of one positive story of each under its own addresses: the English one
published minutes later (its own article, the same story cluster), the Russian one with the same title and
minute (the same story: one article). Both shards run at once: every story must be stored once, every
matching story alerted once per channel, and one `newsmon sql` query sees both shards' rows. Then all of it
again on fresh databases with the two-host shard's worker SIGKILLed mid-run (worker, flow-run process and
extraction pool: the machine gone): once a new worker runs that shard again, the result is the same as the
undisturbed one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from bench.procs import descendants
from extractors.shards import assign
from newsmon.config import load_settings
from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root
from newsmon.records import FeedSpec
from tests.conftest import lake_query

pytestmark = pytest.mark.slow
PREFECT = str(Path(sys.executable).with_name("prefect"))
NEWSMON = str(Path(sys.executable).with_name("newsmon"))
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
SHARDS_DIR = "shards"
EN_COPY = "Azerbaijan invites Russian companies to invest in its green energy projects"
RU_COPY = "Азербайджан и Россия согласовали дорожную карту энергетического сотрудничества"
WIRE = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Wire</title><link>{{{{BASE_URL}}}}/</link><description>copies</description>
<item><title>{EN_COPY}</title><guid isPermaLink="false">wire-1</guid><pubDate>{{{{DATE:-3h+7m:rfc822}}}}</pubDate>
<link>{{{{BASE_URL}}}}/articles/azerbaijan-invites-russian-companies-green-energy.html</link></item>
<item><title>{RU_COPY}</title><guid isPermaLink="false">wire-2</guid><pubDate>{{{{DATE:-4h:rfc822}}}}</pubDate>
<link>{{{{BASE_URL}}}}/articles/azerbaidzhan-rossiya-dorozhnaya-karta-energetika.html</link></item>
<item><title>Tbilisi museum reopens its carpet hall</title><guid isPermaLink="false">wire-3</guid>
<pubDate>{{{{DATE:-5h:rfc822}}}}</pubDate><link>{{{{BASE_URL}}}}/articles/wire-carpets.html</link></item>
</channel></rss>
"""
CARPETS = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Tbilisi museum reopens its carpet hall</title>
<link rel="canonical" href="{{BASE_URL}}/articles/wire-carpets.html"></head><body><article>
<h1>Tbilisi museum reopens its carpet hall</h1><p>The national museum in Tbilisi reopened its carpet hall on
Saturday after two years of restoration work on the building's roof and climate control.</p>
<p>Curators said the hall now shows forty carpets from the eighteenth and nineteenth centuries, twice as many as
before, including a large dragon carpet that had been kept in storage since the nineteen-nineties.</p>
<p>The restorers cleaned each piece by hand and mounted the most fragile ones on slanted boards so that their
weight no longer pulls on the old threads. Visitors can also watch a weaver at work on a loom near the exit.</p>
<p>The museum expects school groups to return in the autumn and will open on Mondays during the summer.</p>
</article></body></html>
"""
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_tree(p: subprocess.Popen[bytes], sig: int = signal.SIGKILL, wait: float = 30) -> None:
    """`sig` to the process group of `p` and to every process under it, whatever session it started."""
    pids = descendants(p.pid)
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class Cluster:
    """A Prefect server on PostgreSQL and the processes this test started (all stopped at the end)."""

    root: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logfiles: list[Any] = field(default_factory=list)

    def spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        self.logfiles.append(open(self.root / log, "ab"))
        p = subprocess.Popen([PREFECT, *args], env=self.env, cwd=self.root, stdout=self.logfiles[-1],
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        # --limit 1: a worker takes one run at a time, so the two shards' runs go to the two workers
        return self.spawn("worker", "start", "--pool", "newsmon", "--name", name, "--limit", "1",
                          log=f"{name}.log")

    def prefect(self, *args: str, timeout: float = 240) -> str:
        res = subprocess.run([PREFECT, *args], env=self.env, cwd=self.root, capture_output=True, text=True,
                             timeout=timeout)
        assert res.returncode == 0, f"prefect {' '.join(args)}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return res.stdout

    def api(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.env["PREFECT_API_URL"] + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def run_shard(self, number: int) -> str:
        dep = self.api("GET", f"/deployments/name/poll-feeds/newsmon-poll-shard-{number}")
        return str(self.api("POST", f"/deployments/{dep['id']}/create_flow_run", {})["id"])

    def wait_for_workers(self, *names: str, timeout: float = 180) -> None:
        """Until the workers `names` have reported to the server (polling the pool)."""
        deadline = time.monotonic() + timeout
        while not set(names) <= {w["name"] for w in self.api("POST", "/work_pools/newsmon/workers/filter", {})
                                 if w["status"] == "ONLINE"}:
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.5)

    def span(self, run_id: str) -> tuple[datetime, datetime]:
        run = self.api("GET", f"/flow_runs/{run_id}")
        return datetime.fromisoformat(run["start_time"]), datetime.fromisoformat(run["end_time"])

    def state(self, run_id: str) -> str:
        return str(self.api("GET", f"/flow_runs/{run_id}")["state"]["type"])

    def wait(self, *run_ids: str, timeout: float = 300) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            states = {r: self.state(r) for r in run_ids}
            if all(s in TERMINAL for s in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(0.5)

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-2500:]}"
                         for f in sorted(self.root.glob("*.log")))


@pytest.fixture
def cluster(postgres, tmp_path: Path) -> Iterator[Cluster]:
    """`prefect server start` on a database of the session's PostgreSQL, and the `newsmon` process pool."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL":
               f"postgresql+asyncpg://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.createdb('scale_prefect')}",
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    c = Cluster(tmp_path, env)
    try:
        c.spawn("server", "start", "--host", "127.0.0.1", "--port", str(port), log="server.log")
        deadline = time.monotonic() + 120
        while True:
            try:
                if c.api("GET", "/health") is True:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, c.logs()
            time.sleep(0.3)
        c.prefect("work-pool", "create", "newsmon", "--type", "process")
        yield c
    finally:
        for p in reversed(c.procs):
            kill_tree(p, signal.SIGTERM, wait=0)
        time.sleep(2)
        for p in reversed(c.procs):
            kill_tree(p)
        for f in c.logfiles:
            f.close()


@dataclass
class Site:
    """The demo site on every host of HOSTS (one port), and two alert channels (webhook receivers)."""

    servers: list[SiteServer]
    channels: list[WebhookReceiver]

    def pages_served_to(self, hosts: tuple[str, ...]) -> int:
        """Article pages the site has sent from `hosts` so far."""
        return sum(1 for srv in self.servers if srv.host in hosts for _, path, status in list(srv.requests)
                   if path.startswith("/articles/") and status == 200)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The demo site plus the wire feed and its one page of its own, on every host (same clock, one port)."""
    root = tmp_path / "site"
    shutil.copytree(demo_site_root(), root)
    (root / "feeds/wire.xml").write_text(WIRE, encoding="utf-8")
    (root / "articles/wire-carpets.html").write_text(CARPETS, encoding="utf-8")
    port, now = free_port(), datetime.now(UTC)
    servers = [SiteServer(root, host=h, port=port, now=now, latency_s=0.4).start() for h in HOSTS]
    channels = [WebhookReceiver().__enter__() for _ in range(2)]
    try:
        yield Site(servers, channels)
    finally:
        for s in servers:
            s.stop()
        for r in channels:
            r.__exit__()


def roles() -> dict[str, str]:
    """Which feed each host serves: the host `newsmon shards 2` places alone serves the wire feed, so both of
    its copies are of stories in the other shard."""
    placed = assign([FeedSpec(h, f"http://{h}/") for h in HOSTS], 2)
    lone = next(s.sites[0] for s in placed if len(s.sites) == 1)
    pair = sorted(set(HOSTS) - {lone})
    return {pair[0]: "feeds/en.xml", pair[1]: "feeds/ru.xml", lone: "feeds/wire.xml"}


def split(root: Path, postgres: Any, site: Site, tag: str) -> dict[int, tuple[str, ...]]:
    """The team's main config on fresh databases (one state database, one catalog, one data folder), split by
    `newsmon shards 2 --deployments` into shards/shard-1.toml, shard-2.toml and shards/prefect.yaml; the
    hosts of each shard."""
    state, lake = postgres.createdb(f"scale_state_{tag}"), postgres.createdb(f"scale_lake_{tag}")
    urls = ", ".join(f'"{r.apprise_url(f"desk{i}")}"' for i, r in enumerate(site.channels))
    feeds = "".join(f'\n[[feeds]]\nname = "{h}"\nurl = "http://{h}:{site.servers[0].port}/{path}"\n'
                    for h, path in roles().items())
    main = root / f"newsmon-{tag}.toml"
    main.write_text(f"""
[warehouse]
path = "wh/newsmon.duckdb"
state = "{postgres.url(state)}"
catalog = "postgres:{postgres.conninfo(lake)}"
data_path = "lake-data-{tag}"
[http]
allow_private_networks = true
timeout_s = 20
per_host_delay_s = 0
jitter_s = 0
[schedule]
cron = "0 3 1 1 *"  # the test starts every run itself
[alerts]
urls = [{urls}]
{feeds}""", encoding="utf-8")
    res = subprocess.run([NEWSMON, "shards", "2", "--config", str(main), "--out", str(root / SHARDS_DIR),
                          "--deployments"], cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return {n: tuple(sorted({urlsplit(f.url).hostname or "" for f in load_settings(
        root / SHARDS_DIR / f"shard-{n}.toml").feeds})) for n in (1, 2)}


def newsmon_sql(config: Path, query: str) -> list[dict[str, Any]]:
    res = subprocess.run([NEWSMON, "sql", "--config", str(config), "--format", "json", query], cwd=config.parent,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return list(json.loads(res.stdout))


def outcome(config: Path, site: Site, shards: dict[int, tuple[str, ...]]) -> dict[str, Any]:
    """What the system holds and sent, checked for doubles; the same whichever shard claimed a story first."""
    (total, distinct), = lake_query(config, "SELECT count(*), count(DISTINCT article_id) FROM articles")
    assert total == distinct, "an article stored twice"
    # one `newsmon sql` query, both shards' rows
    by_host = newsmon_sql(config, "SELECT split_part(split_part(url, '/', 3), ':', 1) AS host, count(*) AS n, "
                                  "list(DISTINCT run_id) AS runs FROM articles GROUP BY 1 ORDER BY 1")
    assert [r["host"] for r in by_host] == sorted(HOSTS)
    assert len({run for r in by_host for run in r["runs"]}) >= 2  # runs of both shards
    titles = Counter(t for t, in lake_query(config, "SELECT title FROM articles"))
    story_alerts = lake_query(config, "SELECT channel, cluster_id, watchlist, status FROM alerts WHERE kind = 'story'")
    per_key = Counter((ch, cl, wl) for ch, cl, wl, _ in story_alerts)
    assert max(per_key.values()) == 1, "a story alerted twice on one channel"
    assert {s for *_, s in story_alerts} == {"sent"}
    matching = set(lake_query(config, "SELECT DISTINCT cluster_id, watchlist FROM matches"))
    channels = {ch for ch, *_ in story_alerts}
    assert len(channels) == 2 and set(per_key) == {(ch, cl, wl) for ch in channels for cl, wl in matching}
    # what the channels received: each message once (its idempotency key), one per matching story
    received = []
    for r in site.channels:
        keys = [h.get("Idempotency-Key") for h in r.headers]
        assert len(keys) == len(set(keys)) == len(matching), (keys, len(matching))
        received.append(sorted(p["title"].removeprefix("newsmon: ") for p in r.received))
    # every feed's state written by runs of its own shard only; no run left half-stored
    with psycopg.connect(load_settings(config).warehouse.state_target) as db:
        left = db.execute("SELECT count(*) FROM runs WHERE state = 'claimed'").fetchone()
        stories = db.execute("SELECT count(*) FROM stories").fetchone()
        feed_runs = db.execute("SELECT feed_url, run_id FROM feeds").fetchall()
        run_config = dict(db.execute("SELECT run_id, config FROM runs").fetchall())
    assert left == (0,) and stories == (total,) and len(feed_runs) == len(HOSTS)  # the lake and the state agree
    for feed_url, run_id in feed_runs:
        shard = next(n for n, hosts in shards.items() if urlsplit(feed_url).hostname in hosts)
        assert run_config[run_id].endswith(f"shard-{shard}.toml"), (feed_url, run_config[run_id])
    return {"titles": titles, "matching_stories": len(matching), "received": received}


def test_two_shards_on_two_workers_store_once_alert_once_and_survive_a_killed_worker(
        cluster: Cluster, site: Site, postgres, tmp_path: Path) -> None:
    t0 = time.monotonic()
    workers = {"w1": cluster.worker("w1"), "w2": cluster.worker("w2")}
    shards = split(tmp_path, postgres, site, "1")
    two = next(n for n, hosts in shards.items() if len(hosts) == 2)  # the English and Russian feeds
    one = 3 - two  # the wire feed
    assert shards[one] == (next(h for h, path in roles().items() if path.endswith("wire.xml")),)
    cluster.prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / SHARDS_DIR / "prefect.yaml"))
    config = tmp_path / SHARDS_DIR / "shard-1.toml"  # either shard's config names the whole warehouse

    # 1. both shards at once, undisturbed
    cluster.wait_for_workers(*workers)
    runs = {n: cluster.run_shard(n) for n in shards}
    states = cluster.wait(*runs.values())
    assert set(states.values()) == {"COMPLETED"}, (states, cluster.logs())
    (start1, end1), (start2, end2) = (cluster.span(r) for r in runs.values())
    assert start1 < end2 and start2 < end1, "the two shards' runs did not overlap"
    first = outcome(config, site, shards)
    # 8 English + 5 Russian stories, the wire's own one and its later copy of the English positive; its copy of
    # the Russian one (same title, same minute) is that story: stored once, by whichever shard claimed first
    assert first["titles"][EN_COPY] == 2 and first["titles"][RU_COPY] == 1
    assert sum(first["titles"].values()) == 15 and first["matching_stories"] >= 2
    # the English positive and its copy: one story cluster with an article from each shard, alerted once
    copies = lake_query(config, "SELECT cluster_id, url FROM matches WHERE title = ?", [EN_COPY])
    assert len(copies) == 2 and len({c for c, _ in copies}) == 1
    assert {urlsplit(u).hostname in shards[one] for _, u in copies} == {True, False}
    assert all(r.count(EN_COPY) == 1 and r.count(RU_COPY) == 1 for r in first["received"])
    t1 = time.monotonic()

    # 2. again on fresh databases (the same shard config paths, so the same deployments); the two-host shard's
    # worker is SIGKILLed while its run fetches pages
    for r in site.channels:
        r.received.clear()
        r.headers.clear()
    assert split(tmp_path, postgres, site, "2") == shards  # sites keep their shard
    before = site.pages_served_to(shards[two])
    runs = {n: cluster.run_shard(n) for n in shards}
    deadline = time.monotonic() + 240
    while site.pages_served_to(shards[two]) < before + 3:
        assert time.monotonic() < deadline and cluster.state(runs[two]) not in TERMINAL, cluster.logs()
        time.sleep(0.05)
    flow_pid = int(str(cluster.api("GET", f"/flow_runs/{runs[two]}")["infrastructure_pid"]).rsplit(":", 1)[-1])
    victim = next(n for n, w in workers.items() if flow_pid in descendants(w.pid))
    kill_tree(workers[victim])
    served_at_kill = site.pages_served_to(shards[two]) - before
    assert served_at_kill < 13, "the kill came after the shard had fetched every page"
    assert cluster.state(runs[two]) == "RUNNING"  # the server never heard of the death
    workers[victim] = cluster.worker(victim + "-again")  # a new worker takes the dead one's place
    assert cluster.wait(runs[one])[runs[one]] == "COMPLETED", cluster.logs()
    # the dead run still holds its deployment's one slot (`concurrency_limit: 1`, CANCEL_NEW; the flow engine
    # renews it in 300 s leases): the shard's next run is cancelled when a worker picks it up ...
    blocked = cluster.run_shard(two)
    assert cluster.wait(blocked)[blocked] == "CANCELLED", cluster.logs()
    # ... until the dead run is marked Crashed (what an operator or Prefect's zombie detection does; else its
    # lease runs out within about five minutes)
    cluster.wait_for_workers(victim + "-again")
    cluster.api("POST", f"/flow_runs/{runs[two]}/set_state",
                {"state": {"type": "CRASHED", "message": "worker SIGKILLed by the test"}, "force": True})
    rerun = cluster.run_shard(two)
    assert cluster.wait(rerun)[rerun] == "COMPLETED", cluster.logs()
    second = outcome(config, site, shards)
    assert second == first  # nothing lost, nothing doubled
    print(f"\nscale test: undisturbed {t1 - t0:.1f} s; killed after {served_at_kill} of the shard's 13 pages, "
          f"rerun done {time.monotonic() - t1:.1f} s later")
