"""`newsmon doctor`, run as a user runs it (a subprocess with its own environment): one line per part, exit 0
only when every part is reachable, 1 when one is not, 2 when the config cannot be read; no secret printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from newsmon.config import load_settings
from tests.conftest import write_config
from warehouse import open_warehouse

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def doctor(config: Path, **env: str) -> tuple[int, dict[str, str], str]:
    """Exit code, {part: its line} (the first line of each part), and the whole output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "NEWSMON_"))}
    res = subprocess.run([sys.executable, "-m", "newsmon.cli", "doctor", "--config", str(config)],
                         capture_output=True, text=True, cwd=config.parent, timeout=180,
                         env={**base, "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING", **env})
    lines: dict[str, str] = {}
    for line in res.stdout.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("OK", "FAIL"):
            part = rest.strip().split("  ")[0]
            lines.setdefault(part, line)
    return res.returncode, lines, res.stdout + res.stderr


def test_a_good_local_setup_is_ok_before_and_after_the_first_run(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [("en", "http://127.0.0.1:9/feeds/en.xml")],
                       alert_urls=[f"json://user:{SECRET}@127.0.0.1:9/hook"])
    code, lines, out = doctor(cfg)
    assert code == 0, out
    assert set(lines) == {"state", "catalog", "data path", "prefect api", "alerts"}
    assert "not made yet" in lines["state"] and "not made yet" in lines["catalog"]
    assert "embedded/temporary" in lines["prefect api"] and lines["prefect api"].startswith("OK")
    assert "json://127.0.0.1" in lines["alerts"] and "nothing sent" in lines["alerts"]
    assert out.rstrip().endswith("all 5 parts OK") and SECRET not in out
    open_warehouse(load_settings(cfg).warehouse).close()  # what a first run makes
    code, lines, out = doctor(cfg)
    assert code == 0, out
    assert "SQLite, state version 1" in lines["state"] and "lake version" in lines["catalog"]
    assert lines["data path"].startswith("OK") and "writable" in lines["data path"]
    assert not list(tmp_path.rglob(".newsmon-doctor-*"))  # its probe files are gone


def write_raw(tmp_path: Path, warehouse: str) -> Path:
    """A config with its own [warehouse] lines and no feeds."""
    path = tmp_path / "newsmon.toml"
    path.write_text(f"[warehouse]\npath = \"wh/newsmon.duckdb\"\n{warehouse}\n", encoding="utf-8")
    return path


def write_pg_config(tmp_path: Path, state: str, catalog: str) -> Path:
    """A config whose [warehouse] is on PostgreSQL (its data folder a 'shared' one)."""
    return write_raw(tmp_path, f'state = "{state}"\ncatalog = "postgres:{catalog}"\n'
                               f'data_path = "{tmp_path / "shared"}"')


def test_a_good_postgresql_setup_is_ok(postgres, tmp_path: Path) -> None:
    state, lake = postgres.createdb("doctor_state"), postgres.createdb("doctor_lake")
    cfg = write_pg_config(tmp_path, postgres.url(state), postgres.conninfo(lake))
    code, lines, out = doctor(cfg)
    assert code == 0, out
    assert "PostgreSQL" in lines["state"] and "no tables yet" in lines["state"]
    assert "no lake yet" in lines["catalog"]
    assert "every worker must see this folder" in lines["data path"]
    open_warehouse(load_settings(cfg).warehouse).close()
    code, lines, out = doctor(cfg)
    assert code == 0, out
    assert "state version 1" in lines["state"] and "PostgreSQL catalog attached, lake version" in lines["catalog"]


def test_an_unreachable_postgresql_fails_its_lines_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cfg = write_pg_config(tmp_path, f"postgresql://newsmon:{SECRET}@127.0.0.1:{port}/state",
                          f"dbname=lake host=127.0.0.1 port={port} user=newsmon password={SECRET}")
    code, lines, out = doctor(cfg)
    assert code == 1, out
    assert lines["state"].startswith("FAIL") and "cannot connect" in lines["state"]
    assert "newsmon:***@127.0.0.1" in lines["state"]
    assert lines["catalog"].startswith("FAIL") and "password=***" in lines["catalog"]
    assert lines["data path"].startswith("OK") and lines["prefect api"].startswith("OK")
    assert "2 of 5 parts FAIL" in out and SECRET not in out


def test_an_unwritable_folder_fails_the_data_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should go", encoding="utf-8")
    cfg = write_raw(tmp_path, f'data_path = "{blocker / "lake"}"')
    code, lines, out = doctor(cfg)
    assert code == 1, out
    assert lines["data path"].startswith("FAIL") and "is not a folder" in lines["data path"]
    assert lines["state"].startswith("OK") and "1 of 5 parts FAIL" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_read_only_folder_fails_the_state_database(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        cfg = write_raw(tmp_path, f'state = "{folder / "state.sqlite"}"')
        code, lines, out = doctor(cfg)
    finally:
        folder.chmod(0o755)
    assert code == 1 and lines["state"].startswith("FAIL") and "cannot write" in lines["state"], out


def test_a_bad_alert_url_fails_its_line_redacted(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [], alert_urls=["json://127.0.0.1:9/hook",
                                                 f"http://hooks.example/{SECRET}/x"])
    code, lines, out = doctor(cfg)
    assert code == 1, out
    alert_lines = [line for line in out.splitlines() if "  alerts  " in line]
    assert [line.split()[0] for line in alert_lines] == ["OK", "FAIL"]
    assert "not a URL Apprise can use" in alert_lines[1] and SECRET not in out


def test_a_dead_prefect_api_fails_its_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [])
    api = f"http://127.0.0.1:{free_port()}/api"
    code, lines, out = doctor(cfg, PREFECT_API_URL=api)
    assert code == 1, out
    assert lines["prefect api"].startswith("FAIL") and f"no answer from {api}/health" in lines["prefect api"]
    assert "1 of 5 parts FAIL" in out


def test_an_unreadable_config_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [], alert_urls=["json://127.0.0.1:9/${NOT_SET_ANYWHERE}"])
    code, _, out = doctor(cfg)
    assert code == 2 and "NOT_SET_ANYWHERE" in out
