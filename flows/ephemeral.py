"""Prefect's temporary API server for a run without PREFECT_API_URL, tied to the process that runs the flow.

Prefect starts that server (`python -m uvicorn ... prefect.server.api.server:create_app`, ~200 MB) in a
subprocess on first use, and stops it at exit (atexit). A SIGKILLed run never reaches atexit, and each kill left
one running. `start_tied_api()` starts it first, from the main thread, as Prefect's own `SubprocessASGIServer`
with its own command and settings, and two additions to the Popen call: the kernel SIGKILLs it when this process
ends (PR_SET_PDEATHSIG, extractors.lifeline), and it imports nothing from the working folder (PYTHONSAFEPATH;
`-m` puts the folder first on the path). Prefect's later `SubprocessASGIServer()` calls get this running one.
"""

from __future__ import annotations

import subprocess
import threading
from types import ModuleType
from typing import Any

import prefect.server.api.server as prefect_server_module
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL

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
        return subprocess.Popen(*args, **kwargs)


class TiedServer(SubprocessASGIServer):
    """Prefect's temporary server, started with a lifeline (see the module docstring)."""

    _swap = threading.Lock()

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        names = vars(prefect_server_module)  # the globals its _run_uvicorn_command reads `subprocess` from
        with self._swap:
            names["subprocess"] = _TiedPopen()
            try:
                return super()._run_uvicorn_command()
            finally:
                names["subprocess"] = subprocess


def start_tied_api() -> bool:
    """Start Prefect's temporary API server tied to this process, unless an API is configured or the server
    runs already. Call it from the main thread before the flow: the tie is to the thread that starts it.
    True when this call started it."""
    if PREFECT_API_URL.value() or threading.current_thread() is not threading.main_thread():
        return False
    server = TiedServer()
    if not isinstance(server, TiedServer) or server.running:  # Prefect made (and maybe started) one already
        return False
    server.start()
    return True
