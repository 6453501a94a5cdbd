"""A run stores its new pages in parts ([extraction] batch_pages a part): each extracted batch is tagged,
clustered, alert-planned and stored (its own claim and lake commit) before the next is fetched, and the feed
results go with the last part. Real `newsmon run` processes against one Prefect API server, a real site.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lake_query, make_warehouse
from tests.hostile_servers import ManyFeedSite
from tests.test_kill import TimedReceiver, api_env, config, finish, start, state_rows
from tests.test_warehouse import FEED, NOW, alert, batch, q
from warehouse.store import RunPart

pytestmark = pytest.mark.slow

__all__ = ["api_env"]  # the fixture, shared with tests/test_kill.py


class CountingSite(ManyFeedSite):
    """ManyFeedSite that counts article page requests and can act on the n-th (`trap`); with `copies`, feed 1
    carries copies of feed 0's stories (the same page at another address, the same title)."""

    def __init__(self, feeds: int, items: int, match_every: int, *, copies: bool = False) -> None:
        super().__init__(feeds, items, match_every)
        self.copies = copies
        self.pages = 0
        self.trap: tuple[int, Any] | None = None
        self._count = threading.Lock()

    def render(self, path: str) -> tuple[bytes | None, str]:
        if path.startswith("/a/"):
            with self._count:
                self.pages += 1
                if self.trap is not None and self.pages == self.trap[0]:
                    self.trap[1]()
        return super().render(path)

    def title(self, f: int, i: int) -> str:
        return super().title(0 if self.copies and f == 1 else f, i)

    def _page(self, f: int, i: int) -> bytes:
        return super()._page(0 if self.copies and f == 1 else f, i)


def batched_config(folder: Path, site: ManyFeedSite, alert_url: str, batch_pages: int) -> Path:
    cfg = config(folder, site, alert_url)
    cfg.write_text(cfg.read_text(encoding="utf-8") + f"\n[extraction]\nbatch_pages = {batch_pages}\n",
                   encoding="utf-8")
    return cfg


def lake_count(cfg: Path, sql: str) -> int:
    return int(lake_query(cfg, sql)[0][0])


def test_a_run_killed_after_its_first_part_keeps_it_and_the_next_run_stores_the_rest_once(
        api_env: dict[str, str], tmp_path: Path) -> None:
    feeds, items, batch = 3, 4, 5  # 12 stories in parts of 5, 5, 2; stories 0, 3, 6 and 9 match
    matching = sum(1 for f in range(feeds) for i in range(items) if (f * items + i) % 3 == 0)
    with CountingSite(feeds, items, 3) as site, TimedReceiver() as rx:
        cfg = batched_config(tmp_path, site, rx.apprise_url(), batch)
        proc = start(cfg, api_env)

        def kill() -> None:
            # the first page of the second batch, asked while the run stores the first (the next batch's pages
            # stream meanwhile): held until that part is stored, so the second part cannot be, then the run dies
            ends = time.monotonic() + 120
            while state_rows(cfg, "SELECT count(*) FROM runs WHERE state = 'stored'") != [(1,)]:
                assert time.monotonic() < ends, "the first part was never stored"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)

        site.trap = (batch + 1, kill)
        proc.communicate(timeout=180)
        assert proc.returncode == -signal.SIGKILL
        site.trap = None

        # the first part is in the lake and finished in the state database; no run row, no feed state yet
        assert lake_count(cfg, "SELECT count(*) FROM articles") == batch
        assert lake_count(cfg, "SELECT count(*) FROM poll_runs") == 0
        parts = state_rows(cfg, "SELECT run_id, state FROM runs")
        assert len(parts) == 1 and parts[0][0].endswith(".0") and parts[0][1] == "stored"
        assert state_rows(cfg, "SELECT count(*) FROM feeds WHERE etag IS NOT NULL OR next_poll_at IS NOT NULL"
                          ) == [(0,)]
        first_alerts = state_rows(cfg, "SELECT count(*) FROM alerts WHERE status = 'pending'")[0][0]
        assert rx.arrivals == []  # killed before delivering: the first part's alerts wait in the ledger

        # the next run re-reads every feed, finds the stored entries known and stores the other 7 in two parts
        site.pages = 0
        summary = finish(start(cfg, api_env))
        assert summary["feeds_ok"] == feeds and summary["failed_feeds"] == []
        assert summary["new_articles"] == feeds * items - batch
        assert site.pages == feeds * items - batch  # the stored part's pages are not fetched again
        assert summary["alerts_queued"] == matching - first_alerts
        assert lake_count(cfg, "SELECT count(*) FROM articles") == feeds * items
        assert lake_count(cfg, "SELECT count(DISTINCT article_id) FROM articles") == feeds * items
        assert lake_count(cfg, "SELECT count(DISTINCT url) FROM articles") == feeds * items
        # one run row for the run, with the totals of both its parts
        assert lake_query(cfg, "SELECT new_articles, matches, alerts_queued, feeds_total FROM poll_runs") == [
            (feeds * items - batch, len(summary["matches"]), summary["alerts_queued"], feeds)]
        assert sorted(s for _, s in state_rows(cfg, "SELECT run_id, state FROM runs")) == ["stored"] * 3
        received = [aid for _, aid in rx.arrivals]
        assert len(received) == matching and len(set(received)) == matching  # each story alerted once
        assert lake_count(cfg, "SELECT count(*) FROM alerts WHERE status = 'sent'") == matching

        # and the run after that finds nothing new and sends nothing again
        again = finish(start(cfg, api_env))
        assert again["new_articles"] == 0 and again["alerts_queued"] == 0
        assert lake_count(cfg, "SELECT count(*) FROM articles") == feeds * items
        assert len(rx.arrivals) == matching


def test_copies_of_a_story_in_different_parts_form_one_cluster_and_alert_once(
        api_env: dict[str, str], tmp_path: Path) -> None:
    # feed 1 repeats feed 0's three stories at other addresses; one page a part, so each copy is stored in
    # another part than its original, and the later of the two must join the cluster the earlier stored
    with CountingSite(2, 3, 3, copies=True) as site, TimedReceiver() as rx:
        cfg = batched_config(tmp_path, site, rx.apprise_url(), 1)
        summary = finish(start(cfg, api_env))
        assert summary["new_articles"] == 6
        assert len(summary["matches"]) == 2  # story 0 and its copy
        assert summary["alerts_queued"] == 1
        assert len(rx.arrivals) == 1
        assert lake_query(cfg, "SELECT articles, len(outlets) FROM story_clusters ORDER BY title") == [(2, 2)] * 3
        assert lake_query(cfg, "SELECT new_articles, matches, alerts_queued FROM poll_runs") == [(6, 2, 1)]
        assert lake_count(cfg, "SELECT count(*) FROM verdicts WHERE match") == 2
        runs = state_rows(cfg, "SELECT run_id FROM runs ORDER BY run_id")
        assert [r[0].rsplit(".", 1)[1] for r in runs] == [str(n) for n in range(6)]


def test_batch_pages_must_be_a_positive_number(tmp_path: Path) -> None:
    from tests.test_cli import newsmon

    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "wh/newsmon.duckdb"\n[extraction]\nbatch_pages = 0\n', encoding="utf-8")
    r: subprocess.CompletedProcess[str] = newsmon("run", "--config", str(cfg))
    assert r.returncode == 2
    assert "extraction.batch_pages" in r.stderr and "Traceback" not in r.stderr


def dead_pid() -> int:
    """The id of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_a_part_killed_after_its_lake_commit_is_finished_and_one_killed_before_it_released(
        tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    wh = make_warehouse(path)
    first = replace(batch("run1", 3, alerts=(alert(0),)), feed_results=())
    stored = wh.runs.store_run(first, finished_at=NOW, part=RunPart(0, last=False))
    assert (stored.articles, stored.matches, stored.alerts) == (3, 1, 1)
    wh.close()
    # what a kill leaves between part 0's lake commit and its finish (its claim open, its alert held), and
    # between part 1's claim and its commit (a story claimed, nothing in the lake); both processes are gone
    state = sqlite3.connect(tmp_path / "w.state.sqlite")
    with state:
        state.execute("UPDATE runs SET state = 'claimed', finished_at = NULL, pid = ? WHERE run_id = 'run1.0'",
                      [dead_pid()])
        state.execute("UPDATE alerts SET status = 'held' WHERE run_id = 'run1.0'")
        state.execute("INSERT INTO runs (run_id, config, started_at, claimed_at, state, host, pid) "
                      "SELECT 'run1.1', config, started_at, claimed_at, 'claimed', host, ? FROM runs "
                      "WHERE run_id = 'run1.0'", [dead_pid()])
        state.execute("INSERT INTO stories (article_id, run_id, feed_url, title, published_at) "
                      "VALUES ('a7', 'run1.1', ?, 'Story 7', '2026-11-27T12:00:00.000000+00:00')", [FEED.url])
    wh = make_warehouse(path)  # opening finds both dead claims
    assert dict(state.execute("SELECT run_id, state FROM runs").fetchall()) == {"run1.0": "stored",
                                                                                 "run1.1": "released"}
    assert state.execute("SELECT status FROM alerts").fetchall() == [("pending",)]
    assert state.execute("SELECT count(*) FROM stories WHERE article_id = 'a7'").fetchone() == (0,)
    assert q(wh, "SELECT count(*) FROM articles") == [(3,)] and q(wh, "SELECT count(*) FROM poll_runs") == [(0,)]
    # the next run stores the rest as its last part: one run row with the totals of both parts, feed state now
    last = wh.runs.store_run(batch("run1", 2, start=3), finished_at=NOW, part=RunPart(1, last=True, earlier=stored))
    assert last.articles == 2
    assert q(wh, "SELECT run_id, new_articles, matches, alerts_queued, feeds_total FROM poll_runs") == [
        ("run1", 5, 1, 1, 1)]
    assert q(wh, "SELECT count(*), count(DISTINCT article_id), min(run_id), max(run_id) FROM articles") == [
        (5, 5, "run1", "run1")]
    assert state.execute("SELECT etag FROM feeds").fetchall() == [('"run1"',)]
    # storing a part again (a retried task) changes nothing
    assert wh.runs.store_run(batch("run1", 2, start=3), finished_at=NOW, part=RunPart(1, last=True)).articles == 0
    assert q(wh, "SELECT count(*) FROM poll_runs") == [(1,)]
    wh.close()
