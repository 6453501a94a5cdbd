"""PostgreSQL going away between runs (a restart, an upgrade, a failover): the run that finds it down fails
with one clear line and the warehouse exit code, stores and sends nothing, and the first run after it is back
finishes the work: every story stored once, every match alerted once, no feed's state lost.

The server here is this test's own (the session's shared one is never stopped)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root
from tests.conftest import config_text, lake_query
from tests.pg import postgres_server
from tests.test_hostile_process import NEWSMON, user_env

pytestmark = pytest.mark.slow


def run(cfg: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NEWSMON), "run", "--json", "--config", str(cfg)], cwd=cfg.parent,
                          env=user_env(home), capture_output=True, text=True, timeout=420)


def test_postgresql_restarting_between_runs_costs_one_failed_run_and_no_data(tmp_path: Path) -> None:
    with postgres_server() as pg, SiteServer(demo_site_root()) as site, WebhookReceiver() as rx:
        state, lake = pg.createdb("state"), pg.createdb("lake")
        warehouse = (f'path = "{tmp_path}/wh/newsmon.duckdb"\nstate = "{pg.url(state)}"\n'
                     f'catalog = "postgres:{pg.conninfo(lake)}"\ndata_path = "{tmp_path}/shared"')
        cfg = tmp_path / "newsmon.toml"

        def configure(*feeds: str) -> None:
            cfg.write_text(config_text([(f, site.url(f"/feeds/{f}.xml")) for f in feeds], [rx.apprise_url()],
                                       warehouse=warehouse), encoding="utf-8")

        home = tmp_path / "prefect-home"
        configure("en")
        first = run(cfg, home)
        assert first.returncode == 0, first.stderr[-3000:]
        stored_first = json.loads(first.stdout)["new_articles"]
        sent_first = len(rx.received)
        assert stored_first >= 5 and sent_first >= 1

        pg.stop("fast")  # down between runs; the next run also brings a feed it has not polled yet
        configure("en", "ru")
        down = run(cfg, home)
        pg.start()
        after = run(cfg, home)
        again = run(cfg, home)
        articles = lake_query(cfg, "SELECT count(*), count(DISTINCT article_id), count(DISTINCT url) FROM articles")
        alerts = lake_query(cfg, "SELECT count(*), count(DISTINCT cluster_id), "
                                 "count(*) FILTER (WHERE status = 'sent') FROM alerts")
        feeds = {r[0] for r in lake_query(cfg, "SELECT feed_name FROM articles")}

    # the run that found PostgreSQL down: exit 3, one line that names what failed and what to do
    assert down.returncode == 3, (down.stdout[-2000:], down.stderr[-3000:])
    lines = [line for line in down.stderr.splitlines() if line.strip()]
    assert "Traceback" not in down.stderr and "Traceback" not in down.stdout, down.stderr[-3000:]
    error = [line for line in lines if "error" in line.lower()]
    assert len(error) == 1, lines
    assert "PostgreSQL" in error[0] and str(pg.port) in error[0], error[0]
    # the first run after the restart does what the failed one could not, and nothing twice
    assert after.returncode == 0, after.stderr[-3000:]
    summary = json.loads(after.stdout)
    assert summary["new_articles"] >= 5 and summary["failed_feeds"] == []
    assert json.loads(again.stdout)["new_articles"] == 0 and again.returncode == 0
    total, distinct, urls = articles[0]
    assert total == distinct == urls == stored_first + summary["new_articles"]
    # each matching story alerted once and delivered once; the failed run sent its one failure notice
    notices = [p["title"] for p in rx.received if p["title"].endswith(" failed")]
    stories = [p for p in rx.received if not p["title"].endswith(" failed")]
    assert len(notices) == 1 and "poll-newsmon" in notices[0]
    assert alerts[0][0] == alerts[0][1] == alerts[0][2] == len(stories) == len({p["message"] for p in stories})
    assert feeds == {"en", "ru"}
