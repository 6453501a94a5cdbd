"""The `daily-digest` flow: the day's matches, grouped by story cluster, to every digest channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger

from extractors.lifeline import end_with_serve
from flows.report import alert_on_failure
from newsmon.alerts.digest import send_digest
from newsmon.alerts.notify import AppriseNotifier
from newsmon.config import load_settings, resolve_config_path
from warehouse import open_warehouse


def _run_name() -> str:
    from prefect.runtime import flow_run

    cfg = str(resolve_config_path(flow_run.parameters.get("config")))
    return f"digest-{cfg.rsplit('/', 1)[-1].removesuffix('.toml')}-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="daily-digest", flow_run_name=_run_name, log_prints=False, on_failure=[alert_on_failure])
def daily_digest(config: str | None = None, hours: float = 24.0) -> dict[str, Any]:
    """Send the digest of the last `hours` of matches (HTML for email, Markdown for chat) to every channel
    routed for digests. Sent at most once per channel and period, however often it runs."""
    end_with_serve()
    settings = load_settings(config)
    now = datetime.now(UTC)
    wh = open_warehouse(settings.warehouse)
    try:
        digest, queued, report = send_digest(wh, settings.alerts, AppriseNotifier(),
                                             since=timedelta(hours=hours), now=now)
        wh.runs.sync_alerts()
    finally:
        wh.close()
    get_run_logger().info("digest: %d stories, %d messages sent, %d errors", len(digest.stories),
                          report.messages, len(report.errors))
    return {"stories": len(digest.stories), "queued": queued, "sent": report.messages, "errors": report.errors}
