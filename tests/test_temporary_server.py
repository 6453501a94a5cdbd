"""A run without an API starts Prefect's temporary server itself (flows.ephemeral.temporary_api): its output goes
to its own log file, never to the run's terminal (stopping it at the end of a run can make its services log
cancelled database writes with tracebacks); later runs in the process use it too; it stops with the process; and
the run's process never imports Prefect's server package (~2 s, ~80 MB)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_deploy import ROOT

PROBE = """
import os, sys, urllib.request
from flows.ephemeral import server_log, temporary_api

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
      temporary_api() == api, "prefect.server.api.server" in sys.modules)
"""


def env_without_prefect(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any PREFECT_* setting, Prefect's home at `home`, the checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


def probe(home: Path) -> tuple[list[str], str]:
    # a first start on a fresh home creates the server's database: on a busy machine, more than Prefect's 20 s
    env = env_without_prefect(home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="150")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=home.parent, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(), out.stderr


def test_the_temporary_server_logs_to_its_file_serves_every_run_and_stops_with_the_process(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    log = home / "newsmon-temporary-server.log"
    log.write_bytes(b"old line\n" * 200_000)  # 1.8 MB, past the 1 MiB limit
    (stdout_of_server, stderr_of_server, told, pid, same, imported), err = probe(home)
    assert stdout_of_server == stderr_of_server == told == str(log)
    assert same == "True"  # a second run in the process uses the same server
    assert imported == "False"
    assert not Path(f"/proc/{pid}").exists()  # stopped with the process
    assert "Traceback" not in err
    assert log.stat().st_size < 100_000 and b"old line" not in log.read_bytes()
    log.write_bytes(b"kept line\n")  # under the limit: appended to
    probe(home)
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
