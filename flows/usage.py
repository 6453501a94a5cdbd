"""CPU time of this process and every process under it (Prefect's API server, extraction workers).

`resource.getrusage(RUSAGE_CHILDREN)` misses the extraction pool: its workers are children of the
forkserver, which outlives the run. So on Linux the process tree is read from /proc; elsewhere
getrusage (self + reaped children) is the best there is.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields after "pid (comm) "


def tree_cpu_seconds(root: int | None = None) -> float:
    """user + system seconds of `root` (default: this process), its descendants and their reaped children."""
    root = os.getpid() if root is None else root
    if not Path("/proc/self/stat").exists():
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return process_tree(root)[1]


def process_tree(root: int) -> tuple[list[int], float]:
    """`root` and every live process under it (root first), and their CPU seconds as tree_cpu_seconds counts
    them (Linux only). Walks the tree through each thread's `children` list: a scan of all of /proc costs in
    proportion to every process on the machine (~5 ms with 75, each stage of a run reads it)."""
    if not _CHILDREN_FILES:
        return _scanned_tree(root)
    pids, todo, ticks = [], [root], 0
    while todo:
        pid = todo.pop()
        if (f := _stat_fields(str(pid))) is None:
            continue  # ended since its parent listed it
        pids.append(pid)
        ticks += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
        todo += _children(pid)
    return pids, ticks / _TICK


# Kernels built without CONFIG_PROC_CHILDREN have no /proc/<pid>/task/<tid>/children: process_tree scans instead.
_CHILDREN_FILES = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def _children(pid: int) -> list[int]:
    """The children of every thread of `pid` (none of a process or thread that has ended)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in threads:
        try:
            out += map(int, Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except OSError:
            continue  # the thread ended
    return out


def _scanned_tree(root: int) -> tuple[list[int], float]:
    """process_tree by one pass over all of /proc (kernels without CONFIG_PROC_CHILDREN)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (f := _stat_fields(entry)) is not None:
            parent[int(entry)] = int(f[1])
            ticks[int(entry)] = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids, sum(ticks.get(pid, 0) for pid in pids) / _TICK
