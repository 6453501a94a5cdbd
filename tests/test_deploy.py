"""prefect.yaml for real: a Prefect server, the `newsmon` process pool, `prefect deploy --all`, a worker,
and a run of `newsmon-poll` against a local news site whose rows land in the warehouse."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsmon.demo.server import SiteServer, demo_site_root
from tests.conftest import lake_query, write_config
from tests.test_doctor import doctor

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(tmp_path / log, "wb")
        p = subprocess.Popen([PREFECT, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        procs.append(p)
        return p

    start("server", "start", "--host", "127.0.0.1", "--port", str(port), log="server.log")
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "server.log").read_text()[-2000:]) from None
            time.sleep(0.5)
    yield env
    for p in procs:
        stop(p)


def stop(p: subprocess.Popen[bytes]) -> None:
    """A Prefect worker ignores its first SIGTERM: stop the whole process group, then kill it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
            p.wait(timeout=10)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def prefect(env: dict[str, str], *args: str, timeout: float = 240) -> str:
    res = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"prefect {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def spec(env: dict[str, str], deployment: str) -> str:
    return prefect(env, "deployment", "inspect", deployment)


@pytest.mark.timeout(1200)  # a server, two deploys, three flow runs: ~5 min on a busy 2-core machine
def test_deploy_from_prefect_yaml_and_run_on_a_worker(prefect_server: dict[str, str], tmp_path: Path) -> None:
    """The pull route: the worker runs in an environment where newsmon is installed and imports the flows by
    module path, from a folder that is not the checkout, with its config from NEWSMON_CONFIG."""
    env = prefect_server
    prefect(env, "work-pool", "create", "newsmon", "--type", "process")
    out = prefect(env, "--no-prompt", "deploy", "--all")  # from the plain checkout
    assert "newsmon-poll" in out
    poll = spec(env, "poll-feeds/newsmon-poll")
    assert "'pull_steps': []" in poll and "'entrypoint': 'flows.poll.poll_feeds'" in poll
    assert str(ROOT) not in poll and "'parameters': {}" in poll  # no path of the deploying checkout
    home = tmp_path / "worker-home"  # the worker's own folder: no checkout, no config in it
    home.mkdir()
    worker_log = open(tmp_path / "worker.log", "wb")
    with SiteServer(demo_site_root()) as site:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml")), ("ru", site.url("/feeds/ru.xml"))])
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "newsmon"], cwd=home,
                                  env={**env, "NEWSMON_CONFIG": str(cfg)}, stdout=worker_log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code, lines, text = doctor(cfg, PREFECT_API_URL=env["PREFECT_API_URL"], PREFECT_HOME=env["PREFECT_HOME"])
            assert code == 0 and "healthy; work pool 'newsmon' (process)" in lines["prefect api"], text
            out = prefect(env, "deployment", "run", "poll-feeds/newsmon-poll", "--watch", "--watch-timeout", "240",
                          timeout=300)  # no config parameter: the worker's NEWSMON_CONFIG
            assert "Completed" in out, out + (tmp_path / "worker.log").read_text()[-3000:]
            assert lake_query(cfg, "SELECT count(*) FROM articles") == [(13,)]
            run_shards(env, tmp_path / "sharded")
        finally:
            stop(worker)
            worker_log.close()


def run_shards(env: dict[str, str], folder: Path) -> None:
    """`newsmon shards 2 --deployments`: feeds on two loopback hosts, one shard each, deployed from the written
    prefect.yaml and run at once, each with a one-at-a-time limit of its own, into one warehouse."""
    folder.mkdir()
    with SiteServer(demo_site_root(), host="127.0.0.2") as en, SiteServer(demo_site_root(), host="127.0.0.3") as ru:
        cfg = write_config(folder, [("en", en.url("/feeds/en.xml")), ("ru", ru.url("/feeds/ru.xml"))])
        res = subprocess.run([sys.executable, "-m", "newsmon.cli", "shards", "2", "--config", str(cfg), "--out",
                              str(folder / "shards"), "--deployments"], capture_output=True, text=True, timeout=120,
                             cwd=ROOT)
        assert res.returncode == 0, res.stderr
        prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", str(folder / "shards/prefect.yaml"))
        limits = set()
        for k in (1, 2):
            text = spec(env, f"poll-feeds/newsmon-poll-shard-{k}")
            assert f"shard-{k}.toml" in text and "'limit': 1" in text
            limits |= {line.split("'")[3] for line in text.splitlines() if "'name': 'deployment:" in line}
        assert len(limits) == 2  # two limits, one per shard: neither waits for the other
        runs = [subprocess.Popen([PREFECT, "deployment", "run", f"poll-feeds/newsmon-poll-shard-{k}", "--watch",
                                  "--watch-timeout", "240"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for k in (1, 2)]
        outs = [r.communicate(timeout=300)[0] for r in runs]
        assert all("Completed" in o for o in outs), outs
    assert lake_query(cfg, "SELECT count(*), count(DISTINCT article_id), count(DISTINCT feed_url) FROM articles") \
        == [(13, 13, 2)]
    assert len(lake_query(cfg, "SELECT DISTINCT config FROM poll_runs")) == 2  # one run of each shard
