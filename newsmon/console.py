"""Terminal output: run summaries and query results as rich tables (or CSV / JSON for scripts)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    if summary.get("skipped"):
        console.print(f"[yellow]skipped:[/] {summary['skipped']}", markup=True, highlight=False)
        return
    t = Table(title=f"newsmon run {summary['run_id']}", show_header=False)
    waiting = summary.get("feeds_waiting", [])
    t.add_row("feeds", f"{summary['feeds_total']} feeds: {summary['feeds_ok']} with news, "
              f"{summary['feeds_not_modified']} not modified, {len(summary['failed_feeds'])} failed"
              + (f", {len(waiting)} waiting (backoff or cache hint)" if waiting else ""))
    t.add_row("new articles", f"{summary['new_articles']} ({summary['pages_fell_back']} kept the feed summary)")
    t.add_row("matches", str(len(summary["matches"])))
    t.add_row("alerts", f"{summary['alerts_queued']} queued, {summary['alerts_sent']} sent"
              + (f", {len(summary['alert_errors'])} failed (retried next run)" if summary["alert_errors"] else ""))
    if summary.get("storage"):
        t.add_row("warehouse", str(summary["storage"]))
    t.add_row("seconds", ", ".join(f"{k} {v:.2f}" for k, v in summary["seconds"].items()))
    console.print(t)
    for m in summary["matches"]:
        console.print(f"  [green]match[/] {m['score']:6.1f}  {', '.join(m['tags'])}  {m['title']}\n"
                      f"         {m['url']}", markup=True, highlight=False)
    for f in summary["failed_feeds"]:
        console.print(f"  [red]failed[/] {f['name']}: {f['error']}", markup=True, highlight=False)
    for f in summary.get("gone_feeds", []):
        console.print(f"  [bold red]GONE (HTTP 410)[/] {f['name']}: the publisher removed {f['url']}; "
                      "remove or replace it in the config", markup=True, highlight=False)


def print_rows(cols: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    elif fmt == "json":
        print(json.dumps([dict(zip(cols, r, strict=True)) for r in rows], default=str, ensure_ascii=False,
                         indent=2))
    else:
        t = Table(*cols)
        for r in rows:
            t.add_row(*("" if v is None else str(v) for v in r))
        Console().print(t)
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


@contextmanager
def live_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress display fed by (stage, done, total) reports; None when not on a terminal."""
    if not enabled:
        yield None
        return
    labels = {"feeds": "polling feeds", "pages": "fetching and extracting pages"}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        ids: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in ids:
                ids[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(ids[stage], completed=done, total=total)
        yield report
def print_job_report(report: Any, console: Console | None = None) -> None:
    """A `newsmon retag` / `reextract` report (flows.jobs.JobReport): counts, then every story that flips."""
    console = console or Console()
    versions = ", ".join(f"{name} {version}" for name, version in report.rules_versions.items())
    done = "would re-tag (dry run, nothing written)" if report.dry_run else f"re-tagged {report.retagged}"
    text = f", text changed in {report.changed_text}" if report.changed_text else ""
    console.print(f"examined {report.examined} articles{text}; {done}; rules {versions}", highlight=False,
                  soft_wrap=True)
    verb = ("would start", "would stop") if report.dry_run else ("starts", "stops")
    for f in report.flips:
        old = "untagged" if f.old_score is None else f"{f.old_score:.2f}"
        console.print(f"  {verb[0] if f.starts else verb[1]} matching [{f.watchlist}] score {old} -> "
                      f"{f.new_score:.2f}  {f.title}\n      {f.url}", markup=False, highlight=False, soft_wrap=True)
    if not report.flips:
        console.print("  no story starts or stops matching", highlight=False)
    for url, why in report.failed:
        console.print(f"  failed {url}: {why}", markup=False, highlight=False, soft_wrap=True)
