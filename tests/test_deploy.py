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


def test_deploy_from_prefect_yaml_and_run_on_a_worker(prefect_server: dict[str, str], tmp_path: Path) -> None:
    env = prefect_server
    prefect(env, "work-pool", "create", "newsmon", "--type", "process")
    out = prefect(env, "--no-prompt", "deploy", "--all")
    assert "newsmon-poll" in out
    worker_log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "newsmon"], env=env, cwd=ROOT,
                              stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with SiteServer(demo_site_root()) as site:
            cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml")), ("ru", site.url("/feeds/ru.xml"))])
            out = prefect(env, "deployment", "run", "poll-feeds/newsmon-poll", "--param", f"config={cfg}",
                          "--watch", "--watch-timeout", "240", timeout=300)
        assert "Completed" in out, out + (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        stop(worker)
        worker_log.close()
    assert lake_query(cfg, "SELECT count(*) FROM articles") == [(13,)]
