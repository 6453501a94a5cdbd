"""The `maintenance` flow: housekeeping that does not belong in every poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact

from flows.report import alert_on_failure
from flows.tasks import deliver_task, signals_task
from newsmon.config import load_settings
from newsmon.report import build_report
from warehouse import open_warehouse
from warehouse.lock import run_lock


def _run_name() -> str:
    from prefect.runtime import flow_run

    cfg = str(flow_run.parameters.get("config", "newsmon.toml"))
    return f"maintenance-{cfg.rsplit('/', 1)[-1].removesuffix('.toml')}-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="maintenance", flow_run_name=_run_name, log_prints=False, on_failure=[alert_on_failure])
def maintenance(config: str = "newsmon.toml", report_days: float = 7.0) -> dict[str, Any]:
    """Queue and send feed-health and spike alerts, checkpoint the DuckDB file, export every table to
    Parquet (`export/` next to the warehouse, partitioned by day), and rewrite the HTML report
    (`report.html` next to the warehouse, linked from the run as an artifact)."""
    settings = load_settings(config)
    logger = get_run_logger()
    now = datetime.now(UTC)
    with run_lock(settings.warehouse.path, wait_s=settings.warehouse.lock_timeout_s):
        wh = open_warehouse(settings.warehouse.path, lock_timeout_s=settings.warehouse.lock_timeout_s)
        queued = signals_task(wh, settings.alerts, now)
        delivered = deliver_task(wh, settings.alerts, now)
        wh.checkpoint()
    exported = wh.export(settings.warehouse.path.parent / "export", "parquet")
    report = build_report(settings, timedelta(days=report_days), settings.warehouse.path.parent / "report.html",
                          now=now)
    create_link_artifact(link=report.resolve().as_uri(), link_text="newsmon report", key="newsmon-report",
                         description=f"stories of the last {report_days:g} days")
    logger.info("maintenance: %d signal alerts queued, %d sent, %d rows exported, report at %s", queued,
                delivered.sent, sum(n for _, n in exported), report)
    return {"signals_queued": queued, "alerts_sent": delivered.sent, "report": str(report),
            "exported": dict(exported)}
