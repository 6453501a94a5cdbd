"""A real PostgreSQL server for tests: initdb into a temporary folder, started on a free loopback port.

Debian's server binaries live in `pg_config --bindir` (not on PATH). initdb refuses to run as root, so as root
the server runs as the `postgres` user. Without a server binary the tests that need one skip with the reason,
except under CI=1, where they fail (CI installs what the project needs).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def bindir() -> Path | None:
    for cand in (os.environ.get("NEWSMON_PG_BINDIR", ""), _pg_config_bindir(), *sorted(
            (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)):
        if cand and Path(cand, "initdb").exists() and Path(cand, "pg_ctl").exists():
            return Path(cand)
    return None


def _pg_config_bindir() -> str:
    try:
        return subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    def __init__(self, root: Path, bins: Path) -> None:
        self.root, self.bins = root, bins
        self.data, self.port = root / "data", _free_port()
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def conninfo(self, db: str = "postgres") -> str:
        return f"dbname={db} host=127.0.0.1 port={self.port} user={self.user}"

    def run(self, *args: str) -> None:
        subprocess.run(_as_server_user([str(self.bins / args[0]), *args[1:]]), check=True, capture_output=True)

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "-o",
                 f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                 "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def createdb(self, name: str) -> str:
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return name


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    bins = bindir()
    if bins is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl): install postgresql to run these tests"
        if os.environ.get("CI") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="newsmon-pg-"))
    os.chmod(root, 0o777)
    pg = Postgres(root, bins)
    try:
        pg.run("initdb", "-D", str(pg.data), "-A", "trust", "-U", pg.user, "--no-sync", "-E", "UTF8")
        pg.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", pg.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield pg
    finally:
        try:
            pg.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(root, ignore_errors=True)
