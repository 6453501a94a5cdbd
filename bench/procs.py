"""Watch a process tree from outside (Linux /proc): memory (PSS, RSS) and CPU, sampled in a thread.

PSS (proportional set size) is the fair sum for a tree of forked workers: shared pages are split between
the processes that share them instead of being counted once per process as RSS sums do.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flows.usage import process_tree

# Command-line marks of Prefect's API server: the temporary one a flow process starts without PREFECT_API_URL,
# and `prefect server start`. In a deployment it is shared infrastructure, so it is reported on its own.
SERVER_MARKS = ("prefect.server.api", "server start")


def descendants(root: int) -> list[int]:
    """`root` and every live process under it."""
    return process_tree(root)[0]


def _kb(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Sample:
    t: float
    cpu_s: float
    pss_mb: float
    rss_max_mb: float
    marked: bool  # a process whose command line contains one of the `|`-separated `mark`s was alive
    server_pss_mb: float = 0.0  # the part of pss_mb that is Prefect's API server (temporary or `server start`)


@dataclass
class TreeMonitor:
    """Sample `pid`'s tree every `every` seconds until stop(); peak memory and CPU over any window.

    A sample costs ~25 ms of CPU with a run's six processes (the kernel walks each one's page tables for its
    PSS): every 0.25 s that took ~11% of a core from the run it measured; every second, ~3%."""

    pid: int
    every: float = 1.0
    mark: str = ""
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        pids, cpu_s = process_tree(self.pid)
        pss_by = {p: _kb(f"/proc/{p}/smaps_rollup", "Pss:") / 1024 for p in pids}
        rss = max((_kb(f"/proc/{p}/status", "VmRSS:") for p in pids), default=0) / 1024
        lines = {p: cmdline(p) for p in pids}
        marks = [m for m in self.mark.split("|") if m]
        marked = any(m in lines[p] for p in pids[1:] for m in marks)
        server = sum(pss_by[p] for p in pids if any(m in lines[p] for m in SERVER_MARKS))
        if sum(pss_by.values()):
            self.samples.append(Sample(time.time(), cpu_s, sum(pss_by.values()), rss, marked,
                                       server))

    def peak_pss_mb(self, since: float = 0.0) -> float:
        return max((s.pss_mb for s in self.samples if s.t >= since), default=0.0)

    def peak_own_pss_mb(self, since: float = 0.0) -> float:
        """Peak PSS of the tree without Prefect's API server: newsmon's own processes."""
        return max((s.pss_mb - s.server_pss_mb for s in self.samples if s.t >= since), default=0.0)

    def peak_server_pss_mb(self, since: float = 0.0) -> float:
        return max((s.server_pss_mb for s in self.samples if s.t >= since), default=0.0)

    def peak_rss_mb(self, since: float = 0.0) -> float:
        return max((s.rss_max_mb for s in self.samples if s.t >= since), default=0.0)
