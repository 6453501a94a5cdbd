"""The Prefect API a run uses: the configured one, else a running `newsmon serve`'s, else a temporary server that
this process starts for the run and stops after it.

A run first uses a server that is already up: the one a `newsmon serve` of the same Prefect home started (it
leaves its address in `<PREFECT_HOME>/newsmon-serve.json` while it serves). Starting a temporary server is most
of a cold run's wall time; the run then also shows in serve's UI.

Otherwise `temporary_api()` starts the server Prefect itself would start for a run without PREFECT_API_URL (uvicorn
on `prefect.server.api.server:create_app`, UI off, in ephemeral mode), with three differences:
- the kernel SIGKILLs it when this process ends (PR_SET_PDEATHSIG, extractors.lifeline): Prefect stops its own at
  exit (atexit), which a SIGKILLed run never reaches, and each kill left one running (~200 MB);
- it imports nothing from the working folder (PYTHONSAFEPATH; `-m` puts that folder first on the path);
- its output goes to `<PREFECT_HOME>/newsmon-temporary-server.log`, not to the run's terminal: stopping it can
  make its services log cancelled database writes, with tracebacks, that are not the run's.
The run then reaches it as a configured API; later runs in the process use the same server, which stops when the
process exits. This process never imports Prefect's server package (~2 s, ~80 MB), which Prefect's own way of
starting the server did.

`newsmon run` starts that server before it imports Prefect itself (`start_early`), when the environment and the
files Prefect reads settings from show no API and no `newsmon serve` is up: the server's start-up (~3 s of one
core) then runs beside those imports (~1 s of the other) instead of after them. This module imports Prefect only
inside the functions that need it, for that.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from extractors.lifeline import child_env, die_with_parent_hook
from newsmon.errors import NewsmonError

SERVER_LOG_LIMIT = 1 << 20
SERVER_LOG = "newsmon-temporary-server.log"
SERVE_RECORD = "newsmon-serve.json"


def prefect_home() -> Path:
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value())


def server_log() -> Path:
    """Where the temporary server's output goes (see the module docstring)."""
    return prefect_home() / SERVER_LOG


def open_server_log(path: Path | None = None) -> IO[bytes]:
    """`path` (default server_log()) for appending, emptied first once it holds more than SERVER_LOG_LIMIT bytes;
    the null device when the Prefect home cannot take it (the server's output is never worth failing a run for)."""
    path = path or server_log()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        big = path.exists() and path.stat().st_size > SERVER_LOG_LIMIT
        return path.open("wb" if big else "ab")
    except OSError:
        return open(os.devnull, "wb")


HEARTBEAT_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


def serve_record() -> Path:
    """Where a serving `newsmon serve` leaves its local API's address."""
    return prefect_home() / SERVE_RECORD


@contextmanager
def announced(api: str) -> Iterator[None]:
    """Leave `api` in serve_record() while the block runs (serve's local server), for runs to find."""
    record = serve_record()
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"api": api, "pid": os.getpid()}), encoding="utf-8")
    tmp.replace(record)
    try:
        yield
    finally:
        with suppress(OSError, ValueError):
            if json.loads(record.read_text(encoding="utf-8")).get("pid") == os.getpid():
                record.unlink()


def running_api(timeout_s: float = 1.0) -> str | None:
    """The API of a `newsmon serve` that is serving now (its process alive, its server healthy), else None."""
    try:
        found = json.loads(serve_record().read_text(encoding="utf-8"))
        api, pid = str(found["api"]), int(found["pid"])
        os.kill(pid, 0)
        if not api.startswith("http://127.0.0.1:"):
            return None
        with urllib.request.urlopen(f"{api}/health", timeout=timeout_s) as r:
            return api if r.status == 200 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def run_api() -> Iterator[None]:
    """The Prefect API for the flow this process runs in the block: the configured one; else the server of a
    running `newsmon serve`; else this process's temporary server (temporary_api).

    The run's settings are the current ones with those two values replaced (pydantic's model_copy). Prefect's
    temporary_settings would build them anew from every source (environment, profile, .env, pyproject.toml):
    ~0.1 s each time, 5-7% of an unchanged re-poll in a process that runs the flow repeatedly."""
    from prefect.context import SettingsContext, get_settings_context

    context = get_settings_context()
    current = context.settings
    api = current.api.url or running_api() or temporary_api()
    drop_early()  # started by start_early, but Prefect's settings name an API after all: never used
    beats = current.flows.heartbeat_frequency if heartbeats_configured() else None
    if (api, beats) == (current.api.url, current.flows.heartbeat_frequency):
        yield
        return
    settings = current.model_copy(update={"api": current.api.model_copy(update={"url": api}),
                                          "flows": current.flows.model_copy(update={"heartbeat_frequency": beats})})
    with SettingsContext(profile=context.profile, settings=settings):
        yield


def heartbeats_configured() -> bool:
    """Whether the user set a heartbeat frequency. Without one, a run entered through `run_api` sends no flow-run
    heartbeats: Prefect's synchronous engine would otherwise wait, as each run ends, for its heartbeat thread's
    1 s sleep to run out (up to a second: half of an unchanged re-poll), and only an automation a user sets
    up on the server reads heartbeats (to mark runs whose process died as crashed)."""
    return any(os.environ.get(v) for v in HEARTBEAT_VARIABLES)


PORT_IN_USE = 3  # uvicorn's exit code when its port was taken before it bound it


_temporary: list[tuple[str, subprocess.Popen[bytes]]] = []  # this process's temporary server, once started
_early: list[tuple[str, subprocess.Popen[bytes]]] = []  # started by start_early, not yet taken by temporary_api
_starting = threading.Lock()


def start_early() -> bool:
    """Start this process's temporary server now, before Prefect is imported, when nothing Prefect would read
    names an API and no `newsmon serve` is up (quiet_home); whether it did. Call it from the main thread.
    temporary_api() takes it over; run_api() kills it unused should Prefect's settings name an API after all."""
    home = quiet_home()
    if home is None:
        return False
    with _starting:
        if _temporary or _early:
            return False
        _early.append(_launch(child_env({**os.environ, **SERVER_ENV}), home / SERVER_LOG))
    atexit.register(drop_early)
    return True


def drop_early() -> None:
    """Kill a server start_early started that no run took: it holds nothing yet, and one still importing
    ignores SIGTERM."""
    with _starting:
        while _early:
            _, proc = _early.pop()
            proc.kill()
            proc.wait()


def quiet_home() -> Path | None:
    """Prefect's home, when the environment and the files Prefect reads settings from (its profiles, and .env,
    prefect.toml and pyproject.toml in the working folder) set neither an API nor another home, and no `newsmon
    serve` is up there; else None. Read without importing Prefect (~1 s): a guess that may say None too often,
    never a run's decision (run_api makes that with Prefect's own settings)."""
    env = os.environ
    if env.get("PREFECT_API_URL"):
        return None
    home = Path(env.get("PREFECT_HOME") or "~/.prefect").expanduser()
    profiles = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        found = tomllib.loads(profiles.read_text(encoding="utf-8")) if profiles.exists() else {}
        cwd = Path.cwd()
        pyproject = cwd / "pyproject.toml"
        if (cwd / ".env").exists() or (cwd / "prefect.toml").exists() or (
                pyproject.exists() and "tool.prefect" in pyproject.read_text(encoding="utf-8", errors="replace")):
            return None
        if (home / SERVE_RECORD).exists():
            return None  # a serve is up, or left its record when killed: running_api() tells
    except (OSError, ValueError):
        return None
    table = found.get("profiles", {})
    profile = table.get(env.get("PREFECT_PROFILE") or found.get("active") or "ephemeral", {}) if isinstance(
        table, dict) else None
    if not isinstance(profile, dict) or {"PREFECT_API_URL", "PREFECT_HOME"} & profile.keys():
        return None
    return home


PORT_IN_USE = 3  # uvicorn's exit code when its port was taken before it bound it
# how this process's server differs from the one Prefect starts for a run: no UI, ephemeral mode
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


def temporary_api(timeout_s: float | None = None) -> str:
    """The API URL of this process's temporary Prefect server (see the module docstring): started on first use
    (or by start_early), stopped when the process exits, as Prefect's own. Tied to this process only when
    started from the main thread. Waits up to `timeout_s` (default:
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, 20 s)."""
    from prefect.settings import get_current_settings

    with _starting:
        if _temporary and _temporary[-1][1].poll() is None:
            return _temporary[-1][0]
        default_s = get_current_settings().server.ephemeral.startup_timeout_seconds
        api, proc = _start_temporary(timeout_s or float(default_s), _early.pop() if _early else None)
        atexit.register(stop, proc)
        _temporary.append((api, proc))
        return api


def _start_temporary(wait_s: float, early: tuple[str, subprocess.Popen[bytes]] | None = None
                     ) -> tuple[str, subprocess.Popen[bytes]]:
    """A healthy server: `early` (one start_early started) if it comes up, else one started now."""
    from prefect.settings import get_current_settings

    env = child_env({**os.environ, **SERVER_ENV, **get_current_settings().to_environment_variables(exclude_unset=True)})
    ends = time.monotonic() + wait_s
    while True:
        api, proc = early or _launch(env, server_log())
        early = None
        if wait_healthy(api, proc, ends):
            return api, proc
        still_starting = proc.poll() is None  # alive when the wait ran out: stopped below
        stop(proc)
        if proc.returncode != PORT_IN_USE or time.monotonic() > ends:
            why = "did not answer" if still_starting else f"exited ({proc.returncode})"
            raise NewsmonError(f"Prefect's temporary server {why} within {wait_s:.0f} s; see {server_log()}. Its "
                               "first start creates its database: give it longer with "
                               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or run `prefect server start` "
                               "and set PREFECT_API_URL")


def _launch(env: dict[str, str], log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Prefect's API server (uvicorn on its app factory) on a free port, its output to `log`."""
    spec = importlib.util.find_spec("prefect")  # its folder, without importing it
    if spec is None or spec.origin is None:
        raise NewsmonError("Prefect is not installed in this environment; reinstall newsmon")
    port = free_port()
    with open_server_log(log) as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(spec.origin).parent.parent),
             "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent_hook())
    return f"http://127.0.0.1:{port}/api", proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(api: str, proc: subprocess.Popen[Any], ends: float) -> bool:
    """Whether the server `proc` answers on `api`/health before the monotonic time `ends` (False once it exits)."""
    while time.monotonic() < ends and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a server this process started: SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
