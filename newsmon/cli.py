"""The `newsmon` command line. Heavy imports (Prefect, DuckDB, trafilatura) happen inside commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from extractors.lifeline import safe_children
from newsmon import __version__
from newsmon.config import ENV_CONFIG, Settings, append_feeds, default_config_text, load_settings, resolve_config_path
from newsmon.errors import (
    DISK_FULL_ADVICE,
    ConfigError,
    NewsmonError,
    RulesError,
    StorageError,
    disk_full,
    out_of_space,
)

EXIT_OK, EXIT_FEEDS_FAILED, EXIT_CONFIG, EXIT_WAREHOUSE = 0, 1, 2, 3

DESCRIPTION = """\
newsmon polls news feeds, extracts article text, tags stories about Azerbaijan-Russia relations
(energy, cooperation) in English, Russian and Azerbaijani, stores everything in a DuckDB file and
alerts once per matching story through Apprise (email, Slack, webhooks, ...).

Configuration: --config PATH, else $NEWSMON_CONFIG, else ./newsmon.toml (`newsmon init` writes one).
Environment: NEWSMON_ALERT_URLS replaces [alerts] urls; ${VAR} in an alert URL is read from the
environment; NEWSMON_WAREHOUSE replaces [warehouse] path.

Exit codes: 0 ok, 1 every feed failed (doctor: a part is not reachable), 2 configuration error,
3 warehouse error."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with safe_children():  # no process it starts imports from the working folder (extractors.lifeline)
            return int(args.func(args))
    except (ConfigError, RulesError) as exc:
        print(f"newsmon: configuration error: {shown(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    except StorageError as exc:
        said = shown(exc)
        if disk_full(exc) or warehouse_out_of_space(args):  # one line, whatever the database's message spans
            said = "; ".join(ln.strip() for ln in said.splitlines() if ln.strip()) + DISK_FULL_ADVICE
        print(f"newsmon: warehouse error: {said}", file=sys.stderr)
        return EXIT_WAREHOUSE
    except NewsmonError as exc:
        print(f"newsmon: {shown(exc)}", file=sys.stderr)
        return EXIT_FEEDS_FAILED
    except OSError as exc:
        if not disk_full(exc):
            raise
        print(f"newsmon: {exc.filename or 'a file'}: {exc.strerror}{DISK_FULL_ADVICE}", file=sys.stderr)
        return EXIT_WAREHOUSE
    except KeyboardInterrupt:
        return 130


def warehouse_out_of_space(args: argparse.Namespace) -> bool:
    """Whether a folder of the command's warehouse (state database, catalog, data) is out of space: SQLite says
    only "disk I/O error" when it cannot grow its shared-memory file on a full disk."""
    try:
        wh = load_settings(getattr(args, "config", None)).warehouse
    except NewsmonError:
        return False
    local = [t for t in (wh.state_target, wh.catalog_target) if "://" not in t and not t.startswith("postgres")]
    return out_of_space(*local, wh.data_folder)


def shown(exc: BaseException) -> str:
    """An error's message for the terminal: outside text in it (a feed's name, a server's header, a title) shows
    its control characters as visible escapes."""
    from newsmon.console import printable

    return printable(exc)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsmon", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"newsmon {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help: str, func: Any, config: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        if config:
            sp.add_argument("--config", "-c", metavar="PATH",
                            help=f"configuration file (default: ${ENV_CONFIG} or ./newsmon.toml)")
        sp.set_defaults(func=func)
        return sp

    run = cmd("run", "Poll every feed once (a Prefect flow run), store new articles, send alerts.", cmd_run)
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("--quiet", "-q", action="store_true", help="print nothing unless something failed")
    run.add_argument("--verbose", "-v", action="store_true", help="show Prefect's own log lines")
    cmd("migrate", "Move a single-file DuckDB warehouse of an earlier release ([warehouse] path) into the "
        "state database and the DuckLake; runs by itself on first use too.", cmd_migrate)
    cmd("serve", "Run the poll flow on the [schedule] interval with Prefect serve (no server needed); "
        "Ctrl-C stops.", cmd_serve)
    demo = cmd("demo", "Offline demo: serve a bundled news site on 127.0.0.1, run the full pipeline into a "
               "demo DuckDB file, print the matches and the alert it delivered.", cmd_demo, config=False)
    demo.add_argument("--dir", default="newsmon-demo", help="where the demo writes its config, "
                      "warehouse and alert inbox (default: ./newsmon-demo)")
    tag = cmd("tag", "Tag text with the watchlists, without fetching or storing anything.", cmd_tag)
    tag.add_argument("path", nargs="?", help="a plain-text file to tag, or - for stdin")
    tag.add_argument("--jsonl", action="store_true",
                     help='read lines {"id","title","text"} on stdin, write one result line per input')
    tag.add_argument("--title", default="", help="the title of the text (weighted above the body)")
    tag.add_argument("--watchlist", help="name of the watchlist to report (default: the built-in one)")
    sql = cmd("sql", "Run one SQL query on the warehouse, read-only, and print a table; or, with --attach, "
              "print the SQL that attaches the warehouse in your own DuckDB session (Python, DBeaver).", cmd_sql)
    sql.add_argument("query", nargs="?", help='e.g. "SELECT title, score FROM matches ORDER BY published_at DESC"')
    sql.add_argument("--attach", action="store_true", help="print LOAD/ATTACH/USE statements that make the "
                     "warehouse's tables and views queryable by name in a fresh DuckDB connection, read-only")
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table")
    report = cmd("report", "Write the analysts' HTML report (stories with evidence, trends, feed health); "
                 "one self-contained file that opens without network.", cmd_report)
    report.add_argument("--since", default="7d", help="period to cover, e.g. 7d, 36h, 2w (default: 7d)")
    report.add_argument("--out", default="report.html", help="file to write (default: ./report.html)")
    dig = cmd("digest", "Build the digest of recent matches, grouped by story cluster (HTML for email, Markdown "
              "for chat); print it, or send it to the channels routed for digests with --send.", cmd_digest)
    dig.add_argument("--since", default="24h", type=_duration, help="period to cover, e.g. 24h, 7d, 90m "
                     "(default: 24h)")
    dig.add_argument("--send", action="store_true",
                     help="send it (once per channel and period: per day for 24h or longer, else per hour)")
    dig.add_argument("--format", choices=["text", "markdown", "html"], default="text",
                     help="what to print (default: text)")
    exp = cmd("export", "Copy the warehouse to files for other tools: Parquet (one folder per table, "
              "partitioned by UTC day), CSV or JSON lines. Replaces what an earlier export wrote in DIR.", cmd_export)
    exp.add_argument("dir", metavar="DIR", help="output folder")
    exp.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet")
    exp.add_argument("--since", metavar="WHEN", help="only stories (and their tags, verdicts, alerts), runs "
                     "and log lines from this UTC date or time on, e.g. 2026-11-01 or 2026-11-01T06:00")
    feeds = cmd("feeds", "Show each feed's health (status, failures in a row, next poll, new entries, silent or "
                "gone); or manage the feed list: add URL, import FILE.opml, export (OPML to stdout).", cmd_feeds)
    feeds.add_argument("action", nargs="?", choices=["add", "import", "export"], help="omit to show feed health")
    feeds.add_argument("target", nargs="?", help="add: a feed or site URL; import: an OPML file")
    retag = cmd("retag", "Re-tag stored articles with the current rules, without fetching anything.", cmd_retag)
    retag.add_argument("--since", type=since_date, metavar="DATE",
                       help="only stories published (else fetched) on or after DATE (YYYY-MM-DD or ISO time)")
    retag.add_argument("--dry-run", action="store_true",
                       help="write nothing; list the stories that would start or stop matching")
    reext = cmd("reextract", "Re-run extraction over the raw pages kept with [extraction] keep_raw_pages, "
                "update changed articles and re-tag them.", cmd_reextract)
    reext.add_argument("--since", type=since_date, metavar="DATE",
                       help="only stories published (else fetched) on or after DATE (YYYY-MM-DD or ISO time)")
    _scale_commands(cmd)
    init = cmd("init", "Write a commented default configuration file.", cmd_init, config=False)
    init.add_argument("path", nargs="?", default="newsmon.toml")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    return p


def _scale_commands(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """`shards` and `doctor`: splitting the feed list for several workers, and checking what a config reaches."""
    shards = cmd("shards", "Split the feed list into N shard configs by site (every feed of one site in one "
                 "shard, so per-host politeness holds across shards); each shard shares [warehouse] and [alerts]. "
                 "Sites keep the shard an earlier run gave them; prints shard, hosts, feeds.", cmd_shards)
    shards.add_argument("n", metavar="N", type=_shard_count, help="how many shards (1 or more)")
    shards.add_argument("--out", default="shards", metavar="DIR",
                        help="folder for shard-1.toml .. shard-N.toml (default: ./shards)")
    shards.add_argument("--deployments", action="store_true", help="also write DIR/prefect.yaml: one poll "
                        "deployment per shard for the `newsmon` work pool (prefect deploy --all --prefect-file ...)")
    shards.add_argument("--rebalance", action="store_true",
                        help="deal every site afresh instead of keeping the shards of DIR's earlier configs")
    cmd("doctor", "Say what the config points at (state database, lake catalog, data path, Prefect API, alert "
        "channels) and whether each is reachable, one line each; changes and sends nothing. Exit 0 when all are "
        "OK, 1 when any is not, 2 when the config cannot be read.", cmd_doctor)


def prefect_env(verbose: bool = True) -> None:
    """Defaults for Prefect's ephemeral mode on small, offline machines (a user's own settings win)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def run_once(config: Path, *, verbose: bool = False, show_progress: bool = False) -> dict[str, Any]:
    from newsmon.alerts.notify import url_problem

    load_settings(config, check_url=url_problem)  # fail fast on a bad config or alert URL, before Prefect starts
    prefect_env(verbose)
    from flows import progress
    from flows.ephemeral import run_api
    from flows.poll import poll_feeds
    from newsmon.console import live_progress

    with live_progress(show_progress) as reporter:
        progress.set_reporter(reporter)
        try:
            with run_api():  # serve's server if one is up, else a temporary one that dies with this process
                return poll_feeds(config=str(config.resolve()))
        finally:
            progress.set_reporter(None)


def cmd_run(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    interactive = sys.stderr.isatty() and not (args.quiet or args.json or args.verbose)
    summary = run_once(path, verbose=args.verbose, show_progress=interactive)
    if args.json:
        from newsmon.console import json_text

        print(json_text(summary))
    elif not args.quiet or summary.get("failed_feeds") or summary.get("skipped"):
        from newsmon.console import print_summary

        print_summary(summary)
    return run_exit_code(summary)


def run_exit_code(summary: dict[str, Any]) -> int:
    total, failed = summary.get("feeds_total", 0), len(summary.get("failed_feeds", []))
    return EXIT_FEEDS_FAILED if total and failed == total else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from newsmon.alerts.notify import url_problem

    path = resolve_config_path(args.config)
    settings = load_settings(path, check_url=url_problem)
    prefect_env()
    from flows.serve import serve

    serve(settings)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from newsmon.demo.run import run_demo

    return run_demo(Path(args.dir), run_once)


def cmd_tag(args: argparse.Namespace) -> int:
    from newsmon.tagging import load_watchlists

    extra = load_settings(args.config).tagging.rules if args.config else ()
    watchlists = load_watchlists(list(extra))
    wl = next((w for w in watchlists if w.name == args.watchlist), None) if args.watchlist else watchlists[0]
    if wl is None:
        raise ConfigError(f"no watchlist named {args.watchlist!r}; have: "
                          + ", ".join(w.name for w in watchlists))
    if args.jsonl:
        for n, line in enumerate(sys.stdin, 1):
            if line.strip():
                doc = _jsonl_doc(line, n)
                r = wl.tag(str(doc.get("title") or ""), str(doc.get("text") or ""))
                print(json.dumps(r.to_dict(doc.get("id")), ensure_ascii=False))
        return EXIT_OK
    if not args.path:
        raise ConfigError("newsmon tag needs a file path, - for stdin, or --jsonl")
    text = sys.stdin.read() if args.path == "-" else Path(args.path).read_text(encoding="utf-8")
    print(json.dumps(wl.tag(args.title, text).to_dict(args.path), ensure_ascii=False, indent=2))
    return EXIT_OK


def _jsonl_doc(line: str, n: int) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"stdin line {n}: not JSON ({exc}); expected {{\"id\",\"title\",\"text\"}}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"stdin line {n}: expected a JSON object with id, title, text")
    return doc


def _open_read_only(args: argparse.Namespace) -> Any:
    from warehouse import open_reader

    return open_reader(load_settings(args.config).warehouse)


def cmd_sql(args: argparse.Namespace) -> int:
    from newsmon.console import print_rows

    if args.attach:
        from warehouse import location, open_warehouse
        from warehouse.attach import analyst_sql

        settings = load_settings(args.config)
        open_warehouse(settings.warehouse).close()  # created (or migrated) if it is not there yet
        print(analyst_sql(location(settings.warehouse)), end="")
        return EXIT_OK
    if not args.query:
        raise ConfigError('newsmon sql needs a query, e.g. newsmon sql "SELECT count(*) FROM articles", or --attach')
    from warehouse import open_sql_session

    session = open_sql_session(load_settings(args.config).warehouse)
    try:
        cols, rows = session.query(args.query)
    finally:
        session.close()
    print_rows(cols, rows, args.format)
    return EXIT_OK


def _duration(text: str) -> Any:
    from datetime import timedelta

    units = {"m": 60, "h": 3600, "d": 86400}
    num, unit = text[:-1], text[-1:].lower()
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number with m, h or d, e.g. 24h")
    return timedelta(seconds=value * units[unit])


def cmd_digest(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from newsmon.alerts.digest import build_digest, send_digest
    from newsmon.alerts.notify import AppriseNotifier, url_problem
    from warehouse import open_warehouse

    settings = load_settings(args.config, check_url=url_problem if args.send else None)
    now = datetime.now(UTC)
    if not args.send:
        digest = build_digest(_open_read_only(args), since=args.since, now=now)
        renders: dict[str, Callable[[], str]] = {"text": digest.text, "markdown": lambda: digest.markdown().body,
                                                 "html": lambda: digest.html().body}
        print(renders[args.format]())
        return EXIT_OK
    wh = open_warehouse(settings.warehouse)
    try:
        digest, queued, report = send_digest(wh, settings.alerts, AppriseNotifier(), since=args.since, now=now)
        wh.runs.sync_alerts()
    finally:
        wh.close()
    print(f"{len(digest.stories)} stories; {queued} digest(s) queued, {report.messages} sent"
          + "".join(f"\nerror: {e}" for e in report.errors))
    return EXIT_FEEDS_FAILED if report.errors else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from newsmon.console import print_rows

    since = parse_since(args.since) if args.since else None
    done = _open_read_only(args).export(Path(args.dir), args.format, since=since)
    print_rows(["table", "rows"], done, "table")
    return EXIT_OK


def parse_since(text: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--since {text!r}: expected a date like 2026-11-01 or 2026-11-01T06:00") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


FEED_HEALTH_SQL = """
SELECT name, last_status AS status, consecutive_failures AS failures, strftime(next_poll_at, '%Y-%m-%d %H:%M')
       AS next_poll, strftime(last_success_at, '%Y-%m-%d %H:%M') AS last_success, new_24h, per_day_7d,
       CASE WHEN gone THEN 'GONE' WHEN silent THEN 'silent' ELSE '' END AS flag, last_error
FROM feed_health ORDER BY gone DESC, consecutive_failures DESC, silent DESC, name"""


def cmd_feeds(args: argparse.Namespace) -> int:
    if args.action is None:
        from newsmon.console import print_rows

        cols, rows = _open_read_only(args).query(FEED_HEALTH_SQL)
        print_rows(cols, rows, "table")
        return EXIT_OK
    path = resolve_config_path(args.config)
    settings = load_settings(path)
    if args.action == "export":
        from extractors.opml import to_opml

        sys.stdout.write(to_opml(settings.feeds, title=f"newsmon feeds ({path.name})"))
        return EXIT_OK
    if not args.target:
        raise ConfigError(f"newsmon feeds {args.action} needs a {'URL' if args.action == 'add' else 'FILE'}")
    return _feeds_add(path, settings, args.target) if args.action == "add" else _feeds_import(path, args.target)


def _feeds_add(path: Path, settings: Settings, url: str) -> int:
    from extractors.discovery import discover_feed

    feed = discover_feed(url, settings.http)
    added = append_feeds(path, [feed])
    print(f"added {added[0].name!r} {feed.url} to {path}" if added else f"{feed.url} is already in {path}")
    return EXIT_OK


def _feeds_import(path: Path, opml: str) -> int:
    from extractors.opml import parse_opml

    try:
        data = Path(opml).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{opml}: cannot read the OPML file ({exc})") from exc
    feeds = parse_opml(data, opml)
    added = append_feeds(path, feeds)
    print(f"imported {len(added)} new feed(s) of {len(feeds)} in {opml} into {path}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from newsmon.report import build_report, parse_since

    since = parse_since(args.since)
    path = build_report(load_settings(args.config), since, Path(args.out))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return EXIT_OK


def since_date(text: str) -> datetime:
    """--since: a date (midnight UTC) or an ISO date-time (UTC when it has no offset)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD or 2025-06-01T12:00") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _maintenance(args: argparse.Namespace, job: Any) -> int:
    """Open the warehouse, run `job(warehouse, watchlists)`, print its report."""
    from newsmon.tagging import load_watchlists
    from warehouse import location, open_warehouse

    settings = load_settings(resolve_config_path(args.config))
    watchlists = load_watchlists(list(settings.tagging.rules))
    if not location(settings.warehouse).exists() and not settings.warehouse.path.exists():
        raise StorageError(f"{settings.warehouse.catalog_shown}: no warehouse here yet; run `newsmon run` first")
    wh = open_warehouse(settings.warehouse)
    try:
        report = job(wh, watchlists)
    finally:
        wh.close()
    from newsmon.console import print_job_report

    print_job_report(report)
    return EXIT_OK


def cmd_retag(args: argparse.Namespace) -> int:
    from flows.jobs import retag

    now = datetime.now(UTC)
    return _maintenance(args, lambda wh, wls: retag(wh, wls, since=args.since, dry_run=args.dry_run, now=now))


def cmd_reextract(args: argparse.Namespace) -> int:
    from flows.jobs import reextract

    now = datetime.now(UTC)
    return _maintenance(args, lambda wh, wls: reextract(wh, wls, since=args.since, now=now))


def cmd_migrate(args: argparse.Namespace) -> int:
    from warehouse import open_warehouse
    from warehouse.legacy import MIGRATED_SUFFIX, legacy_file

    settings = load_settings(resolve_config_path(args.config)).warehouse
    old = legacy_file(settings)
    if old is None:
        print(f"nothing to migrate: {settings.path} is not a single-file DuckDB warehouse "
              f"(the warehouse is {settings.catalog_shown} with data in {settings.data_folder})")
        return EXIT_OK
    open_warehouse(settings).close()
    print(f"migrated {old} into {settings.catalog_shown} (data in {settings.data_folder}/) and "
          f"{settings.state_shown}; the old file is kept as {old.name}{MIGRATED_SUFFIX}")
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    path.write_text(default_config_text(), encoding="utf-8")
    print(f"wrote {path}; edit [[feeds]] and [alerts] urls, then run `newsmon run --config {path}`")
    return EXIT_OK


def _shard_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the number of shards must be a whole number, 1 or more")
    return n


SHARD_FILE = "shard-{}.toml"


def cmd_shards(args: argparse.Namespace) -> int:
    from extractors.shards import assign, sites_by_shard
    from newsmon.config import write_derived_config
    from newsmon.console import print_rows

    settings = load_settings(resolve_config_path(args.config))
    out = Path(args.out).resolve()
    before, same_n = _earlier_shards(out, args.n)
    shards = assign(settings.feeds, args.n, before if same_n and not args.rebalance else None)
    command = f"newsmon shards {args.n}"
    configs = []
    for s in shards:
        path = out / SHARD_FILE.format(s.number)
        write_derived_config(settings.source, path, s.feeds, [
            f"newsmon shard {s.number} of {args.n}: written by `{command}` from {settings.source}.",
            "Edit the main config and run the command again rather than this file (sites keep their shard).",
            f"Sites: {', '.join(s.sites) or '(none)'}"])
        configs.append((s.number, path))
    for stale in sorted(out.glob(SHARD_FILE.format("*"))):
        number = stale.stem.removeprefix("shard-")
        if number.isdigit() and int(number) > args.n:
            stale.unlink()
            print(f"removed {stale} (shard {number} of an earlier split): delete its deployment too, "
                  f"prefect deployment delete poll-feeds/newsmon-poll-shard-{number}")
    print_rows(["shard", "hosts", "feeds", "config"],
               [(s.number, len(s.sites), len(s.feeds), str(p)) for s, (_, p) in zip(shards, configs, strict=True)],
               "table")
    now = sites_by_shard(shards)
    moved = sum(1 for site, k in now.items() if site in before and before[site] != k)
    new = sum(1 for site in now if site not in before)
    print(f"{len(now)} hosts, {len(settings.feeds)} feeds in {args.n} shards" + (
        f"; against the earlier shards in {out}: {new} new hosts placed, {moved} moved" if before else ""))
    if moved:
        print("a moved host is polled by its new shard from that shard's next run (a run in progress finishes "
              "with the old list); with a new N, deploy DIR/prefect.yaml again")
    if args.deployments or (out / "prefect.yaml").exists():
        from flows.deployments import shard_deployments_yaml

        yaml_path = out / "prefect.yaml"
        yaml_path.write_text(shard_deployments_yaml(configs, settings.schedule, source=settings.source,
                                                    command=f"{command} --deployments"), encoding="utf-8")
        print(f"wrote {yaml_path}: prefect --no-prompt deploy --all --prefect-file {yaml_path}")
    return EXIT_OK


def _earlier_shards(out: Path, n: int) -> tuple[dict[str, int], bool]:
    """Site -> shard of the shard configs an earlier `newsmon shards` wrote in `out` (shard-1.toml on), and
    whether they were N shards."""
    from extractors.shards import site_of

    paths: list[Path] = []
    while (path := out / SHARD_FILE.format(len(paths) + 1)).exists():
        paths.append(path)
    earlier = {site_of(f.url): k for k, p in enumerate(paths, 1) for f in load_settings(p).feeds}
    return earlier, len(paths) == n


def cmd_doctor(args: argparse.Namespace) -> int:
    from flows.doctor import diagnose
    from newsmon.console import printable

    path = resolve_config_path(args.config)
    settings = load_settings(path)
    print(printable(f"newsmon doctor: {settings.source} ({len(settings.feeds)} feeds)"))
    parts = diagnose(settings)
    width = max(len(p.name) for p in parts)
    for p in parts:
        print(printable(f"{'OK' if p.ok else 'FAIL':<4}  {p.name:<{width}}  {p.target}: {p.probe.detail}"))
    failed = sum(1 for p in parts if not p.ok)
    print(f"{failed} of {len(parts)} parts FAIL" if failed else f"all {len(parts)} parts OK")
    return EXIT_FEEDS_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
