"""The processes newsmon starts: nothing from the working folder is imported, and none outlives a SIGKILLed run.

Real `newsmon` commands (the installed console script, as a user types them) in subprocesses, without
PREFECT_API_URL (so Prefect's temporary API server is started too), against a local site whose article pages
make the run use the extraction pool (forkserver + workers).

- Working folder: the run is started in a folder full of packages and modules named like ours and our
  dependencies, each of which writes a marker file and raises when imported; and in the folder that holds a
  checkout named `newsmon` (the natural trigger: the checkout's parent). Every run stores every article with
  its page's text, and no marker appears.
- Orphans: `newsmon run` (and `newsmon serve`) is SIGKILLed by its PID alone while its children run; every
  process in its tree, recorded from /proc before the kill, is gone within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import lake_query, write_config
from tests.hostile_servers import ManyFeedSite

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, prctl")]

ROOT = Path(__file__).resolve().parents[1]
NEWSMON = Path(sys.executable).with_name("newsmon")  # the console script, as installed

# Named like our packages and our dependencies (and the modules the child processes start with).
HOSTILE_PACKAGES = ["newsmon", "flows", "extractors", "warehouse", "multiprocessing", "prefect", "lxml", "httpx",
                    "concurrent"]
HOSTILE_MODULES = ["trafilatura", "duckdb", "uvicorn", "feedparser", "py3langid", "apprise", "anyio"]
HOSTILE_SOURCE = """\
import os, pathlib
pathlib.Path({markers!r}, __name__ + "-" + str(os.getpid())).write_text(repr(__file__))
raise RuntimeError("imported " + __name__ + " from the working folder")
"""


def hostile_folder(folder: Path, markers: Path) -> Path:
    """A working folder whose every module writes a marker into `markers` and raises when imported."""
    folder.mkdir(parents=True)
    markers.mkdir(parents=True, exist_ok=True)
    source = HOSTILE_SOURCE.format(markers=str(markers))
    for name in HOSTILE_PACKAGES:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(source)
        (folder / name / "preload.py").write_text(source)  # extractors.preload, named by the forkserver
    for name in HOSTILE_MODULES:
        (folder / f"{name}.py").write_text(source)
    return folder


def user_env(prefect_home: Path) -> dict[str, str]:
    """A user's environment: no API server configured, nothing on PYTHONPATH, PYTHONSAFEPATH not set by us."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_API") and k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return env | {"PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                  "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "150", "PREFECT_LOGGING_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for the module's runs: the temporary server's database is made once."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def site() -> Iterator[ManyFeedSite]:
    with ManyFeedSite(feeds=2, items=8) as s:  # 16 pages: enough for the process pool
        yield s


def run_in(cwd: Path, cfg: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NEWSMON), "run", "--json", "--config", str(cfg)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=420)


def assert_stored_from_pages(cfg: Path, done: subprocess.CompletedProcess[str], expected: int) -> None:
    """Every article stored, each with its page's text (the feed's own summary is one word)."""
    assert done.returncode == 0, done.stderr[-3000:]
    rows = lake_query(cfg, "SELECT url, word_count, extraction_status FROM articles")
    assert len(rows) == expected, done.stderr[-3000:]
    thin = [r for r in rows if r[1] < 100]
    assert not thin, f"kept the feed summary instead of the page: {thin[:3]}\n{done.stderr[-3000:]}"


def test_run_imports_nothing_from_a_hostile_working_folder(site: ManyFeedSite, tmp_path: Path,
                                                           prefect_home: Path) -> None:
    markers = tmp_path / "markers"
    work = hostile_folder(tmp_path / "work", markers)
    cfg = write_config(tmp_path, site.feed_urls())
    done = run_in(work, cfg, user_env(prefect_home))
    assert_stored_from_pages(cfg, done, 16)
    assert sorted(p.name for p in markers.iterdir()) == [], done.stderr[-3000:]


def test_run_from_the_folder_holding_a_checkout_named_newsmon(site: ManyFeedSite, tmp_path: Path,
                                                             prefect_home: Path) -> None:
    """The natural trigger: `git clone .../newsmon` then `newsmon run` where the clone was made. The checkout
    (a folder `newsmon/` without `__init__.py`) would shadow the installed package in every child."""
    parent = tmp_path / "src"
    parent.mkdir()
    (parent / "newsmon").symlink_to(ROOT, target_is_directory=True)
    cfg = write_config(tmp_path, site.feed_urls())
    done = run_in(parent, cfg, user_env(prefect_home))
    assert_stored_from_pages(cfg, done, 16)


# --- orphans ------------------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                continue
    except OSError:
        pass
    return out


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


def process_tree(pid: int) -> dict[int, tuple[int, str]]:
    """Every descendant of `pid`: pid -> (start time, command line)."""
    found: dict[int, tuple[int, str]] = {}
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            st = _stat(child)
            if st is not None and child not in found:
                found[child] = (st[1], _cmdline(child))
                todo.append(child)
    return found


def survivors(tree: dict[int, tuple[int, str]]) -> dict[int, str]:
    """The processes of `tree` still running (the same process: same start time; a zombie has ended)."""
    alive = {}
    for pid, (started, cmd) in tree.items():
        st = _stat(pid)
        if st is not None and st[1] == started and st[0] not in ("Z", "X"):
            alive[pid] = cmd
    return alive


def wait_for_tree(proc: subprocess.Popen[bytes], ready: dict[str, int], timeout: float) -> dict[int, tuple[int, str]]:
    """The process tree of `proc` once, for each (text, n) of `ready`, n processes' command lines hold text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited early with {proc.returncode}"
        tree = process_tree(proc.pid)
        if all(sum(r in cmd for _, cmd in tree.values()) >= n for r, n in ready.items()):
            return tree
        time.sleep(0.3)
    raise AssertionError(f"never saw {ready} under {proc.pid}: {process_tree(proc.pid)}")


def kill_and_check(proc: subprocess.Popen[bytes], tree: dict[int, tuple[int, str]], grace_s: float = 10) -> None:
    os.kill(proc.pid, signal.SIGKILL)  # the PID alone, not its group: a user's `kill -9 <pid>`
    proc.wait(timeout=10)
    deadline = time.monotonic() + grace_s
    while survivors(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = survivors(tree)
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"outlived the SIGKILLed process: {left}"


@pytest.fixture
def slow_site() -> Iterator[ManyFeedSite]:
    with ManyFeedSite(feeds=4, items=10) as s:  # 40 pages at 2 s each: the run is extracting for a while
        s.page_latency_s = 2.0
        yield s


def test_sigkilled_run_leaves_no_process_behind(slow_site: ManyFeedSite, tmp_path: Path,
                                                prefect_home: Path) -> None:
    cfg = write_config(tmp_path, slow_site.feed_urls())
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen([str(NEWSMON), "run", "--config", str(cfg)], cwd=tmp_path, env=user_env(prefect_home),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            # Prefect's temporary API server, the resource tracker, the forkserver and its two workers (forks of it,
            # made once it has loaded the extractor); then a moment for the workers to take pages
            wait_for_tree(proc, {"uvicorn": 1, "resource_tracker": 1, "multiprocessing.forkserver": 3}, timeout=300)
            time.sleep(2.0)
            kill_and_check(proc, process_tree(proc.pid))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_serve_from_a_hostile_folder_runs_its_schedule_and_a_sigkill_leaves_nothing(tmp_path: Path,
                                                                                    prefect_home: Path) -> None:
    """`newsmon serve` in a hostile working folder: its Prefect server and the flow-run processes Prefect starts
    for it (which put their working folder first on the import path to load the flow) import nothing from it, the
    scheduled poll stores every article; then serve is SIGKILLed during a run: its server, that run's process and
    the run's extraction pool all end."""
    markers = tmp_path / "markers"
    work = hostile_folder(tmp_path / "work", markers)
    with ManyFeedSite(feeds=2, items=16) as site:
        site.visible = 8  # the first run: 16 pages
        cfg = write_config(tmp_path, site.feed_urls(), extra="[schedule]\ninterval_minutes = 0.2\n")
        log_path = tmp_path / "serve.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([str(NEWSMON), "serve", "--config", str(cfg)], cwd=work,
                                    env=user_env(prefect_home), stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline, stored = time.monotonic() + 400, 0
                while stored < 16:
                    assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                    time.sleep(2)
                    try:
                        stored = lake_query(cfg, "SELECT count(*) FROM articles WHERE word_count >= 100")[0][0]
                    except Exception:  # no lake yet, or the first run is creating its tables
                        continue
                assert sorted(p.name for p in markers.iterdir()) == [], log_path.read_text()[-3000:]
                site.visible, site.page_latency_s = 16, 2.0  # the next run: 16 new pages, slowly
                # serve's server, a flow-run process (Prefect's engine) and its pool: forkserver + two workers
                wait_for_tree(proc, {"prefect server start": 1, "prefect.engine": 1, "multiprocessing.forkserver": 3},
                              timeout=240)
                time.sleep(2.0)
                kill_and_check(proc, process_tree(proc.pid))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert sorted(p.name for p in markers.iterdir()) == [], log_path.read_text()[-3000:]
