"""The same warehouse code on PostgreSQL: the state database and the DuckLake catalog in a real server, the
data files in a shared folder. Several processes (shards) write at once: every story once, every alert once."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from newsmon.config import WarehouseSettings
from tests.test_warehouse import NOW, ROOT, alert, batch
from warehouse import Warehouse, open_warehouse

_db = itertools.count()


def pg_settings(postgres, tmp_path: Path) -> WarehouseSettings:
    state, lake = postgres.createdb(f"state{next(_db)}"), postgres.createdb(f"lake{next(_db)}")
    return WarehouseSettings(path=tmp_path / "w.duckdb", catalog=f"postgres:{postgres.conninfo(lake)}",
                             data_path=tmp_path / "shared", state=postgres.url(state))


def q(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.lake.query(sql)[1]


def test_the_warehouse_runs_on_postgresql_unchanged(postgres, tmp_path: Path) -> None:
    settings = pg_settings(postgres, tmp_path)
    wh = open_warehouse(settings)
    assert wh.runs.store_run(batch("r1", 3, alerts=(alert(0),)), finished_at=NOW).articles == 3
    assert wh.runs.store_run(batch("r2", 4, alerts=(alert(0),)), finished_at=NOW).claimed_elsewhere == 3
    assert q(wh, "SELECT count(*), count(DISTINCT article_id) FROM articles") == [(4, 4)]
    assert [a.alert_id for a in wh.runs.pending_alerts(max_attempts=5, now=NOW)] == ["al0"]
    assert wh.runs.feed_states()["https://news.example/rss"].etag == '"r2"'
    assert q(wh, "SELECT title, score FROM matches") == [("Story 0", 7.5)]
    assert not (tmp_path / "w.state.sqlite").exists() and not (tmp_path / "w.ducklake").exists()
    wh.close()
    assert open_warehouse(settings).runs.known_entries(["https://news.example/3"])  # state survives reopening


SHARD = """
import sys
from pathlib import Path
from newsmon.config import WarehouseSettings
from tests.test_warehouse import NOW, alert, batch
from warehouse import open_warehouse
s = WarehouseSettings(path=Path(sys.argv[1]), catalog=sys.argv[2], data_path=Path(sys.argv[3]), state=sys.argv[4])
wh = open_warehouse(s)
start, n = int(sys.argv[5]), int(sys.argv[6])
for k in range(5):  # five runs, each overlapping the other shard's stories
    r = wh.runs.store_run(batch(f"{sys.argv[7]}-{k}", n, start=start + k * n // 2, alerts=(alert(start),)),
                          finished_at=NOW)
    print(r.articles, r.claimed_elsewhere, flush=True)
"""


@pytest.mark.slow
def test_shards_writing_at_once_store_each_story_and_alert_once(postgres, tmp_path: Path) -> None:
    s = pg_settings(postgres, tmp_path)
    open_warehouse(s).close()  # tables made once; the shards then start together
    procs = [subprocess.Popen([sys.executable, "-c", SHARD, str(s.path), s.catalog, str(s.data_path), s.state,
                               str(start), "60", name], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for start, name in ((0, "a"), (30, "b"), (0, "c"))]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    stored = sum(int(line.split()[0]) for out, _ in outs for line in out.splitlines())
    wh = open_warehouse(s)
    (total, distinct), = q(wh, "SELECT count(*), count(DISTINCT article_id) FROM articles")
    assert total == distinct == stored  # every story once, whichever shard got it
    assert total == 30 + 60 + 4 * 30  # ids 0..209: shards a/c cover 0..179, b covers 30..209
    (alerts, distinct_alerts), = q(wh, "SELECT count(*), count(DISTINCT alert_id) FROM alerts")
    # al0, and al30 unless another shard stored story a30 first (then it planned no al30): never one twice
    assert alerts == distinct_alerts and alerts in (1, 2)
    assert q(wh, "SELECT count(*) FROM poll_runs") == [(15,)]


OPEN = """
import sys
from pathlib import Path
from newsmon.config import WarehouseSettings
from warehouse import open_warehouse
s = WarehouseSettings(path=Path(sys.argv[1]), catalog=sys.argv[2], data_path=Path(sys.argv[3]), state=sys.argv[4])
open_warehouse(s).close()
"""


def test_shards_first_runs_create_one_new_warehouse_at_once(postgres, tmp_path: Path) -> None:
    """The first runs of several shards open a warehouse nobody made yet at the same moment: DuckLake's catalog
    tables are created once (racing, three of four such opens failed on PostgreSQL's catalog before)."""
    s = pg_settings(postgres, tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(s.path), s.catalog, str(s.data_path), s.state],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [e[-1500:] for e in errors]
    wh = open_warehouse(s)
    assert q(wh, "SELECT value FROM meta WHERE key = 'lake_version'") == [("2",)]


def test_upkeep_beside_a_write_in_progress_loses_nothing(postgres, tmp_path: Path) -> None:
    """A write's Parquet files are on disk, named by no snapshot, until it commits. newsmon's own writers take
    turns with upkeep (an advisory lock on a PostgreSQL catalog), but a writer that does not (another tool on
    the lake, an older newsmon on one worker during an upgrade) must not lose its rows to upkeep either."""
    from datetime import UTC, datetime

    from warehouse import location
    from warehouse.lake import connect

    s = pg_settings(postgres, tmp_path)
    keeper = open_warehouse(s)
    other = connect(location(s), read_only=False)  # a plain DuckLake connection: no writer's turn
    other.execute("BEGIN TRANSACTION")
    other.execute("CREATE TABLE probe AS SELECT i, repeat('x', 100) AS s FROM range(5000) r(i)")  # > inlining
    assert list(s.data_folder.rglob("*.parquet"))  # written, not committed yet
    keeper.upkeep(now=datetime.now(UTC))
    other.execute("COMMIT")
    assert other.execute("SELECT count(*), sum(length(s)) FROM probe").fetchall() == [(5000, 500000)]
    other.close()
    keeper.close()
