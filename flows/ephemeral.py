"""Prefect's temporary API server for a run without PREFECT_API_URL, tied to the process that runs the flow.

Prefect starts that server (`python -m uvicorn ... prefect.server.api.server:create_app`, ~200 MB) in a
subprocess on first use, and stops it at exit (atexit). A SIGKILLed run never reaches atexit, and each kill left
one running. `start_tied_api()` starts it first, from the main thread, as Prefect's own `SubprocessASGIServer`
with its own command and settings, and two additions to the Popen call: the kernel SIGKILLs it when this process
ends (PR_SET_PDEATHSIG, extractors.lifeline), and it imports nothing from the working folder (PYTHONSAFEPATH;
`-m` puts the folder first on the path). Prefect's later `SubprocessASGIServer()` calls get this running one.
Its output goes to `<PREFECT_HOME>/newsmon-temporary-server.log`, not to the run's terminal: stopping it at the
end of a run can make its services log cancelled database writes, with tracebacks, that are not the run's.

Before any of that, a run uses a server that is already up: the one a `newsmon serve` of the same Prefect home
started (it leaves its address in `<PREFECT_HOME>/newsmon-serve.json` while it serves). Starting a temporary
server is most of a cold run's wall time; the run then also shows in serve's UI.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_HOME, temporary_settings

from extractors.lifeline import child_env, die_with_parent_hook


class _TiedPopen(ModuleType):
    """Stands in for `subprocess` inside Prefect's server module while it starts the server: the same module,
    with a Popen that adds the lifeline and PYTHONSAFEPATH."""

    def __init__(self) -> None:
        super().__init__("subprocess")

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        kwargs["env"] = child_env(kwargs.get("env"))
        kwargs.setdefault("preexec_fn", die_with_parent_hook())
        with open_server_log() as log:
            kwargs.setdefault("stdout", log)
            kwargs.setdefault("stderr", subprocess.STDOUT)
            return subprocess.Popen(*args, **kwargs)


SERVER_LOG_LIMIT = 1 << 20


def server_log() -> Path:
    """Where the temporary server's output goes (see the module docstring)."""
    return Path(PREFECT_HOME.value()) / "newsmon-temporary-server.log"


def open_server_log() -> IO[bytes]:
    """server_log() for appending, emptied first once it holds more than SERVER_LOG_LIMIT bytes; the null
    device when the Prefect home cannot take it (the server's output is never worth failing a run for)."""
    path = server_log()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        big = path.exists() and path.stat().st_size > SERVER_LOG_LIMIT
        return path.open("wb" if big else "ab")
    except OSError:
        return open(os.devnull, "wb")


HEARTBEAT_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


@cache
def tied_server_class() -> Any:
    """TiedServer: Prefect's temporary server, started with a lifeline (see the module docstring). Made on first
    use: Prefect's server package takes ~2 s to import, which a run against a running server never needs."""
    import prefect.server.api.server as prefect_server_module
    from prefect.server.api.server import SubprocessASGIServer

    class TiedServer(SubprocessASGIServer):
        _swap = threading.Lock()

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            names = vars(prefect_server_module)  # the globals its _run_uvicorn_command reads `subprocess` from
            with self._swap:
                names["subprocess"] = _TiedPopen()
                try:
                    return super()._run_uvicorn_command()
                finally:
                    names["subprocess"] = subprocess

    return TiedServer


def serve_record() -> Path:
    """Where a serving `newsmon serve` leaves its local API's address."""
    return Path(PREFECT_HOME.value()) / "newsmon-serve.json"


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
    running `newsmon serve`; else Prefect's temporary server, started here tied to this process. Enter it from
    the main thread: the tie is to the thread that starts the server."""
    api = None if PREFECT_API_URL.value() else running_api()
    updates: dict[Any, Any] = {} if heartbeats_configured() else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if api is None:
        start_tied_api()
    else:
        updates[PREFECT_API_URL] = api
    with temporary_settings(updates=updates):
        yield


def heartbeats_configured() -> bool:
    """Whether the user set a heartbeat frequency. Without one, a run entered through `run_api` sends no flow-run
    heartbeats: Prefect's synchronous engine would otherwise wait, as each run ends, for its heartbeat thread's
    1 s sleep to run out (up to a second: half of an unchanged re-poll), and only an automation a user sets
    up on the server reads heartbeats (to mark runs whose process died as crashed)."""
    return any(os.environ.get(v) for v in HEARTBEAT_VARIABLES)


def start_tied_api() -> bool:
    """Start Prefect's temporary API server tied to this process, unless an API is configured or the server
    runs already. True when this call started it."""
    if PREFECT_API_URL.value() or threading.current_thread() is not threading.main_thread():
        return False
    tied = tied_server_class()
    server = tied()
    if not isinstance(server, tied) or server.running:  # Prefect made (and maybe started) one already
        return False
    server.start()
    return True
