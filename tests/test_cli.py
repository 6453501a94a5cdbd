"""The `newsmon` command line, run as users run it (a subprocess), without Prefect where it is not needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsmon.cli import main, run_exit_code

ROOT = Path(__file__).resolve().parents[1]
POSITIVE = ("Azerbaijan's deputy energy minister met a Russian energy ministry official in Baku and invited Russian "
            "companies to invest in Azerbaijan's green energy projects. Both sides agreed to exchange information "
            "on projects.")


def newsmon(*args: str, stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "newsmon.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_help_explains_every_command() -> None:
    out = newsmon("--help").stdout
    for command in ("run", "serve", "demo", "tag", "sql", "init", "feeds", "shards", "doctor"):
        assert command in out
        sub = newsmon(command, "--help")
        assert sub.returncode == 0 and "usage: newsmon " + command in sub.stdout


def test_tag_jsonl_contract() -> None:
    lines = [{"id": "p1", "title": "Azerbaijan invites Russian investors into green energy", "text": POSITIVE},
             {"id": 2, "title": "SOCAR and BP sign offshore exploration deal", "text": "SOCAR and BP signed a "
              "production sharing agreement for a block in the Caspian Sea, the companies said in Baku."},
             {"id": "empty", "title": "", "text": ""}]
    res = newsmon("tag", "--jsonl", stdin="\n".join(json.dumps(x) for x in lines) + "\n")
    assert res.returncode == 0, res.stderr
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["id"] for o in out] == ["p1", 2, "empty"]
    for o in out:
        assert {"id", "match", "score", "tags", "evidence"} <= set(o)
        assert set(o["tags"]) <= {"az_ru", "energy", "cooperation"}
    assert out[0]["match"] is True and "az_ru" in out[0]["tags"] and out[0]["evidence"]
    assert out[1]["match"] is False and out[2]["match"] is False
    ev = out[0]["evidence"][0]
    assert {"term", "where", "start", "end", "snippet"} <= set(ev)


def test_tag_a_file_and_stdin(tmp_path: Path) -> None:
    f = tmp_path / "story.txt"
    f.write_text(POSITIVE, encoding="utf-8")
    from_file = json.loads(newsmon("tag", str(f)).stdout)
    from_stdin = json.loads(newsmon("tag", "-", stdin=POSITIVE).stdout)
    assert from_file["match"] is True and from_file["score"] == from_stdin["score"]


def test_tag_skips_a_bad_jsonl_line_naming_its_number() -> None:
    res = newsmon("tag", "--jsonl", stdin='{"id": 1, "text": "x"}\nnot json\n{"id": 3, "text": "y"}\n')
    assert res.returncode == 1 and "stdin line 2: not JSON" in res.stderr and "skipped" in res.stderr
    assert [json.loads(line)["id"] for line in res.stdout.splitlines()] == [1, 3]


def test_init_writes_a_valid_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    assert newsmon("init", cwd=tmp_path).returncode == 0
    assert (tmp_path / "newsmon.toml").exists()
    again = newsmon("init", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_config_errors_exit_2_and_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\ntimeout_s = -1\n")
    res = newsmon("run", "--config", str(bad))
    assert res.returncode == 2 and "bad.toml: http.timeout_s: expected a number" in res.stderr
    missing = newsmon("sql", "SELECT 1", cwd=tmp_path)
    assert missing.returncode == 2 and "newsmon init" in missing.stderr


def test_sql_is_read_only_and_prints_a_table(tmp_path: Path) -> None:
    from tests.conftest import make_warehouse

    cfg = tmp_path / "n.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n')
    make_warehouse(tmp_path / "w.duckdb").close()
    res = newsmon("sql", "--config", str(cfg), "--format", "table", "SELECT count(*) AS n FROM articles")
    assert res.returncode == 0 and " n " in res.stdout and "(1 row)" in res.stdout
    as_json = newsmon("sql", "--config", str(cfg), "--format", "json", "SELECT 42 AS answer")
    assert json.loads(as_json.stdout) == [{"answer": 42}]
    write = newsmon("sql", "--config", str(cfg), "DELETE FROM articles")
    assert write.returncode == 3 and "read-only" in write.stderr.lower()


@pytest.mark.parametrize("total, failed, code", [(3, 1, 0), (3, 3, 1), (0, 0, 0)])
def test_run_exit_code(total: int, failed: int, code: int) -> None:
    assert run_exit_code({"feeds_total": total, "failed_feeds": [{}] * failed}) == code


def test_main_returns_2_for_a_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feeds", "--config", str(tmp_path / "none.toml")]) == 2
    assert "no such configuration file" in capsys.readouterr().err
