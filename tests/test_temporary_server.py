"""A run without an API starts Prefect's temporary server itself (flows.ephemeral.temporary_api): its output goes
to its own log file, never to the run's terminal (stopping it at the end of a run can make its services log
cancelled database writes with tracebacks); later runs in the process use it too; it stops with the process; and
the run's process never imports Prefect's server package (~2 s, ~80 MB)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_deploy import ROOT

PROBE = """
import os, sys, urllib.request
from flows.ephemeral import server_log, start_early, temporary_api

early = start_early() if sys.argv[1] == "early" else None

def children():
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(os.getpid()):
                found.append(int(p))
        except OSError:  # ended meanwhile
            pass
    return found

api = temporary_api()
(pid,) = children()
with urllib.request.urlopen(api + "/health", timeout=5) as r:
    assert r.status == 200
print(os.readlink(f"/proc/{pid}/fd/1"), os.readlink(f"/proc/{pid}/fd/2"), server_log(), pid,
      temporary_api() == api, "prefect.server.api.server" in sys.modules, early)
"""


def env_without_prefect(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any PREFECT_* setting, Prefect's home at `home`, the checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


def probe(home: Path, how: str = "early") -> tuple[list[str], str]:
    """PROBE in a fresh process: its server started by start_early ("early") or by temporary_api ("late")."""
    # a first start on a fresh home creates the server's database: on a busy machine, more than Prefect's 20 s
    env = env_without_prefect(home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="150")
    out = subprocess.run([sys.executable, "-c", PROBE, how], cwd=home.parent, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(), out.stderr


@pytest.mark.parametrize("how", ["early", "late"])
def test_the_temporary_server_logs_to_its_file_serves_every_run_and_stops_with_the_process(tmp_path: Path,
                                                                                          how: str) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    log = home / "newsmon-temporary-server.log"
    log.write_bytes(b"old line\n" * 200_000)  # 1.8 MB, past the 1 MiB limit
    (stdout_of_server, stderr_of_server, told, pid, same, imported, early), err = probe(home, how)
    assert early == {"early": "True", "late": "None"}[how]  # the one server is the one start_early started
    assert stdout_of_server == stderr_of_server == told == str(log)
    assert same == "True"  # a second run in the process uses the same server
    assert imported == "False"
    assert not Path(f"/proc/{pid}").exists()  # stopped with the process
    assert "Traceback" not in err
    assert log.stat().st_size < 100_000 and b"old line" not in log.read_bytes()
    log.write_bytes(b"kept line\n")  # under the limit: appended to
    probe(home, how)
    assert log.read_bytes().startswith(b"kept line\n")


def test_a_temporary_server_too_slow_to_answer_is_stopped_and_named_as_such(tmp_path: Path) -> None:
    # named so however it ends: once past its imports it ignores the SIGTERM and was named "exited (-9)"
    env = env_without_prefect(tmp_path)
    code = ("from flows.ephemeral import temporary_api\nfrom newsmon.errors import NewsmonError\n"
            "try:\n    temporary_api(1)\nexcept NewsmonError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Prefect's temporary server did not answer within 1 s; see "), out.stdout
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in out.stdout


DROPPED = """
import os, sys
from flows.ephemeral import _early, run_api, start_early

assert start_early()
((api, proc),) = _early
os.environ["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # what a profile could say, seen once Prefect reads it
with run_api():
    from prefect.settings import get_current_settings
    used = get_current_settings().api.url
print(used, proc.poll(), _early)
"""


def test_a_server_started_early_is_killed_unused_when_prefect_names_an_api(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", DROPPED], cwd=tmp_path, env=env_without_prefect(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["http://127.0.0.1:9/api", "-9", "[]"]


@pytest.mark.parametrize(("variables", "files", "quiet"), [
    ({}, {}, True),
    ({"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, {}, False),
    ({}, {"home/profiles.toml": 'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://srv:4200/api"\n'},
     False),
    ({}, {"home/profiles.toml": 'active = "team"\n[profiles.team]\nPREFECT_LOGGING_LEVEL = "INFO"\n'}, True),
    ({"PREFECT_PROFILE": "team"},
     {"home/profiles.toml": 'active = "local"\n[profiles.team]\nPREFECT_HOME = "/srv/prefect"\n'}, False),
    ({}, {"home/profiles.toml": "active = [unclosed\n"}, False),
    ({}, {"home/profiles.toml": 'profiles = "not a table"\n'}, False),
    ({}, {"home/profiles.toml": 'active = 7\n[profiles.team]\nPREFECT_API_URL = "http://srv:4200/api"\n'}, True),
    ({}, {"cwd/.env": "PREFECT_LOGGING_LEVEL=INFO\n"}, False),
    ({}, {"cwd/prefect.toml": '[api]\nurl = "http://srv:4200/api"\n'}, False),
    ({}, {"cwd/pyproject.toml": '[tool.prefect.api]\nurl = "http://srv:4200/api"\n'}, False),
    ({}, {"cwd/pyproject.toml": '[project]\nname = "mine"\n'}, True),
    ({}, {"home/newsmon-serve.json": '{"api": "http://127.0.0.1:4300/api", "pid": 1}'}, False),
])
def test_a_server_is_started_early_only_when_nothing_prefect_reads_may_name_an_api(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], files: dict[str, str],
        quiet: bool) -> None:
    from flows.ephemeral import quiet_home

    for name in [k for k in os.environ if k.startswith("PREFECT_")]:
        monkeypatch.delenv(name)
    for folder in ("home", "cwd"):
        (tmp_path / folder).mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert quiet_home() == (tmp_path / "home" if quiet else None)
