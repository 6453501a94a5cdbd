"""Every process newsmon starts imports nothing from the working folder and ends when its parent ends.

Two classes of trouble with child processes, both closed here:

- Import path. A child started as `python -c ...` (multiprocessing's forkserver, resource tracker and spawned
  processes) or `python -m ...` (Prefect's temporary API server, `prefect server start`) has the working folder
  first on its import path: a `newsmon/`, `flows/`, `trafilatura.py` or `multiprocessing/` in the folder where
  `newsmon run` is typed would be imported in its place. `safe_children()` sets PYTHONSAFEPATH=1 (Python 3.11+:
  no working folder on the path) in the environment that children inherit; what newsmon starts itself also
  gets `-P` on its command line.
- Main module. multiprocessing's spawned and forkserver children run the parent's main module again (as
  __mp_main__) before their first job, so that jobs defined there unpickle. newsmon's jobs live in importable
  modules, and a main module can be heavy: a scheduled run's is Prefect's engine (`python -m prefect.engine`:
  ~50 MB more in every extraction worker). `main_module_hidden()` hides it from the children started inside
  the block.
- Orphans. A SIGKILLed run never runs its clean-up: its children (the extraction pool, Prefect's temporary API
  server, ~200 MB each) kept running. Linux ties them to it: `die_with_parent_hook()` is a Popen preexec_fn that
  asks the kernel to SIGKILL the child when its parent ends (PR_SET_PDEATHSIG); `exit_with_parent()` is for a
  process we do not start ourselves (the forkserver, started by multiprocessing): a thread that waits on its
  parent's pidfd and exits. Elsewhere (no prctl, no pidfd) both are no-ops or fall back to polling.

PR_SET_PDEATHSIG fires when the *thread* that started the child ends, not the process: start tied children from
a thread that lives as long as they should (`die_with_parent_hook` ties only from the main thread).
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SAFE_PATH = "PYTHONSAFEPATH"
SERVE_PID = "NEWSMON_SERVE_PID"  # set by `newsmon serve` for the flow-run processes Prefect starts for it
PR_SET_PDEATHSIG = 1
_forkserver_pid: int | None = None  # set in the forkserver (extractors.preload); its forks (the workers) inherit it
_watching = False


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


@contextmanager
def safe_children() -> Iterator[None]:
    """PYTHONSAFEPATH=1 for every Python child started inside the block (restored after it)."""
    before = os.environ.get(SAFE_PATH)
    os.environ[SAFE_PATH] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SAFE_PATH, None)
        else:
            os.environ[SAFE_PATH] = before


@contextmanager
def main_module_hidden() -> Iterator[None]:
    """Children multiprocessing starts inside the block do not import this process's main module: it finds
    the module by `__main__.__spec__` and `__main__.__file__` when it starts a child, and both are hidden for
    the block (restored after it)."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, object] = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's environment) with PYTHONSAFEPATH=1, for a child's Popen."""
    return {**(os.environ if env is None else env), SAFE_PATH: "1"}


def die_with_parent_hook() -> Callable[[], None] | None:
    """A Popen preexec_fn: the kernel SIGKILLs the child when this process ends. None where that cannot be
    done: not Linux, or called from a thread other than the main one (its end, not the process's, would fire)."""
    prctl = _prctl()
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def hook() -> None:  # runs in the child between fork and exec: nothing but system calls
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent ended before the tie was made
            os._exit(1)

    return hook


def die_with_parent(expected_parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent (thread) ends; exit now if `expected_parent` is
    given and has ended already."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)


def exit_with_parent() -> None:
    """Exit this process (os._exit) as soon as its parent process ends, from a daemon thread.

    For processes started by code we do not control (multiprocessing's forkserver): it waits on the parent's
    pidfd (Linux 5.3+), else checks the parent every half second.
    """
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid()
    pidfd: int | None
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        pidfd = None
    if os.getppid() != parent:  # ended before we looked (the pidfd may then name a reused pid)
        os._exit(0)

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])
        else:
            while os.getppid() == parent:
                time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="newsmon-lifeline", daemon=True).start()


def end_with_serve() -> None:
    """In a flow-run process that `newsmon serve` started (Prefect's `python -m prefect.engine`, its child): exit
    when serve ends. Nothing anywhere else. A run cut short stores nothing; the next one fetches its entries."""
    if os.environ.get(SERVE_PID) == str(os.getppid()):
        exit_with_parent()


def mark_forkserver() -> None:
    """Called in the extraction pool's forkserver: its workers (forks of it) tie themselves to it."""
    global _forkserver_pid
    _forkserver_pid = os.getpid()
    exit_with_parent()


def tie_pool_worker() -> None:
    """Called first in each extraction worker: it dies with the forkserver, which dies with the run."""
    if _forkserver_pid is not None:
        die_with_parent(_forkserver_pid)
