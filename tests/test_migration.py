"""A warehouse made by the previous release (one DuckDB 2.0 file, schema v5) moves into the state database and
the DuckLake with every article, tag, alert and feed state; runs after it carry on as if nothing happened."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from newsmon.cli import main
from newsmon.config import WarehouseSettings
from tests.conftest import DATA, lake_query, make_warehouse

LEGACY = DATA / "legacy"
EXPECTED = json.loads((LEGACY / "v5-demo.expected.json").read_text())


def old_warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "newsmon.duckdb"
    path.parent.mkdir()
    shutil.copy(LEGACY / "v5-demo.duckdb", path)
    return path


def test_a_v5_file_moves_over_on_first_use_keeping_every_record_and_state(tmp_path: Path) -> None:
    path = old_warehouse(tmp_path)
    wh = make_warehouse(path)  # what the first run does
    tables = {t: n for t, n in EXPECTED["tables"].items() if t not in ("meta", "store_log")}
    for table, n in {**tables, **EXPECTED["views"]}.items():
        assert lake_query(path, f"SELECT count(*) FROM {table}") == [(n,)], table
    assert sorted(r[0] for r in lake_query(path, "SELECT article_id FROM articles")) == EXPECTED["article_ids"]
    assert dict(lake_query(path, "SELECT alert_id, status FROM alerts")) == EXPECTED["alerts"]
    states = wh.runs.feed_states()
    assert {u: {"etag": s.etag, "last_modified": s.last_modified} for u, s in states.items()} == EXPECTED["feeds"]
    evidence = lake_query(path, "SELECT count(*) FILTER (WHERE text IS NOT NULL) FROM tag_evidence")
    assert evidence == [(EXPECTED["views"]["tag_evidence"],)]
    # the identity index, clusters and the ledger now live in the state database
    state = sqlite3.connect(path.with_suffix(".state.sqlite"))
    assert state.execute("SELECT count(*) FROM stories").fetchone()[0] == EXPECTED["tables"]["articles"]
    assert state.execute("SELECT count(*) FROM aliases").fetchone()[0] == (
        EXPECTED["tables"]["entry_aliases"] + EXPECTED["tables"]["article_aliases"])
    assert state.execute("SELECT count(*) FROM clusters WHERE signature IS NOT NULL").fetchone()[0] == 14
    assert dict(state.execute("SELECT alert_id, status FROM alerts")) == EXPECTED["alerts"]
    pending = [a.alert_id for a in wh.runs.pending_alerts(max_attempts=99)]
    assert pending == [k for k, v in EXPECTED["alerts"].items() if v == "pending"]
    assert all(a.title and a.evidence for a in wh.runs.pending_alerts(max_attempts=99) if a.kind == "story")
    # the old file is kept beside, renamed; opening again changes nothing
    assert not path.exists() and path.with_name("newsmon.duckdb.migrated").exists()
    wh.close()
    make_warehouse(path).close()
    assert lake_query(path, "SELECT count(*) FROM articles") == [(EXPECTED["tables"]["articles"],)]


def test_newsmon_migrate_is_the_documented_command(tmp_path: Path, capsys) -> None:
    path = old_warehouse(tmp_path)
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "data/newsmon.duckdb"\nlock_timeout_s = 60\n', encoding="utf-8")
    assert main(["migrate", "--config", str(cfg)]) == 0
    assert "migrated" in capsys.readouterr().out
    assert main(["sql", "--config", str(cfg), "--format", "csv", "SELECT count(*) AS n FROM matches"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", str(EXPECTED["views"]["matches"])]
    assert main(["migrate", "--config", str(cfg)]) == 0
    assert "nothing to migrate" in capsys.readouterr().out
    assert WarehouseSettings(path=path).state_path.exists()
