"""newsmon's cycle on the bench site: cold (`newsmon run` in a fresh process) and warm (later flow calls in one
process whose Prefect API server is already up), the unchanged re-poll, and warehouse scale (10k vs 1M).

    python -m bench.cycle CONFIG...   (the warm worker) runs poll_feeds on each config in turn and prints one
    JSON line per run {"config", "start", "wall_s", "summary"}; the first config is the warm-up.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import TreeMonitor
from bench.warehouse import fill
from newsmon.config import WarehouseSettings

ROOT = Path(__file__).resolve().parents[1]


def write_config(path: Path, feeds: Sequence[str], warehouse: Path, alert_url: str,
                 interval_minutes: float = 15) -> Path:
    feed_tables = "".join(f'\n[[feeds]]\nname = "bench feed {i}"\nurl = "{u}"\n' for i, u in enumerate(feeds))
    path.write_text(f"""[warehouse]
path = "{warehouse}"

[http]
allow_private_networks = true

[schedule]
interval_minutes = {interval_minutes}

[alerts]
urls = ["{alert_url}"]
{feed_tables}""", encoding="utf-8")
    return path


def bench_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL="WARNING")
    env.pop("PREFECT_API_URL", None)
    return env


def run_cold(config: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`newsmon run --json` in a fresh process: imports, Prefect's temporary server (unless `env`, default
    bench_env(), names an API), the flow, shut-down."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "newsmon.cli", "run", "--json", "--config", str(config)],
                            cwd=ROOT, env=env or bench_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mon = TreeMonitor(proc.pid).start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    mon.stop()
    if proc.returncode != 0:
        raise SystemExit(f"bench: cold run failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "summary": json.loads(out), "peak_pss_mb": mon.peak_pss_mb(),
            "own_pss_mb": mon.peak_own_pss_mb(), "server_pss_mb": mon.peak_server_pss_mb(),
            "peak_rss_mb": mon.peak_rss_mb(), "cpu_s": mon.samples[-1].cpu_s if mon.samples else 0.0}


def run_warm(configs: Sequence[Path | str], module: str = "bench.cycle") -> list[dict[str, Any]]:
    """Every config in one worker process (the first warms Prefect up); one result per config. `module` is the
    worker (`python -m MODULE ARGS...`, printing one JSON line per run as bench.cycle's does)."""
    proc = subprocess.Popen([sys.executable, "-m", module, *map(str, configs)], cwd=ROOT,
                            env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mon = TreeMonitor(proc.pid).start()
    out, err = proc.communicate()
    mon.stop()
    if proc.returncode != 0:
        raise SystemExit(f"bench: warm worker failed ({proc.returncode}):\n{err[-3000:]}")
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in results:
        window = [s for s in mon.samples if r["start"] <= s.t <= r["start"] + r["wall_s"] + 0.3]
        r["peak_pss_mb"] = max((s.pss_mb for s in window), default=0.0)
        r["own_pss_mb"] = max((s.pss_mb - s.server_pss_mb for s in window), default=0.0)
        r["server_pss_mb"] = max((s.server_pss_mb for s in window), default=0.0)
        r["peak_rss_mb"] = max((s.rss_max_mb for s in window), default=0.0)
    return results


def prefill(path: Path, articles: int) -> float:
    """A warehouse holding `articles` generated stories (article, 3 tags, verdict, cluster, aliases in the lake;
    their identities, clusters and alerts in the state database), one a minute up to now; seconds taken."""
    start = time.perf_counter()
    settings = WarehouseSettings(path=path)
    remove_warehouse(settings)
    fill(settings, articles, prefix="pre", feeds=200, newest=datetime.now(UTC), step_minutes=1)
    return time.perf_counter() - start


def remove_warehouse(settings: WarehouseSettings) -> None:
    for stale in (Path(settings.catalog_target), settings.state_path):
        for f in (stale, Path(f"{stale}-wal"), Path(f"{stale}-shm"), Path(f"{stale}.writer-lock")):
            f.unlink(missing_ok=True)
    shutil.rmtree(settings.data_folder, ignore_errors=True)


def copy_warehouse(src: Path, dst: Path) -> None:
    """A copy of the warehouse named by `src` (its catalog, data folder and state database) under `dst`. The
    catalog records its data folder's absolute path: the copy's is pointed at its own folder."""
    a, b = WarehouseSettings(path=src), WarehouseSettings(path=dst)
    remove_warehouse(b)
    for s, d in ((a.catalog_target, b.catalog_target), (a.state_path, b.state_path)):
        with sqlite3.connect(s) as old, sqlite3.connect(d) as new:
            old.backup(new)
        old.close()
        new.close()
    shutil.copytree(a.data_folder, b.data_folder)
    with sqlite3.connect(b.catalog_target) as db:
        db.execute("UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path'", [f"{b.data_folder}/"])
    db.close()


def _worker(configs: list[str]) -> None:
    from newsmon.cli import prefect_env

    prefect_env(verbose=False)
    from flows.ephemeral import run_api
    from flows.poll import poll_feeds

    for config in configs:
        start = time.time()
        t0 = time.perf_counter()
        with run_api():  # as `newsmon run` calls the flow
            summary = poll_feeds(config=config)
        print(json.dumps({"config": config, "start": start, "wall_s": time.perf_counter() - t0,
                          "summary": summary}, default=str), flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1:])
