"""Prefect's temporary server writes to its own log file, never to the run's terminal (flows.ephemeral): stopping
it at the end of a run can make its services log cancelled database writes with tracebacks, and a user then saw
tracebacks under a run that had ended as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_deploy import ROOT

PROBE = """
import os, sys
from flows.ephemeral import server_log, start_tied_api, tied_server_class
assert start_tied_api()
server = tied_server_class()()
pid = server.server_process.pid
print(os.readlink(f"/proc/{pid}/fd/1"), os.readlink(f"/proc/{pid}/fd/2"), server_log())
"""


def probe(home: Path) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=home.parent, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


def test_the_temporary_server_writes_to_its_log_file_which_is_emptied_once_past_its_limit(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    log = home / "newsmon-temporary-server.log"
    log.write_bytes(b"old line\n" * 200_000)  # 1.8 MB, past the 1 MiB limit
    out, err = probe(home)
    stdout_of_server, stderr_of_server, told = out.split()
    assert stdout_of_server == stderr_of_server == told == str(log)
    assert "Traceback" not in err
    assert log.stat().st_size < 100_000 and b"old line" not in log.read_bytes()
    log.write_bytes(b"kept line\n")  # under the limit: appended to
    probe(home)
    assert log.read_bytes().startswith(b"kept line\n")
