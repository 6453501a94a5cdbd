"""`newsmon serve`: the poll flow on a schedule with Prefect's serve (no server or work pool needed)."""

from __future__ import annotations

from datetime import timedelta

from flows.poll import poll_feeds
from newsmon.config import Settings


def serve(settings: Settings) -> None:
    """Serve `poll-feeds` every [schedule] interval_minutes until Ctrl-C / SIGTERM."""
    poll_feeds.serve(
        name="newsmon-poll",
        interval=timedelta(minutes=settings.schedule.interval_minutes),
        parameters={"config": str(settings.source)},
        description="Poll every configured feed, store new articles in DuckDB, alert on matches.",
    )
