"""Crash safety and overlapping runs, with real `newsmon run` processes against one Prefect API server.

The kill test SIGKILLs runs at random moments (the whole process group: the run and its extraction workers),
reruns until a run completes, then compares the warehouse and the alerts received with an undisturbed run on
a fresh warehouse. The lake is read through a read-only reader (as analysts read it), the pipeline's state
database with sqlite3, read-only, between runs.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from newsmon.demo.receiver import WebhookReceiver
from newsmon.errors import StorageError
from tests.conftest import lake_query
from tests.hostile_servers import ManyFeedSite

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
FEEDS, ITEMS = 20, 6  # 120 articles with pages, 24 of them alert
STORIES, ALERTS = FEEDS * ITEMS, FEEDS * ITEMS // 5
ALERT_ID = re.compile(r"Alert-Id: (\w+)")


@pytest.fixture(scope="module")
def api_env(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for `newsmon run` subprocesses: the harness's Prefect API server (one for all runs)."""
    from prefect.settings import PREFECT_API_URL

    return os.environ | {"PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                         "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
                         "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}


class TimedReceiver(WebhookReceiver):
    """The webhook inbox, noting when each alert arrived; `delay_s` per message widens the delivery phase."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.arrivals: list[tuple[float, str]] = []  # (time, Alert-Id): a digest message adds one per alert
        self.messages: list[tuple[float, str, bool]] = []  # (time, idempotency key, key also in the body)
        self.trap: tuple[int, Callable[[], None]] | None = None  # (n, action): act on the n-th arrival
        self._books = threading.Lock()  # posts from two runs at once: one message's bookkeeping at a time

    def _accept(self, body: bytes, headers: dict[str, str]) -> bool:
        time.sleep(self.delay_s)
        with self._books:
            ok = super()._accept(body, headers)
            now, text, key = time.monotonic(), self.received[-1].get("message", "") if ok else "", ""
            if ok:
                key = headers.get("Idempotency-Key", "")
                self.messages.append((now, key, bool(key) and re.search(rf"(Alert|Digest)-Id: {key}\b", text)
                                      is not None))
                self.arrivals += [(now, aid) for aid in ALERT_ID.findall(text)]
            if self.trap is not None:
                n, action = self.trap
                self.trap = (n - 1, action) if n > 1 else None
                if n == 1:
                    action()  # accepted and recorded here, but the sender never hears back
        return ok


def config(folder: Path, site: ManyFeedSite, alert_url: str, *, name: str = "newsmon.toml") -> Path:
    feeds = "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in site.feed_urls())
    path = folder / name
    path.write_text(f"""
[warehouse]
path = "wh/newsmon.duckdb"
[http]
allow_private_networks = true
timeout_s = 10
per_host_delay_s = 0
jitter_s = 0
[alerts]
urls = ["{alert_url}"]
spike_min_stories = 1_000_000  # story alerts only: a spike's key has the time in it, so runs would differ
max_per_run = 1_000  # one message per story, so both runs can be compared alert by alert
{feeds}""", encoding="utf-8")
    return path


def start(cfg: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "newsmon.cli", "run", "--config", str(cfg), "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def state_rows(cfg: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the pipeline's state database (SQLite), opened read-only."""
    con = sqlite3.connect(f"file:{cfg.parent / 'wh' / 'newsmon.state.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def count(cfg: Path, sql: str, *, state: bool = False) -> int:
    """A count from the lake (or the state database) between runs: 0 before a run got as far as making it."""
    wh = cfg.parent / "wh"
    if not (wh / ("newsmon.state.sqlite" if state else "newsmon.ducklake")).exists():
        return 0
    if state:
        return int(state_rows(cfg, sql)[0][0])
    try:
        return int(lake_query(cfg, sql)[0][0])
    except StorageError as exc:  # killed between creating the catalog and committing its tables
        if "does not exist" not in str(exc):
            raise
        return 0


@dataclass
class Attempt:
    started: float
    ended: float = 0.0
    killed: bool = False
    mode: str = "random moment"
    stored_before: int = 0
    stored_after: int = 0
    arrivals: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def killing_spree(cfg: Path, env: dict[str, str], site: ManyFeedSite, rx: TimedReceiver, horizon_s: float,
                  rng: random.Random) -> list[Attempt]:
    """Run, SIGKILL at a random moment, run again...: KILLS kills, then runs until one completes.

    The site shows more items per feed as attempts go on, so killed runs meet new work at every stage. Each
    kill comes at a uniform random moment within the duration of the last run that completed.
    """
    attempts: list[Attempt] = []
    while True:
        shown, site.visible = site.visible, min(site.items, 1 + len(attempts) // 2)
        alerts_due = site.visible > shown or count(cfg, "SELECT count(*) FROM alerts WHERE status IN "
                                                   "('held', 'pending')", state=True)
        a = Attempt(time.monotonic(), stored_before=count(cfg, "SELECT count(*) FROM poll_runs"))
        proc = start(cfg, env)
        kills = sum(x.killed for x in attempts)

        def kill(proc: subprocess.Popen[str] = proc, a: Attempt = a) -> None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the run and its extraction workers, like the OOM killer
                a.killed = True

        at = rng.uniform(0.2, horizon_s)
        last_kill = next((x.mode for x in reversed(attempts) if x.killed), "")
        if kills < KILLS and alerts_due and last_kill != "on-alert":  # aim at the window, every other kill
            a.mode, at = "on-alert", horizon_s * 2
            rx.trap = (rng.randint(1, 3), kill)
        try:
            proc.wait(timeout=at if kills < KILLS else 180)
        except subprocess.TimeoutExpired:
            kill()
        proc.communicate()
        rx.trap = None
        a.ended = time.monotonic()
        a.stored_after = count(cfg, "SELECT count(*) FROM poll_runs")
        a.arrivals = [aid for t, aid in rx.arrivals if a.started <= t <= a.ended]
        a.messages = [key for t, key, _ in rx.messages if a.started <= t <= a.ended]
        attempts.append(a)
        if not a.killed:
            assert proc.returncode == 0
            horizon_s = a.ended - a.started
            if kills >= KILLS and site.visible == site.items:
                return attempts


def last_message_ids(a: Attempt, rx: TimedReceiver) -> set[str]:
    """The Alert-Ids in the last message a run delivered."""
    times = [t for t, _, _ in rx.messages if a.started <= t <= a.ended]
    return {aid for t, aid in rx.arrivals if times and t == times[-1]}


def articles(cfg: Path) -> set[tuple[Any, ...]]:
    return set(lake_query(cfg, "SELECT article_id, url, title, content_hash, extraction_status, word_count "
                               "FROM articles"))


def check_integrity(cfg: Path) -> None:
    """After a clean run: every lake table and view scans, keys are unique in the lake (DuckLake has no unique
    constraints), both SQLite files (state and catalog) pass their integrity check, no run is left claimed,
    and the state database agrees with the lake on stories, stored runs and alerts."""
    objects = lake_query(cfg, "SELECT table_name, 'table' FROM duckdb_tables() WHERE database_name = 'newsmon' "
                              "UNION ALL SELECT view_name, 'view' FROM duckdb_views() "
                              "WHERE database_name = 'newsmon' AND NOT internal")
    tables = {name for name, kind in objects if kind == "table"}
    assert {"articles", "alerts", "poll_runs", "feeds", "tags", "verdicts"} <= tables, objects
    for name, _ in objects:
        lake_query(cfg, f"SELECT * FROM {name}")
    for t, key in [("articles", "article_id"), ("alerts", "alert_id"), ("poll_runs", "run_id"),
                   ("feeds", "feed_url"), ("articles", "url")]:
        total, distinct = lake_query(cfg, f"SELECT count(*), count(DISTINCT {key}) FROM {t}")[0]
        assert total == distinct, (t, key, total, distinct)
    assert state_rows(cfg, "PRAGMA integrity_check") == [("ok",)]
    catalog = sqlite3.connect(f"file:{cfg.parent / 'wh' / 'newsmon.ducklake'}?mode=ro", uri=True)
    try:
        assert catalog.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        catalog.close()
    assert state_rows(cfg, "SELECT run_id FROM runs WHERE state = 'claimed'") == []
    lake_ids = {r[0] for r in lake_query(cfg, "SELECT article_id FROM articles")}
    assert {r[0] for r in state_rows(cfg, "SELECT article_id FROM stories")} == lake_ids
    # a run's row reached the lake exactly when the state says it was stored (recovery finished it or released it)
    assert {r[0] for r in state_rows(cfg, "SELECT run_id FROM runs WHERE state = 'stored'")} == \
        {r[0] for r in lake_query(cfg, "SELECT run_id FROM poll_runs")}
    # the lake's alert mirror is the ledger
    assert set(state_rows(cfg, "SELECT alert_id, status FROM alerts")) == \
        set(lake_query(cfg, "SELECT alert_id, status FROM alerts"))


def test_sigkill_at_random_moments_loses_and_doubles_nothing(api_env: dict[str, str], tmp_path: Path) -> None:
    seed = int(os.environ.get("NEWSMON_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    ref_dir, kill_dir = tmp_path / "reference", tmp_path / "killed"
    ref_dir.mkdir()
    kill_dir.mkdir()
    t0 = time.monotonic()
    with ManyFeedSite(feeds=FEEDS, items=ITEMS) as site, TimedReceiver() as rx:
        # one alert URL for both warehouses, so both runs' alerts carry the same Alert-Ids
        ref_cfg, kill_cfg = config(ref_dir, site, rx.apprise_url()), config(kill_dir, site, rx.apprise_url())
        began = time.monotonic()
        ref = finish(start(ref_cfg, api_env))
        longest = time.monotonic() - began
        ref_ids = Counter(aid for _, aid in rx.arrivals)
        rx.arrivals.clear()
        rx.messages.clear()
        attempts = killing_spree(kill_cfg, api_env, site, rx, longest, rng)
    wall = time.monotonic() - t0
    killed = [a for a in attempts if a.killed]
    report = (f"seed {seed}: {len(killed)} kills over {len(attempts)} runs in {wall:.0f} s (undisturbed run "
              f"{longest:.1f} s); {sum(a.mode == 'on-alert' for a in killed)} as the receiver accepted an alert; "
              f"{sum(a.stored_after > a.stored_before for a in killed)} after the run's batch was committed, "
              f"{sum(bool(a.arrivals) for a in killed)} during alert delivery; "
              f"{sum(n - 1 for n in Counter(aid for _, aid in rx.arrivals).values())} alerts delivered twice; "
              f"{len(rx.messages)} messages, {sum(len(set(ALERT_ID.findall(m['message']))) > 1 for m in rx.received)} "
              "of them digests")
    print(report)

    assert ref["new_articles"] == STORIES and ref["alerts_sent"] == ref["alerts_queued"] == ALERTS
    assert len(killed) >= KILLS and sum(a.mode == "on-alert" for a in killed) >= 2, report
    # articles: the same ones, none lost, none twice (same ids, urls, titles, text hashes)
    assert articles(kill_cfg) == articles(ref_cfg), report
    # alerts: the same set by Alert-Id, all marked sent
    got_ids = Counter(aid for _, aid in rx.arrivals)
    assert set(got_ids) == set(ref_ids) and len(ref_ids) == ALERTS and max(ref_ids.values()) == 1, report
    assert state_rows(kill_cfg, "SELECT status, count(*) FROM alerts GROUP BY status") == [("sent", ALERTS)]
    assert lake_query(kill_cfg, "SELECT status, count(*) FROM alerts GROUP BY ALL") == [("sent", ALERTS)]
    # a repeat only for the one window: accepted by the receiver, then killed before the ledger said "sent"
    # (an alert can be caught in that window more than once): every message that is repeated later must be
    # the last message a killed run delivered; each carries its key as a header and in the body
    assert all(in_body for _, _, in_body in rx.messages) and rx.messages, report
    keys = Counter(key for _, key, _ in rx.messages)
    for key, n in keys.items():
        if n > 1:
            carriers = [a for a in attempts for k in a.messages if k == key]
            assert len(carriers) == n and all(a.killed and a.messages[-1] == key for a in carriers[:-1]), report
    for aid, n in got_ids.items():  # an alert sent again in a different digest: the first went in the window
        if n > 1:
            carriers = [a for a in attempts if aid in a.arrivals]
            assert all(a.killed and aid in last_message_ids(a, rx) for a in carriers[:-1]), (aid, report)
    assert sum(n - 1 for n in keys.values()) <= len(killed)
    check_integrity(kill_cfg)


def test_two_runs_started_at_once_both_succeed_and_store_and_alert_each_story_once(api_env: dict[str, str],
                                                                                  tmp_path: Path) -> None:
    """No run lock: two runs of one config at the same moment both run to the end; the state database's claims
    give each story to one of them, and each alert is sent by one of them."""
    with ManyFeedSite(feeds=2, items=5) as site, TimedReceiver(delay_s=0.5) as rx:
        site.page_latency_s = 1.0  # 5 s of pages per run (2 at a time): each run polls before the other stores
        cfg = config(tmp_path, site, rx.apprise_url())
        runs = [start(cfg, api_env), start(cfg, api_env)]
        first, second = (finish(p) for p in runs)
    report = f"{first['storage']}; {second['storage']}"
    assert first["new_articles"] == second["new_articles"] == 10, report  # both fetched every story...
    stored = [int(re.match(r"stored (\d+) articles", s["storage"]).group(1)) for s in (first, second)]  # type: ignore[union-attr]
    assert sum(stored) == 10, report  # ...and stored each once between them
    assert lake_query(cfg, "SELECT count(*), count(DISTINCT article_id), count(DISTINCT url) FROM articles") == \
        [(10, 10, 10)]
    ids = [aid for _, aid in rx.arrivals]
    assert len(ids) == len(set(ids)) == first["alerts_sent"] + second["alerts_sent"] == 2, (ids, report)
    assert len(rx.messages) == 2
    assert state_rows(cfg, "SELECT status, count(*) FROM alerts GROUP BY status") == [("sent", 2)]
    check_integrity(cfg)
