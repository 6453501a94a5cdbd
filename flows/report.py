"""What a run tells people: a Markdown artifact on the Prefect run, and an alert when a run fails."""

from __future__ import annotations

import logging
from typing import Any

from prefect.artifacts import create_markdown_artifact

from newsmon.alerts.notify import AppriseNotifier
from newsmon.alerts.policy import route_channels
from newsmon.alerts.render import clean
from newsmon.config import load_settings
from newsmon.errors import NewsmonError

log = logging.getLogger("newsmon")


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run summary as a Markdown table (feed strings are cleaned: no table-breaking characters)."""
    def cell(text: object) -> str:
        return clean(str(text), 200).replace("|", "\\|")

    lines = ["| | |", "|---|---|",
             f"| feeds polled | {summary['feeds_total']} |",
             f"| with new items | {summary['feeds_ok']} |",
             f"| not modified | {summary['feeds_not_modified']} |",
             f"| failed | {len(summary['failed_feeds'])} |",
             f"| new articles | {summary['new_articles']} |",
             f"| matches | {len(summary['matches'])} |",
             f"| alerts sent | {summary['alerts_sent']} of {summary['alerts_queued']} queued |"]
    lines += [f"| seconds: {k} | {v:.2f} |" for k, v in summary["seconds"].items()]
    if summary.get("outage"):
        o = summary["outage"]
        worked = (f"has been polled successfully since {o['last_success_at']}" if o["last_success_at"]
                  else "has ever been polled successfully")
        lines += ["", f"**OUTAGE: none of the {o['feeds']} feeds {worked}** (each is failing or waiting in "
                      f"backoff; [schedule] outage_hours = {o['hours']:g})"]
    if summary.get("gone_feeds"):
        lines += ["", "**GONE (HTTP 410): remove or replace these feeds in the config**", ""]
        lines += [f"- {cell(f['name'])}: {cell(f['url'])}" for f in summary["gone_feeds"]]
    if summary.get("feeds_waiting"):
        lines += ["", f"Waiting (backoff or cache hint), not polled this run: "
                      f"{cell(', '.join(summary['feeds_waiting']))}"]
    if summary["failed_feeds"]:
        lines += ["", "**Failed feeds**", "", "| feed | error |", "|---|---|"]
        lines += [f"| {cell(f['name'])} | {cell(f['error'])} |" for f in summary["failed_feeds"]]
    if summary["matches"]:
        lines += ["", "**Matches**", "", "| score | tags | title |", "|---|---|---|"]
        lines += [f"| {m['score']} | {', '.join(m['tags'])} | {cell(m['title'])} |" for m in summary["matches"]]
    return "\n".join(lines)


def publish_summary(summary: dict[str, Any]) -> None:
    create_markdown_artifact(markdown=summary_markdown(summary), key="poll-summary",
                             description=f"newsmon poll run {summary['run_id']}")


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure hook: tell the channels routed for operational ("feed") alerts, `[alerts] urls` included,
    that a run failed (never raises). The run id is the idempotency key, so a repeated hook is one message."""
    try:
        settings = load_settings(flow_run.parameters.get("config"))
    except NewsmonError as exc:
        log.error("run %s failed and its config cannot be read to alert anyone: %s", flow_run.name, exc)
        return
    title = f"newsmon: run {flow_run.name} failed"
    body = f"The {flow.name} run {flow_run.name} failed: {clean(str(state.message), 500)}"
    for channel in route_channels(settings.alerts.all_routes, "feed"):
        try:
            AppriseNotifier().send(channel, title, body, key=f"run-failed-{flow_run.id}")
        except NewsmonError as exc:
            log.error("could not deliver the failure alert: %s", exc)
