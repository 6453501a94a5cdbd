"""`newsmon serve`: the three flows on their schedules with Prefect's serve (no work pool needed).

Prefect's temporary in-process API runs no scheduler service, so deployments served against it are
registered but never run. Without PREFECT_API_URL, `newsmon serve` therefore starts a local
`prefect server start` on 127.0.0.1 for as long as it serves, and stops it on exit; the kernel stops it
if serve is killed (extractors.lifeline).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from prefect import serve as prefect_serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Interval
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.types.entrypoint import EntrypointType

from extractors.lifeline import SERVE_PID, child_env, die_with_parent_hook, safe_children
from flows.digest import daily_digest
from flows.ephemeral import announced, free_port, wait_healthy
from flows.maintenance import maintenance
from flows.poll import poll_feeds
from newsmon.config import Settings
from newsmon.errors import NewsmonError
from newsmon.hints import command

# One poll at a time; a run due while one is going is cancelled, so late or missed slots never pile up.
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def deployments(settings: Settings) -> list[Any]:
    """`newsmon-poll`, `newsmon-digest` and `newsmon-maintenance`, scheduled from [schedule]."""
    sched = settings.schedule
    params = {"config": str(settings.source)}
    poll_schedule = (Cron(sched.cron, timezone=sched.timezone) if sched.cron
                     else Interval(timedelta(minutes=sched.interval_minutes)))
    by_module = EntrypointType.MODULE_PATH  # imported as installed, never as a file relative to the working folder
    return [
        poll_feeds.to_deployment(name="newsmon-poll", schedule=poll_schedule, parameters=params,
                                 concurrency_limit=ONE_AT_A_TIME, description=poll_feeds.__doc__,
                                 entrypoint_type=by_module),
        daily_digest.to_deployment(name="newsmon-digest", schedule=Cron(sched.digest_cron, timezone=sched.timezone),
                                   parameters=params, description=daily_digest.__doc__, entrypoint_type=by_module),
        maintenance.to_deployment(name="newsmon-maintenance",
                                  schedule=Cron(sched.maintenance_cron, timezone=sched.timezone),
                                  parameters=params, description=maintenance.__doc__, entrypoint_type=by_module),
    ]


def serve(settings: Settings) -> None:
    """Serve all three until Ctrl-C / SIGTERM; a run in progress is cancelled by Prefect and its work is
    safe: nothing of a run is stored until its single transaction commits."""
    with safe_children(), flow_run_surroundings(), prefect_api() as (api, own):
        how = "started for this serve" if own else "from PREFECT_API_URL"
        print(f"newsmon serve: {settings.source}: poll, digest and maintenance schedules; Prefect UI at "
              f"{api.removesuffix('/api')} ({how}). Ctrl-C stops.", flush=True)
        prefect_serve(*deployments(settings), print_starting_message=False)


@contextmanager
def flow_run_surroundings() -> Iterator[None]:
    """What the flow-run processes Prefect starts for serve (`python -m prefect.engine`) inherit: an empty
    working folder of their own, and serve's PID.

    They start in serve's working folder and put it first on their import path while they import the flow
    (prefect.utilities.importtools.load_module): a `flows/` or `extractors/` there would be run instead of
    ours. Every path in the config is absolute by then, so serve runs from an empty folder. With serve's PID
    in NEWSMON_SERVE_PID, a flow run ends when serve does (extractors.lifeline.end_with_serve)."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="newsmon-serve-") as empty:
        os.chdir(empty)
        os.environ[SERVE_PID] = str(os.getpid())
        try:
            yield
        finally:
            os.environ.pop(SERVE_PID, None)
            os.chdir(before)


@contextmanager
def prefect_api(startup_s: float = 120.0) -> Iterator[tuple[str, bool]]:
    """(API URL, whether we started it): the configured server, else a local one run for the duration."""
    configured = PREFECT_API_URL.value()
    if configured:
        yield configured, False
        return
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    # -P and PYTHONSAFEPATH: nothing from the working folder on its import path (nor its children's); the
    # lifeline: the kernel kills it when serve ends, SIGKILLed or not (extractors.lifeline).
    server = subprocess.Popen([sys.executable, "-P", "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, env=child_env(), preexec_fn=die_with_parent_hook())
    try:
        _wait_healthy(api, server, startup_s)
        os.environ["PREFECT_API_URL"] = api  # flow-run processes started by serve inherit it
        with temporary_settings(updates={PREFECT_API_URL: api}), announced(api):  # `newsmon run` uses it too
            yield api, True
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        _stop(server)


def _wait_healthy(api: str, server: subprocess.Popen[bytes], startup_s: float) -> None:
    if wait_healthy(api, server, time.monotonic() + startup_s):
        return
    if server.poll() is not None:
        raise NewsmonError(f"the local Prefect server exited ({server.returncode}); run `{command('prefect')} "
                           "server start` yourself to see why, and set PREFECT_API_URL")
    raise NewsmonError(f"the local Prefect server did not answer within {startup_s:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
