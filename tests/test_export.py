from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from newsmon.cli import main
from newsmon.records import RunBatch
from tests.conftest import make_warehouse
from tests.test_warehouse import NOW, article, batch


@pytest.fixture
def config(tmp_path: Path) -> Path:
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(batch("r1", 4), finished_at=NOW)  # published NOW - i hours: two UTC days
    wh.close()
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    return cfg


def test_parquet_export_is_partitioned_by_utc_day_and_reads_back(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["export", "-c", str(config), str(out)]) == 0
    days = sorted(p.name for p in (out / "articles").iterdir())
    assert days == ["day=2026-11-27"]  # NOW - 0..3 h is still 27 November in UTC
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{out}/articles/*/*.parquet', hive_partitioning=true)"
                       ).fetchone() == (4,)
    tags = con.execute(f"SELECT count(*), min(len(evidence)) FROM read_parquet('{out}/tags/*/*.parquet')").fetchone()
    assert tags == (12, 0)
    assert con.execute(f"SELECT feed_url FROM '{out}/feeds.parquet'").fetchall() == [("https://news.example/rss",)]
    # a second export replaces the first instead of doubling it
    assert main(["export", "-c", str(config), str(out)]) == 0
    assert con.execute(f"SELECT count(*) FROM read_parquet('{out}/articles/*/*.parquet')").fetchone() == (4,)


def test_jsonl_and_csv_exports_and_since(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = RunBatch("r2", "t", NOW, (), (article(50, published_at=datetime(2026, 1, 1, tzinfo=UTC)),), (), ())
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(old, finished_at=NOW)
    wh.close()
    assert main(["export", "-c", str(config), "--format", "jsonl", "--since", "2026-11-27", str(tmp_path / "j")]) == 0
    lines = (tmp_path / "j" / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["article_id"] for line in lines) == ["a0", "a1", "a2", "a3"]
    assert json.loads(lines[0])["published_at"].endswith("+00")  # UTC, with its offset
    assert main(["export", "-c", str(config), "--format", "csv", str(tmp_path / "c")]) == 0
    assert len((tmp_path / "c" / "articles.csv").read_text(encoding="utf-8").splitlines()) == 1 + 5
    assert "articles" in capsys.readouterr().out
    assert main(["export", "-c", str(config), "--since", "yesterday", str(tmp_path / "x")]) == 2
