"""`newsmon serve`: the three flows on their schedules with Prefect's serve (no server or work pool needed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import serve as prefect_serve
from prefect.schedules import Cron, Interval
from prefect.settings import PREFECT_API_URL

from flows.digest import daily_digest
from flows.maintenance import maintenance
from flows.poll import poll_feeds
from newsmon.config import Settings


def deployments(settings: Settings) -> list[Any]:
    """`newsmon-poll`, `newsmon-digest` and `newsmon-maintenance`, scheduled from [schedule]."""
    sched = settings.schedule
    params = {"config": str(settings.source)}
    poll_schedule = (Cron(sched.cron, timezone=sched.timezone) if sched.cron
                     else Interval(timedelta(minutes=sched.interval_minutes)))
    return [
        poll_feeds.to_deployment(name="newsmon-poll", schedule=poll_schedule, parameters=params,
                                 concurrency_limit=1, description=poll_feeds.__doc__),
        daily_digest.to_deployment(name="newsmon-digest", schedule=Cron(sched.digest_cron, timezone=sched.timezone),
                                   parameters=params, description=daily_digest.__doc__),
        maintenance.to_deployment(name="newsmon-maintenance",
                                  schedule=Cron(sched.maintenance_cron, timezone=sched.timezone),
                                  parameters=params, description=maintenance.__doc__),
    ]


def serve(settings: Settings) -> None:
    """Serve all three until Ctrl-C / SIGTERM; a run in progress is cancelled by Prefect and its work is
    safe: nothing of a run is stored until its single transaction commits."""
    api = PREFECT_API_URL.value()
    where = f"the Prefect UI at {api.removesuffix('/api')}" if api else "no Prefect server (ephemeral mode)"
    print(f"newsmon serve: {settings.source} — poll, digest and maintenance schedules; {where}. Ctrl-C stops.")
    prefect_serve(*deployments(settings), print_starting_message=False)
