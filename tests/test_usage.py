"""CPU accounting for a process tree: a busy child counts while it runs and after it has been reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from flows.usage import _scanned_tree, process_tree, tree_cpu_seconds

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


def test_the_tree_holds_children_started_from_any_thread_and_their_children() -> None:
    """The walk reads every thread's children (a pool thread may start a process), and agrees with a scan of
    all of /proc."""
    spawn_grandchild = (f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {BURN!r}])\n"
                        "time.sleep(30)")
    started: list[subprocess.Popen[bytes]] = []
    thread = threading.Thread(target=lambda: started.append(subprocess.Popen([sys.executable, "-c", spawn_grandchild])))
    thread.start()
    thread.join()
    child = started[0]
    try:
        deadline = time.monotonic() + 20
        while len(process_tree(child.pid)[0]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        branch = process_tree(child.pid)[0]
        assert branch[0] == child.pid and len(branch) == 2  # the child, then its child
        assert branch == _scanned_tree(child.pid)[0]
        walked = process_tree(os.getpid())[0]
        assert walked[0] == os.getpid() and set(branch) <= set(walked)
    finally:
        for pid in process_tree(child.pid)[0][::-1]:
            os.kill(pid, signal.SIGKILL)
        child.wait()
    assert process_tree(child.pid)[0] == []
