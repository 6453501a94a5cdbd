"""Crash safety and overlapping runs, with real `newsmon run` processes against one Prefect API server.

The kill test SIGKILLs runs at random moments (the whole process group: the run and its extraction workers),
reruns until a run completes, then compares the warehouse and the alerts received with an undisturbed run on
a fresh warehouse.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from newsmon.demo.receiver import WebhookReceiver
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
    """The webhook inbox, noting when each alert arrived; a small delay per alert widens the delivery phase."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []  # (time, Alert-Id): a digest message adds one per alert
        self.messages: list[tuple[float, str, bool]] = []  # (time, idempotency key, key also in the body)
        self.trap: tuple[int, Callable[[], None]] | None = None  # (n, action): act on the n-th arrival

    def _accept(self, body: bytes, headers: dict[str, str]) -> bool:
        ok = super()._accept(body, headers)
        now, text, key = time.monotonic(), self.received[-1].get("message", "") if ok else "", ""
        if ok:
            key = headers.get("Idempotency-Key", "")
            self.messages.append((now, key, bool(key) and re.search(rf"(Alert|Digest)-Id: {key}\b", text) is not None))
            self.arrivals += [(now, aid) for aid in ALERT_ID.findall(text)]
        if self.trap is not None:
            n, action = self.trap
            self.trap = (n - 1, action) if n > 1 else None
            if n == 1:
                action()  # accepted and recorded here, but the sender never hears back
        return ok


def config(folder: Path, site: ManyFeedSite, alert_url: str, *, name: str = "newsmon.toml",
           lock_timeout_s: float = 60) -> Path:
    feeds = "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in site.feed_urls())
    path = folder / name
    path.write_text(f"""
[warehouse]
path = "wh/newsmon.duckdb"
lock_timeout_s = {lock_timeout_s}
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


def warehouse_rows(cfg: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(cfg.parent / "wh" / "newsmon.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def count(cfg: Path, sql: str) -> int:
    """A count from the warehouse between runs (0 before a run got as far as creating its tables)."""
    if not (cfg.parent / "wh" / "newsmon.duckdb").exists():
        return 0
    try:
        return int(warehouse_rows(cfg, sql)[0][0])
    except duckdb.CatalogException:  # killed between creating the file and its first migration
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
        alerts_due = site.visible > shown or count(cfg, "SELECT count(*) FROM alerts WHERE status = 'pending'")
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
    return set(warehouse_rows(cfg, "SELECT article_id, url, title, content_hash, extraction_status, word_count "
                                   "FROM articles"))


def check_integrity(cfg: Path) -> None:
    """The file opens read-write, checkpoints, every table scans and keys are unique."""
    con = duckdb.connect(str(cfg.parent / "wh" / "newsmon.duckdb"))
    try:
        con.execute("CHECKPOINT")
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        for t in tables:
            con.execute(f"SELECT * FROM {t}").fetchall()
            assert con.execute(f"PRAGMA storage_info('{t}')").fetchall() is not None
        for t, key in [("articles", "article_id"), ("alerts", "alert_id"), ("poll_runs", "run_id"),
                       ("feeds", "feed_url")]:
            total, distinct = con.execute(f"SELECT count(*), count(DISTINCT {key}) FROM {t}").fetchone()
            assert total == distinct, t
        assert con.execute("SELECT count(*), count(DISTINCT url) FROM articles").fetchone()[0] == \
            con.execute("SELECT count(DISTINCT url) FROM articles").fetchone()[0]
        assert con.execute("PRAGMA database_size").fetchall()
    finally:
        con.close()


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
    assert warehouse_rows(kill_cfg, "SELECT status, count(*) FROM alerts GROUP BY ALL") == [("sent", ALERTS)]
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


def lock_is_held(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def wait_for(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_second_run_during_a_slow_one_skips_or_waits_without_duplicates(api_env: dict[str, str],
                                                                         tmp_path: Path) -> None:
    with ManyFeedSite(feeds=2, items=5) as site, TimedReceiver() as rx:
        site.page_latency_s = 1.0
        slow_cfg = config(tmp_path, site, rx.apprise_url())
        impatient = config(tmp_path, site, rx.apprise_url(), name="impatient.toml", lock_timeout_s=1)
        patient = config(tmp_path, site, rx.apprise_url(), name="patient.toml", lock_timeout_s=120)
        lock = tmp_path / "wh" / "newsmon.duckdb.lock"
        lock.parent.mkdir()
        slow = start(slow_cfg, api_env)
        wait_for(lambda: lock_is_held(lock), 60)
        skipped = finish(start(impatient, api_env))
        waiting = start(patient, api_env)
        first = finish(slow)
        second = finish(waiting)
    assert "another newsmon run (pid" in skipped["skipped"] and "this run is skipped" in skipped["skipped"]
    assert first["new_articles"] == 10 and second["new_articles"] == 0
    assert second["feeds_not_modified"] == 2
    assert warehouse_rows(slow_cfg, "SELECT count(*), count(DISTINCT url) FROM articles") == [(10, 10)]
    ids = [aid for _, aid in rx.arrivals]
    assert len(ids) == len(set(ids)) == first["alerts_sent"] == 2
