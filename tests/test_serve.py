"""`newsmon serve` registers the three scheduled deployments and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lake_query, write_config
from tests.test_deploy import ROOT, prefect_server  # noqa: F401 - the server fixture

pytestmark = pytest.mark.slow


def deployments(api: str) -> dict[str, Any]:
    """The server's deployments (temporary_settings: a session-wide Prefect test harness may be active)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            return {d.name: d for d in await client.read_deployments()}

    with temporary_settings(updates={PREFECT_API_URL: api}):
        return asyncio.run(read())


def test_serve_registers_three_schedules_and_stops_on_sigterm(prefect_server: dict[str, str],  # noqa: F811
                                                               tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [("x", "http://127.0.0.1:9/feed.xml")],
                       extra='[schedule]\ninterval_minutes = 30\ndigest_time = "07:30"\ntimezone = "Asia/Baku"\n'
                             'maintenance_cron = "15 4 * * *"\n')
    env = {**prefect_server, "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "newsmon.cli", "serve", "--config", str(cfg)], env=env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, found = time.monotonic() + 90, {}
        while time.monotonic() < deadline and len(found) < 3:
            time.sleep(1)
            found = deployments(env["PREFECT_API_URL"])
        names = {"newsmon-poll", "newsmon-digest", "newsmon-maintenance"}
        assert set(found) >= names, (tmp_path / "serve.log").read_text()
        poll, digest, maint = found["newsmon-poll"], found["newsmon-digest"], found["newsmon-maintenance"]
        assert poll.schedules[0].schedule.interval.total_seconds() == 1800
        assert digest.schedules[0].schedule.cron == "30 7 * * *"
        assert digest.schedules[0].schedule.timezone == "Asia/Baku"
        assert maint.schedules[0].schedule.cron == "15 4 * * *"
        assert poll.parameters == {"config": str(cfg.resolve())}
        assert poll.global_concurrency_limit is not None and poll.global_concurrency_limit.limit == 1
        assert poll.concurrency_options is not None
        assert poll.concurrency_options.collision_strategy == "CANCEL_NEW"
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) is not None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert "newsmon serve" in (tmp_path / "serve.log").read_text()


def test_serve_without_a_server_starts_one_and_its_schedule_really_runs(tmp_path: Path) -> None:
    """Prefect's temporary API has no scheduler: serve must bring its own server, or nothing ever runs."""
    from newsmon.config import load_settings
    from newsmon.demo.server import SiteServer, demo_site_root
    from newsmon.errors import StorageError

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_HOME": str(tmp_path / "home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(ROOT)}
    with SiteServer(demo_site_root()) as site:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml"))], extra="[schedule]\ninterval_minutes = 0.2\n")
        log = open(tmp_path / "serve.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "newsmon.cli", "serve", "--config", str(cfg)], env=env,
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        catalog, stored = Path(load_settings(cfg).warehouse.catalog_target), 0
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not stored:
                time.sleep(3)
                if catalog.exists():
                    try:
                        stored = lake_query(cfg, "SELECT count(*) FROM articles")[0][0]
                    except StorageError:  # the first run is still creating the lake's tables
                        continue
            # a `newsmon run` by hand meanwhile uses serve's server (no temporary one): its run shows there
            record = json.loads((tmp_path / "home" / "newsmon-serve.json").read_text())
            by_hand = subprocess.run([sys.executable, "-m", "newsmon.cli", "run", "--json", "--config", str(cfg)],
                                     env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
            ad_hoc = urllib.request.Request(f"{record['api']}/flow_runs/count", method="POST",
                                            data=json.dumps({"flow_runs": {"deployment_id": {"is_null_": True}}})
                                            .encode(), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(ad_hoc, timeout=30) as r:
                runs_by_hand = json.load(r)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()
    out = (tmp_path / "serve.log").read_text()
    assert stored == 8, out[-3000:]
    assert "started for this serve" in out
    assert by_hand.returncode == 0 and json.loads(by_hand.stdout)["feeds_total"] == 1, by_hand.stderr[-3000:]
    assert runs_by_hand == 1 and record["pid"] == proc.pid
    assert not (tmp_path / "home" / "newsmon-serve.json").exists()  # serve gone: runs start their own again
