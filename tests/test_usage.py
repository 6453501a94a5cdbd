"""CPU accounting for a process tree: a busy child counts while it runs and after it has been reaped."""

from __future__ import annotations

import subprocess
import sys
import time

from flows.usage import tree_cpu_seconds

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(30)"


def test_a_busy_child_is_counted_alive_and_after_exit() -> None:
    before = tree_cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        deadline = time.monotonic() + 20
        while tree_cpu_seconds() - before < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = tree_cpu_seconds() - before
    finally:
        child.kill()
        child.wait()
    assert alive >= 0.4
    assert tree_cpu_seconds() - before >= 0.4
