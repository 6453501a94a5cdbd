"""The run lock: one poll run per warehouse at a time, released by the OS even after SIGKILL."""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from newsmon.errors import WarehouseLocked


@contextmanager
def run_lock(warehouse_path: Path, *, wait_s: float) -> Iterator[None]:
    """Hold `<warehouse>.lock` for the whole run; wait up to `wait_s`, then raise WarehouseLocked."""
    lock_path = Path(str(warehouse_path) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                    raise WarehouseLocked(
                        f"{warehouse_path}: another newsmon run ({holder}) is still working on this "
                        f"warehouse after {wait_s:.0f} s; this run is skipped, the next one catches up"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def lock_message(path: Path, waited_s: float, exc: BaseException, *, writing: bool) -> str:
    """Who holds the file and what to do: a newsmon run lets go in a moment, an analyst's session does not."""
    holder, cmd = lock_holder(exc)
    if "newsmon" in cmd or "flows" in cmd:
        hint = "a newsmon run is storing; it holds the file only for short transactions: try again"
    else:
        hint = "close that DuckDB session (keep analysis sessions short, or query an export)"
    msg = f"{path}: still locked after {waited_s:.1f} s by {holder} ({hint})"
    if writing:
        msg += f"; the records wait in {path}.spool and the next run stores them"
    return msg


def lock_holder(exc: BaseException) -> tuple[str, str]:
    """('process 1234 (duckdb -readonly x.duckdb)', command line) from DuckDB's lock error."""
    m = re.search(r"PID (\d+)", str(exc))
    if not m:
        return "another process", ""
    pid = m.group(1)
    try:
        cmd = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        cmd = ""
    return f"process {pid}" + (f" ({cmd[:120]})" if cmd else ""), cmd
