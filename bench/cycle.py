"""newsmon's cycle on the bench site: cold (`newsmon run` in a fresh process) and warm (later flow calls in one
process whose Prefect API server is already up), the unchanged re-poll, and warehouse scale (10k vs 1M).

    python -m bench.cycle CONFIG...   (the warm worker) runs poll_feeds on each config in turn and prints one
    JSON line per run {"config", "start", "wall_s", "summary"}; the first config is the warm-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from bench.procs import TreeMonitor
from warehouse import open_warehouse

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


def run_cold(config: Path) -> dict[str, Any]:
    """`newsmon run --json` in a fresh process: imports, Prefect's temporary server, the flow, shut-down."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "newsmon.cli", "run", "--json", "--config", str(config)],
                            cwd=ROOT, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mon = TreeMonitor(proc.pid).start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    mon.stop()
    if proc.returncode != 0:
        raise SystemExit(f"bench: cold run failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "summary": json.loads(out), "peak_pss_mb": mon.peak_pss_mb(),
            "own_pss_mb": mon.peak_own_pss_mb(), "server_pss_mb": mon.peak_server_pss_mb(),
            "peak_rss_mb": mon.peak_rss_mb(), "cpu_s": mon.samples[-1].cpu_s if mon.samples else 0.0}


def run_warm(configs: Sequence[Path]) -> list[dict[str, Any]]:
    """Every config in one worker process (the first warms Prefect up); one result per config."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.cycle", *map(str, configs)], cwd=ROOT,
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
    """A warehouse holding `articles` generated articles (with a verdict and a tag row each); seconds taken."""
    start = time.perf_counter()
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    open_warehouse(path)  # schema and migrations, as newsmon makes them
    con = duckdb.connect(str(path))
    con.execute("""INSERT INTO articles BY NAME SELECT 'pre' || i AS article_id,
        'https://old.example/' || i AS url, 'https://old.example/feed/' || (i % 200) AS feed_url,
        'old feed ' || (i % 200) AS feed_name, 'https://old.example/' || i AS entry_key, 'Old story ' || i AS title,
        'summary of old story ' || i AS summary, 'Story ' || i || ' ' || repeat('body text of an older article ', 40)
        AS text, 'en' AS language, now() - to_minutes(i) AS published_at, now() - to_minutes(i) AS fetched_at,
        240 AS word_count, 'ok' AS extraction_status, md5(i::VARCHAR) AS content_hash, 'prefill' AS run_id
        FROM range(?) t(i)""", [articles])
    con.execute("""INSERT INTO verdicts SELECT 'pre' || i, 'az-ru', 'v0', i % 500 = 0, (i % 7)::DOUBLE,
        CASE WHEN i % 500 = 0 THEN ['energy'] ELSE [] END, now() FROM range(?) t(i)""", [articles])
    con.execute("""INSERT INTO tags SELECT 'pre' || i, 'az-ru', 'energy', (i % 7)::DOUBLE, i % 500 = 0, 'v0', [],
        now() FROM range(?) t(i)""", [articles])
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - start


def _worker(configs: list[str]) -> None:
    from newsmon.cli import prefect_env

    prefect_env(verbose=False)
    from flows.poll import poll_feeds

    for config in configs:
        start = time.time()
        t0 = time.perf_counter()
        summary = poll_feeds(config=config)
        print(json.dumps({"config": config, "start": start, "wall_s": time.perf_counter() - t0,
                          "summary": summary}, default=str), flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1:])
