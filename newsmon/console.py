"""Terminal output: run summaries and query results as rich tables (or CSV / JSON for scripts)."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from newsmon.config import placeholder_contact

# Characters that act on a terminal instead of showing: C0 controls (tab and newline aside), DEL, C1 controls
# (ESC ] 0;title BEL, ESC [ 31m, CSI as U+009B) and the bidi controls that reorder what follows (U+202E) or
# end a line (U+2028/9). Outside text shows them as visible escapes; `_UNSAFE_IN_LINE` adds tab and newline.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE_TEXT = re.compile(f"[{_UNSAFE}]")
_UNSAFE_IN_LINE = re.compile(f"[\t\n{_UNSAFE}]")
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")  # json.dumps escapes C0


def printable(value: object, *, one_line: bool = False) -> str:
    """Text from outside (feeds, pages, servers, query results) as a terminal may show it: every character that
    would move the cursor, retitle the window, colour or reorder text is written as a visible escape (`\\x1b`,
    `\\u202e`); with `one_line`, tabs and newlines too."""
    text = "" if value is None else str(value)
    return (_UNSAFE_IN_LINE if one_line else _UNSAFE_TEXT).sub(_escape, text)


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def text(value: object, style: str = "", *, one_line: bool = False) -> Text:
    """Outside text as a rich renderable: printed as it is (never read as markup such as `[/x]` or `:emoji:`),
    with terminal controls made visible. Every piece of outside text goes to rich through here."""
    return Text(printable(value, one_line=one_line), style=style, end="")


def line(*parts: Text | str) -> Text:
    """One output line of our own words (str, taken literally) and outside text (`text(...)`)."""
    return Text.assemble(*parts, end="")


def plain_console() -> Console:
    """A console that reads nothing as markup, emoji codes or things to highlight, even in plain strings."""
    return Console(markup=False, emoji=False, highlight=False)


def json_text(value: Any) -> str:
    """JSON for the terminal: json.dumps escapes C0 controls, and this the rest (DEL, C1, bidi), which can only
    sit inside strings there, as \\u escapes (e.g. \\u202e); the data read back is the same."""
    out = json.dumps(value, default=str, ensure_ascii=False, indent=2)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or plain_console()
    if summary.get("skipped"):
        console.print(line(text("skipped:", "yellow"), " ", text(summary["skipped"], one_line=True)))
        return
    t = Table(title=text(f"newsmon run {summary['run_id']}", one_line=True), show_header=False)
    waiting = summary.get("feeds_waiting", [])
    t.add_row("feeds", f"{summary['feeds_total']} feeds: {summary['feeds_ok']} with news, "
              f"{summary['feeds_not_modified']} not modified, {len(summary['failed_feeds'])} failed"
              + (f", {len(waiting)} waiting (backoff or cache hint)" if waiting else ""))
    t.add_row("new articles", f"{summary['new_articles']} ({summary['pages_fell_back']} kept the feed summary)")
    if summary.get("pages_left"):  # a time budget ran out (a slow host): those pages wait for the next run
        t.add_row("left for next run", text(f"{summary['pages_left']} pages: {'; '.join(summary['budgets_spent'])}"))
    t.add_row("matches", str(len(summary["matches"])))
    t.add_row("alerts", f"{summary['alerts_queued']} queued, {summary['alerts_sent']} sent"
              + (f", {len(summary['alert_errors'])} failed (retried next run)" if summary["alert_errors"] else ""))
    if summary.get("storage"):
        t.add_row("warehouse", text(summary["storage"]))
    t.add_row("seconds", ", ".join(f"{k} {v:.2f}" for k, v in summary["seconds"].items()))
    console.print(t)
    for m in summary["matches"]:
        console.print(line("  ", text("match", "green"), f" {m['score']:6.1f}  ",
                           text(", ".join(m["tags"]), one_line=True), "  ", text(m["title"], one_line=True),
                           "\n         ", text(m["url"], one_line=True)))
    for f in summary["failed_feeds"]:
        console.print(line("  ", text("failed", "red"), " ", text(f["name"], one_line=True), ": ",
                           text(f["error"], one_line=True)))
    for e in summary.get("alert_errors", []):  # the service's own reason, secrets redacted
        console.print(line("  ", text("alert failed", "red"), " ", text(e, one_line=True)))
    for f in summary.get("gone_feeds", []):
        console.print(line("  ", text("GONE (HTTP 410)", "bold red"), " ", text(f["name"], one_line=True),
                           ": the publisher removed ", text(f["url"], one_line=True),
                           "; remove or replace it in the config"))
    if summary.get("outage"):
        console.print(line("  ", text("OUTAGE:", "bold red"), " ", outage_words(summary["outage"])), soft_wrap=True)


def outage_words(outage: dict[str, Any]) -> str:
    """A run summary's `outage` in one sentence: since when no feed worked, and what to do."""
    from datetime import UTC, datetime

    from newsmon.hints import command

    last = outage.get("last_success_at")
    worked = (f"has been polled successfully since {datetime.fromisoformat(last).astimezone(UTC):%Y-%m-%d %H:%M} "
              f"UTC (more than [schedule] outage_hours = {outage['hours']:g} ago)" if last
              else "has ever been polled successfully")
    return (f"none of the {outage['feeds']} feeds {worked}; each is failing or waiting in backoff: "
            f"`{command()} feeds` shows why, `{command()} run --now` polls them all now")


def print_problems(summary: dict[str, Any], console: Console | None = None) -> int:
    """What went wrong in a run, one line each on stderr (`newsmon run --quiet`): each failed feed, each failed
    alert, the outage. Returns how many lines it printed."""
    console = console or Console(stderr=True, markup=False, emoji=False, highlight=False)
    lines: list[Text] = []
    if summary.get("skipped"):
        lines.append(line("newsmon: skipped: ", text(summary["skipped"], one_line=True)))
    lines += [line("newsmon: feed ", text(f["name"], one_line=True), " failed: ", text(f["error"], one_line=True))
              for f in summary.get("failed_feeds", [])]
    lines += [line("newsmon: alert failed: ", text(e, one_line=True)) for e in summary.get("alert_errors", [])]
    if summary.get("outage"):
        lines.append(line("newsmon: outage: ", outage_words(summary["outage"])))
    for ln in lines:
        console.print(ln, soft_wrap=True)
    return len(lines)


def print_rows(cols: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    """Rows as `table` (rich, cut to the terminal's width), `csv` or `tsv` (a header row, then every value whole:
    lists and structs as JSON text, text a spreadsheet would run prefixed with ') or `json` (lossless)."""
    if fmt in ("csv", "tsv"):
        from warehouse.export import csv_cell  # the export's rule: text a spreadsheet would run gets a '

        cells = [[csv_cell(printable(c)) for c in cols]]
        cells += [[csv_cell(flat_cell(v)) for v in r] for r in rows]
        if fmt == "csv":
            csv.writer(sys.stdout).writerows(cells)
        else:
            sys.stdout.writelines("\t".join(tsv_cell(v) for v in r) + "\n" for r in cells)
    elif fmt == "json":
        print(json_text([dict(zip(cols, r, strict=True)) for r in rows]))
    else:
        t = Table()
        for c in cols:
            t.add_column(text(c))
        for r in rows:
            t.add_row(*(text(v) for v in r))
        plain_console().print(t)
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def flat_cell(value: Any) -> Any:
    """A value for one CSV/TSV cell: text with terminal controls made visible (`printable`), a list, tuple or
    dict (a DuckDB LIST, STRUCT or MAP) as compact JSON text; anything else as it is."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list | tuple | dict):
        out = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
        return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return value


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_cell(value: Any) -> str:
    """A TSV field: NULL is empty; a backslash, tab, newline or carriage return is written \\\\, \\t, \\n, \\r."""
    return "" if value is None else str(value).translate(_TSV_ESCAPES)


@contextmanager
def live_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress display fed by (stage, done, total) reports; None when not on a terminal."""
    if not enabled:
        yield None
        return
    labels = {"feeds": "polling feeds", "pages": "fetching and extracting pages"}
    with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        ids: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in ids:
                ids[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(ids[stage], completed=done, total=total)
        yield report
def print_job_report(report: Any, console: Console | None = None) -> None:
    """A `newsmon retag` / `reextract` report (flows.jobs.JobReport): counts, then every story that flips."""
    console = console or plain_console()
    versions = ", ".join(f"{name} {version}" for name, version in report.rules_versions.items())
    done = "would re-tag (dry run, nothing written)" if report.dry_run else f"re-tagged {report.retagged}"
    changed = f", text changed in {report.changed_text}" if report.changed_text else ""
    console.print(line(f"examined {report.examined} articles{changed}; {done}; rules ", text(versions, one_line=True)),
                  soft_wrap=True)
    verb = ("would start", "would stop") if report.dry_run else ("starts", "stops")
    for f in report.flips:
        old = "untagged" if f.old_score is None else f"{f.old_score:.2f}"
        console.print(line(f"  {verb[0] if f.starts else verb[1]} matching [", text(f.watchlist, one_line=True),
                           f"] score {old} -> {f.new_score:.2f}  ", text(f.title, one_line=True), "\n      ",
                           text(f.url, one_line=True)), soft_wrap=True)
    if not report.flips:
        console.print("  no story starts or stops matching")
    for url, why in report.failed:
        console.print(line("  failed ", text(url, one_line=True), ": ", text(why, one_line=True)), soft_wrap=True)


def contact_warning(source: object, contact: str) -> str | None:
    """The one line every run (and `init`) prints while [http] contact_url names no one; None when it names
    someone."""
    if not placeholder_contact(contact):
        return None
    return printable(f"newsmon: warning: {source}: [http] contact_url is a placeholder ({contact or 'empty'}), sent "
                     "in the User-Agent: set it to a web page or email address where site operators can reach you",
                     one_line=True)
