"""The `maintenance` flow: housekeeping that does not belong in every poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact

from extractors.lifeline import end_with_serve
from flows.report import alert_on_failure
from flows.tasks import deliver_task, signals_task
from newsmon.config import load_settings, resolve_config_path
from newsmon.report import build_report
from warehouse import open_reader, open_warehouse


def _run_name() -> str:
    from prefect.runtime import flow_run

    cfg = str(resolve_config_path(flow_run.parameters.get("config")))
    return f"maintenance-{cfg.rsplit('/', 1)[-1].removesuffix('.toml')}-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="maintenance", flow_run_name=_run_name, log_prints=False, on_failure=[alert_on_failure])
def maintenance(config: str | None = None, report_days: float = 7.0) -> dict[str, Any]:
    """Queue and send feed-health and spike alerts, compact the lake (merge small files, expire snapshots
    older than a week, delete unreferenced files), export every table to
    Parquet (`export/` next to the warehouse, partitioned by day), and rewrite the HTML report
    (`report.html` next to the warehouse, linked from the run as an artifact)."""
    end_with_serve()
    settings = load_settings(config)
    logger = get_run_logger()
    now = datetime.now(UTC)
    wh = open_warehouse(settings.warehouse)
    try:
        queued = signals_task(wh, settings.alerts, now)
        delivered = deliver_task(wh, settings.alerts, now)
        wh.runs.sync_alerts()
        upkeep = wh.upkeep(now=now)
        forgotten = wh.runs.forget_signatures(before=now - timedelta(days=settings.alerts.cluster_days))
    finally:
        wh.close()
    reader = open_reader(settings.warehouse)
    try:
        exported = reader.export(settings.warehouse.path.parent / "export", "parquet")
    finally:
        reader.close()
    report = build_report(settings, timedelta(days=report_days), settings.warehouse.path.parent / "report.html",
                          now=now)
    create_link_artifact(link=report.resolve().as_uri(), link_text="newsmon report", key="newsmon-report",
                         description=f"stories of the last {report_days:g} days")
    logger.info("maintenance: %d signal alerts queued, %d sent, data files %d -> %d, %d old cluster signatures "
                "dropped, %d rows exported, report at %s", queued, delivered.sent, upkeep.files_before,
                upkeep.files_after, forgotten, sum(n for _, n in exported), report)
    return {"signals_queued": queued, "alerts_sent": delivered.sent, "report": str(report),
            "exported": dict(exported), "data_files": [upkeep.files_before, upkeep.files_after],
            "signatures_dropped": forgotten}
