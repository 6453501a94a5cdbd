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
from newsmon.config import (
    ENV_CONFIG,
    PLACEHOLDER_CONTACT,
    Settings,
    append_feeds,
    contact_value,
    default_config_text,
    feed_name,
    load_settings,
    placeholder_contact,
    resolve_config_path,
    with_contact,
)
from newsmon.errors import (
    DISK_FULL_ADVICE,
    ConfigError,
    InputError,
    NewsmonError,
    RulesError,
    StorageError,
    disk_full,
    out_of_space,
)
from newsmon.hints import command as hint
from newsmon.hints import quoted
from newsmon.since import Since, parse_since

EXIT_OK, EXIT_FEEDS_FAILED, EXIT_CONFIG, EXIT_WAREHOUSE = 0, 1, 2, 3

DESCRIPTION = """\
newsmon polls news feeds, extracts article text, tags stories about Azerbaijan-Russia relations
(energy, cooperation) in English, Russian, Azerbaijani, Turkish and more, stores everything in a DuckDB lakehouse
(DuckLake: Parquet files and a catalog) you query with SQL, and alerts once per matching story through
Apprise (email, Slack, webhooks, ...). Polls run as Prefect flows: `run` once, `serve` on a schedule.

Configuration: --config PATH, else $NEWSMON_CONFIG, else ./newsmon.toml (`newsmon init` writes one).
Environment: NEWSMON_ALERT_URLS replaces [alerts] urls; ${VAR} in an alert URL is read from the
environment; NEWSMON_WAREHOUSE replaces [warehouse] path.

Exit codes: 0 ok, 1 every feed failed or an outage (no feed worked within [schedule] outage_hours;
doctor: a part is not reachable; tag --jsonl: a line was skipped), 2 configuration error (run, serve:
a config without feeds too) or bad input (a missing, folder or binary file, a bad option value),
3 warehouse error. Errors are one line on stderr starting "newsmon:".

--since (digest, report, export, retag, reextract): a duration back from now (30m, 6h, 24h, 7d, 2w)
or a date or time (2026-11-01, 2026-11-01T12:00, UTC unless it names a zone)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_args(parser, argv)
    except SystemExit as exc:  # --help, --version, a usage error (argparse said why in one line)
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    try:
        with safe_children():  # no process it starts imports from the working folder (extractors.lifeline)
            return int(args.func(args))
    except InputError as exc:
        print(f"newsmon: {shown(exc)}", file=sys.stderr)
        return EXIT_CONFIG
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
        if disk_full(exc):
            print(f"newsmon: {exc.filename or 'a file'}: {exc.strerror}{DISK_FULL_ADVICE}", file=sys.stderr)
            return EXIT_WAREHOUSE
        print(f"newsmon: {unusable_path(exc)}", file=sys.stderr)  # a path given on the command line
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parser.parse_args, except that `feeds add --all URL` works like `feeds add URL --all`: argparse fills
    both optional positionals of `feeds` before it meets the flag, and would refuse the URL after it."""
    args, extra = parser.parse_known_args(argv)
    if args.command == "feeds" and args.action and args.target is None and len(extra) == 1 \
            and not extra[0].startswith("-"):
        args.target, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def remote_warehouse(settings: Settings) -> bool:
    """Whether the state database or the catalog is a PostgreSQL server (which may be down for a while and come
    back: `serve` starts all the same, and each run that finds it down fails alone, with its failure notice)."""
    wh = settings.warehouse
    return any(_server(t) for t in (wh.state_target, wh.catalog_target))


def _server(target: str) -> bool:
    """Whether a state or catalog target names a database server (a URL or `postgres:`), not a local file."""
    return "://" in target or target.startswith("postgres")


def warehouse_out_of_space(args: argparse.Namespace) -> bool:
    """Whether a folder of the command's warehouse (state database, catalog, data) is out of space: SQLite says
    only "disk I/O error" when it cannot grow its shared-memory file on a full disk."""
    try:
        wh = load_settings(getattr(args, "config", None), alert_secrets=False).warehouse
    except NewsmonError:
        return False
    local = [t for t in (wh.state_target, wh.catalog_target) if not _server(t)]
    return out_of_space(*local, wh.data_folder)


def shown(exc: BaseException) -> str:
    """An error's message for the terminal, in one line: outside text in it (a feed's name, a server's header, a
    title) shows its control characters as visible escapes; a message of several lines (DuckDB's, with the
    query's `LINE 1: ...` and a caret under it) is joined with "; ", caret lines left out."""
    from newsmon.console import printable

    lines = (ln.strip() for ln in str(exc).splitlines())
    return printable("; ".join(ln for ln in lines if ln.strip("^ ")), one_line=True)


def unusable_path(exc: OSError) -> str:
    """An OS error about a path a command was given (a file to read, a folder to write), in one line."""
    from newsmon.console import printable

    where = exc.filename or "a file"
    if isinstance(exc, FileExistsError) and Path(where).is_file():  # a folder was to be made there
        why = "a file is in the way of the folder to write in; name a folder"
    elif isinstance(exc, NotADirectoryError):
        why = "a part of this path is a file, not a folder"
    else:
        why = f"{exc.strerror or exc}; check the path and its permissions"
    return printable(f"{where}: {why}", one_line=True)


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

    run = cmd("run", "Poll every feed that is due once (a Prefect flow run), store new articles, send alerts. "
              "Exit 1 when every feed failed, or in an outage: no feed polled successfully within [schedule] "
              "outage_hours (default 6; never, on a new install) and each is failing or waiting in backoff.", cmd_run)
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("--quiet", "-q", action="store_true", help="print no summary, only what failed (each failed "
                     "feed and alert, an outage), one line each on stderr")
    run.add_argument("--now", action="store_true", help="poll every feed now, also those waiting in backoff (after "
                     "failures), for a Retry-After or for a cache hint (max-age, <ttl>)")
    run.add_argument("--verbose", "-v", action="store_true", help="show Prefect's own log lines")
    cmd("migrate", "Move a single-file DuckDB warehouse of an earlier release ([warehouse] path) into the "
        "state database and the DuckLake; runs by itself on first use too.", cmd_migrate)
    cmd("serve", "Serve three Prefect deployments on their [schedule] until Ctrl-C or SIGTERM: the poll every "
        "interval_minutes (or cron), the digest at digest_time, maintenance at maintenance_cron. Without "
        "PREFECT_API_URL it starts a local Prefect server on 127.0.0.1 (its scheduler fires the runs; the UI "
        "address is printed) and stops it on exit; with PREFECT_API_URL it uses that server. No work pool.",
        cmd_serve)
    demo = cmd("demo", "Offline demo: serve a bundled news site on 127.0.0.1, run the full pipeline into a "
               "demo warehouse (DuckLake) in DIR, print the matches and the alert it delivered to a local webhook "
               "inbox.", cmd_demo, config=False)
    demo.add_argument("--dir", default="newsmon-demo", help="folder where the demo writes its config, "
                      "warehouse and alert inbox (default: ./newsmon-demo)")
    tag = cmd("tag", "Tag text with the watchlists, without fetching or storing anything.", cmd_tag)
    tag.add_argument("path", nargs="?", help="a plain-text file to tag, or - for stdin")
    tag.add_argument("--jsonl", action="store_true",
                     help='read lines {"id","title","text"} on stdin, write one result line per input')
    tag.add_argument("--title", default="", help="the title of the text (weighted above the body)")
    tag.add_argument("--watchlist", help="name of the watchlist to report (default: the built-in one)")
    sql = cmd("sql", "Run one SQL query on the warehouse, read-only, and print the rows (a table on a terminal, "
              "CSV when piped or redirected); or, with --attach, print the SQL that attaches the warehouse in your "
              "own DuckDB session (Python, DBeaver).", cmd_sql)
    sql.add_argument("query", nargs="?", help='e.g. "SELECT title, score FROM matches ORDER BY published_at DESC"')
    sql.add_argument("--attach", action="store_true", help="print LOAD/ATTACH/USE statements that make the "
                     "warehouse's tables and views queryable by name in a fresh DuckDB connection, read-only")
    sql.add_argument("--format", choices=["table", "csv", "tsv", "json"],
                     help="table: for reading on a terminal (long values cut to fit); csv: a header row, then one "
                     "row per result row, full values, lists and structs as JSON text; tsv: the same, tab-separated "
                     "(tab, newline and backslash in a value written \\t, \\n, \\\\); json: one array of "
                     "objects. Default: table when stdout is a terminal, else csv")
    report = cmd("report", "Write the analysts' HTML report (stories with evidence, trends, feed health); "
                 "one self-contained file that opens without network.", cmd_report)
    report.add_argument("--since", default="7d", type=since_arg, metavar="WHEN",
                        help=f"period to cover: {SINCE_FORMS} (default: 7d)")
    report.add_argument("--out", default="report.html", help="file to write (default: ./report.html)")
    dig = cmd("digest", "Build the digest of recent matches, grouped by story cluster (HTML for email, Markdown "
              "for chat); print it, or send it to the channels routed for digests with --send.", cmd_digest)
    dig.add_argument("--since", default="24h", type=since_arg, metavar="WHEN",
                     help=f"period to cover: {SINCE_FORMS} (default: 24h)")
    dig.add_argument("--send", action="store_true",
                     help="send it (once per channel and period: per day for 24h or longer, else per hour)")
    dig.add_argument("--format", choices=["text", "markdown", "html"], default="text",
                     help="what to print (default: text)")
    al = cmd("alerts", "Check the alert channels: `alerts test` sends one test message to each configured channel "
             "(or only --channel NAME) and prints one line per channel: OK, or FAIL with the service's own reason "
             "(secrets redacted). Stores nothing. Exit 0 when every message was delivered, 1 when any was not, 2 "
             "on a configuration error.", cmd_alerts)
    al.add_argument("action", choices=["test"], help="test: send one test message per channel")
    al.add_argument("--channel", metavar="NAME", help="only this channel: a route name, a channel as printed "
                    "(e.g. mailto://smtp.example.com) or its URL")
    exp = cmd("export", "Copy every table and view to files for other tools: Parquet (one folder per table, "
              "partitioned by UTC day), CSV (nested columns as JSON text) or JSON lines. Replaces what an earlier "
              "export wrote in DIR.", cmd_export)
    exp.add_argument("dir", metavar="DIR", help="output folder")
    exp.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet")
    exp.add_argument("--since", type=since_arg, metavar="WHEN", help="only stories (and their tags, verdicts, "
                     f"alerts), runs and log lines from WHEN on: {SINCE_FORMS}")
    _feed_and_rerun_commands(cmd)
    _scale_commands(cmd)
    init = cmd("init", "Write a commented default configuration file (the real feeds, no alert channels) with your "
               "contact for the User-Agent.", cmd_init, config=False)
    init.add_argument("path", nargs="?", default="newsmon.toml",
                      help="the configuration file to write (default: ./newsmon.toml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument("--contact", metavar="URL_OR_EMAIL", help="where site operators can reach you (a web page or "
                      "an email address), sent in the User-Agent of every request; without it, asked for on a "
                      "terminal, else taken from `git config user.email`; runs warn while there is none")
    return p


def _feed_and_rerun_commands(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """`feeds` (health and the feed list), `retag` and `reextract` (stages run again over stored articles)."""
    feeds = cmd("feeds", "Show each feed's health (status, failures in a row, next poll, new entries, silent or "
                "gone); or manage the feed list: add URL, import FILE.opml, export (OPML to stdout).", cmd_feeds)
    feeds.add_argument("action", nargs="?", choices=["add", "import", "export"], help="omit to show feed health")
    feeds.add_argument("target", nargs="?", help="add: a feed or site URL; import: an OPML file")
    feeds.add_argument("--all", action="store_true", help="add: when the site's page announces several feeds, "
                       "add every one that parses (without it they are listed and none is added)")
    retag = cmd("retag", "Re-tag stored articles with the current rules, without fetching anything.", cmd_retag)
    retag.add_argument("--since", type=since_arg, metavar="WHEN",
                       help=f"only stories published (else fetched) from WHEN on: {SINCE_FORMS}")
    retag.add_argument("--dry-run", action="store_true",
                       help="write nothing; list the stories that would start or stop matching")
    reext = cmd("reextract", "Re-run extraction over the raw pages kept with [extraction] keep_raw_pages, "
                "update changed articles and re-tag them.", cmd_reextract)
    reext.add_argument("--since", type=since_arg, metavar="WHEN",
                       help=f"only stories published (else fetched) from WHEN on: {SINCE_FORMS}")


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


def run_once(config: Path, *, verbose: bool = False, show_progress: bool = False, every_feed: bool = False,
             announce: bool = False) -> dict[str, Any]:
    """One poll run of `config` in this process. With `announce`, one line on stderr says what starts, at once
    (Prefect takes seconds to start)."""
    from newsmon.alerts.notify import url_problem

    settings = load_settings(config, check_url=url_problem)  # a bad config or alert URL fails before Prefect starts
    require_feeds(settings)
    if announce:
        from newsmon.console import printable

        n = len(settings.feeds)
        feeds = f"all {n} feeds now" if every_feed else f"{n} feeds (those due)"
        print(printable(f"newsmon: polling {feeds} into {settings.warehouse.catalog_shown}; starting Prefect...",
                        one_line=True), file=sys.stderr, flush=True)
    prefect_env(verbose)
    from flows.ephemeral import run_api, start_early

    early = start_early()  # no API and no serve: the temporary server starts beside Prefect's import (~1 s)
    notices = import_prefect_quietly()
    from flows import progress
    from flows.poll import poll_feeds, summary_lines_off_console
    from newsmon.console import live_progress

    if early:  # the extraction pool's forkserver imports trafilatura on the core the server's start leaves free
        from extractors.pages import start_forkserver
        from flows.derive import POOL_PRELOAD

        start_forkserver(POOL_PRELOAD)

    log_prefect_notices(notices)
    if not verbose:
        summary_lines_off_console()  # the summary (or --quiet's lines) says each failure once
    with live_progress(show_progress) as reporter:
        progress.set_reporter(reporter)
        try:
            with run_api():  # serve's server if one is up, else a temporary one that dies with this process
                return poll_feeds(config=str(config.resolve()), every_feed=every_feed)
        finally:
            progress.set_reporter(None)


def require_feeds(settings: Settings) -> None:
    """A config without feeds polls nothing: a configuration error (run, serve) rather than a silent success."""
    if settings.feeds:
        return
    same = resolve_config_path(None).resolve() == settings.source.resolve()  # what `newsmon feeds add` would edit
    where = "" if same else f" --config {quoted(settings.source)}"
    raise ConfigError(f"no feeds in {settings.source}: add [[feeds]] or `{hint()} feeds add URL{where}`")


def import_prefect_quietly() -> str:
    """Import Prefect with what it prints on stderr meanwhile kept off the terminal (its first-run telemetry
    notice on a terminal, import-time warnings); returns that text for log_prefect_notices."""
    if "prefect" in sys.modules:
        return ""
    import io

    held, real = io.StringIO(), sys.stderr
    sys.stderr = held
    try:
        import prefect  # noqa: F401
    except BaseException:
        real.write(held.getvalue())
        raise
    finally:
        sys.stderr = real
    return held.getvalue()


def log_prefect_notices(notices: str) -> None:
    """Prefect's import-time notices to Prefect's `prefect.notices` logger at INFO: shown with --verbose (or
    PREFECT_LOGGING_LEVEL=INFO), kept off the terminal otherwise. Call it once Prefect's logging is set up."""
    import logging

    for notice in (n for n in notices.split("\n\n") if n.strip()):
        logging.getLogger("prefect.notices").info(" ".join(notice.split()))


def cmd_run(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    interactive = sys.stderr.isatty() and not (args.quiet or args.json or args.verbose)
    summary = run_once(path, verbose=args.verbose, show_progress=interactive, every_feed=args.now,
                       announce=not args.quiet)
    if args.json:
        from newsmon.console import json_text

        print(json_text(summary))
    elif args.quiet:
        from newsmon.console import print_problems

        print_problems(summary)
    else:
        from newsmon.console import print_summary

        print_summary(summary)
    return run_exit_code(summary)


def run_exit_code(summary: dict[str, Any]) -> int:
    """1 when every feed failed this run, or in an outage (no feed worked within [schedule] outage_hours, none
    ever on a new install, and each fails or backs off now); else 0."""
    total, failed = summary.get("feeds_total", 0), len(summary.get("failed_feeds", []))
    return EXIT_FEEDS_FAILED if summary.get("outage") or (total and failed == total) else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    # SIGTERM before Prefect's runner takes it over (imports, the server starting, deployments registering): stop
    # as the runner would, exit 0, a Prefect server already started stopped on the way out (`systemctl stop`)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    from newsmon.alerts.notify import url_problem

    path = resolve_config_path(args.config)
    settings = load_settings(path, check_url=url_problem)
    require_feeds(settings)
    if not remote_warehouse(settings):  # a local one that cannot be opened will not heal: say so now, in one line
        from warehouse import open_warehouse

        open_warehouse(settings.warehouse).close()
    warn_placeholder_contact(settings)
    prefect_env()
    notices = import_prefect_quietly()
    from flows.serve import serve

    log_prefect_notices(notices)

    serve(settings)
    return EXIT_OK


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_OK)


def cmd_demo(args: argparse.Namespace) -> int:
    from newsmon.demo.run import run_demo

    return run_demo(Path(args.dir), run_once)


def cmd_tag(args: argparse.Namespace) -> int:
    from newsmon.tagging import load_watchlists

    extra = load_settings(args.config, alert_secrets=False).tagging.rules if args.config else ()
    watchlists = load_watchlists(list(extra))
    wl = next((w for w in watchlists if w.name == args.watchlist), None) if args.watchlist else watchlists[0]
    if wl is None:
        raise ConfigError(f"no watchlist named {args.watchlist!r}; have: "
                          + ", ".join(w.name for w in watchlists))
    if args.jsonl:
        skipped = 0
        for n, raw in enumerate(sys.stdin.buffer, 1):
            if not raw.strip():
                continue
            try:
                doc = _jsonl_doc(raw, n)
            except InputError as exc:  # one bad line does not lose the others
                print(f"newsmon: {shown(exc)}", file=sys.stderr, flush=True)
                skipped += 1
                continue
            r = wl.tag(str(doc.get("title") or ""), str(doc.get("text") or ""))
            print(json.dumps(r.to_dict(doc.get("id")), ensure_ascii=False), flush=True)
        return EXIT_FEEDS_FAILED if skipped else EXIT_OK
    if not args.path:
        raise InputError("newsmon tag needs a file path, - for stdin, or --jsonl")
    data = sys.stdin.buffer.read() if args.path == "-" else read_input(args.path, "a plain-text file to tag")
    text = input_text(data, "stdin" if args.path == "-" else args.path)
    print(json.dumps(wl.tag(args.title, text).to_dict(args.path), ensure_ascii=False, indent=2))
    return EXIT_OK


def _jsonl_doc(raw: bytes, n: int) -> dict[str, Any]:
    expected = 'skipped; expected one JSON object {"id","title","text"} per line'
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"stdin line {n}: not UTF-8 text; {expected}") from None
    except ValueError as exc:
        raise InputError(f"stdin line {n}: not JSON ({exc}); {expected}") from None
    if not isinstance(doc, dict):
        raise InputError(f"stdin line {n}: a JSON {type(doc).__name__}, not an object; {expected}")
    return doc


def read_input(path: str, what: str) -> bytes:
    """The bytes of a file named on the command line; InputError saying what was expected when it is missing,
    a folder or unreadable."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path}: is a folder; give {what}")
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc}); give {what}") from None


def input_text(data: bytes, source: str) -> str:
    """`data` as UTF-8 text; InputError for a binary file (a NUL byte, or bytes that are not UTF-8)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "give a plain-text file") from None
    if "\x00" in text:
        raise InputError(f"{source}: a binary file (it holds NUL bytes), not text; give a plain-text file")
    return text


def _open_read_only(args: argparse.Namespace) -> Any:
    from warehouse import open_reader

    return open_reader(load_settings(args.config, alert_secrets=False).warehouse)


def cmd_sql(args: argparse.Namespace) -> int:
    from newsmon.console import print_rows

    if args.attach:
        from warehouse import location, open_warehouse
        from warehouse.attach import analyst_sql

        settings = load_settings(args.config, alert_secrets=False)
        open_warehouse(settings.warehouse).close()  # created (or migrated) if it is not there yet
        print(analyst_sql(location(settings.warehouse)), end="")
        return EXIT_OK
    if not (args.query or "").strip():
        raise InputError(f"newsmon sql needs a query, e.g. {hint()} sql {quoted('SELECT count(*) FROM articles')}, "
                          "or --attach")
    from warehouse import open_sql_session

    session = open_sql_session(load_settings(args.config, alert_secrets=False).warehouse)
    try:
        cols, rows = session.query(args.query)
    finally:
        session.close()
    print_rows(cols, rows, args.format or ("table" if sys.stdout.isatty() else "csv"))
    return EXIT_OK


SINCE_FORMS = ("a duration back from now (30m, 6h, 24h, 7d, 2w) or a date or time (2026-11-01, 2026-11-01T12:00; "
               "UTC unless it names a zone)")


def since_arg(text: str) -> Since:
    """Every command's --since (newsmon.since): a duration or a date/time; one usage error for anything else."""
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_digest(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from newsmon.alerts.digest import build_digest, send_digest
    from newsmon.alerts.notify import AppriseNotifier, url_problem
    from warehouse import open_warehouse

    settings = load_settings(args.config, check_url=url_problem if args.send else None, alert_secrets=args.send)
    now = datetime.now(UTC)
    if not args.send:
        digest = build_digest(_open_read_only(args), since=args.since.period(now), now=now)
        renders: dict[str, Callable[[], str]] = {"text": digest.text, "markdown": lambda: digest.markdown().body,
                                                 "html": lambda: digest.html().body}
        print(renders[args.format]())
        return EXIT_OK
    wh = open_warehouse(settings.warehouse)
    try:
        digest, queued, report = send_digest(wh, settings.alerts, AppriseNotifier(), since=args.since.period(now),
                                             now=now)
        wh.runs.sync_alerts()
    finally:
        wh.close()
    print(f"{len(digest.stories)} stories; {queued} digest(s) queued, {report.messages} sent"
          + "".join(f"\nerror: {e}" for e in report.errors))
    return EXIT_FEEDS_FAILED if report.errors else EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    from newsmon.alerts.deliver import send_test_messages
    from newsmon.alerts.notify import AppriseNotifier, url_problem
    from newsmon.alerts.policy import channel_routes
    from newsmon.console import printable

    settings = load_settings(resolve_config_path(args.config), check_url=url_problem)
    targets = channel_routes(settings.alerts.all_routes)
    if not targets:
        raise ConfigError(f"{settings.source}: no alert channel configured; add Apprise URLs to [alerts] urls "
                          "or an [[alerts.routes]] table")
    if args.channel:
        chosen = [t for t in targets if args.channel in (t[0].name, t[0].url, *t[1])]
        if not chosen:
            have = sorted({t[0].name for t in targets} | {r for t in targets for r in t[1]})
            raise ConfigError(f"--channel {args.channel!r}: no alert channel or route of that name; have: "
                              + ", ".join(have))
        targets = chosen
    results = send_test_messages(AppriseNotifier(), targets, config=settings.name, now=datetime.now(UTC))
    for channel, routes, error in results:
        said = "delivered" if error is None else error.removeprefix(f"{channel.name}: ")
        print(printable(f"{'OK' if error is None else 'FAIL':<4}  {channel.name} (route {', '.join(routes)}): {said}",
                        one_line=True))
    return EXIT_FEEDS_FAILED if any(error is not None for *_, error in results) else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from newsmon.console import print_rows

    since = args.since.start(datetime.now(UTC)) if args.since else None
    done = _open_read_only(args).export(Path(args.dir), args.format, since=since)
    print_rows(["table", "rows"], done, "table")
    return EXIT_OK


FEED_HEALTH_SQL = """
SELECT name, last_result AS status, consecutive_failures AS failures, strftime(next_poll_at, '%Y-%m-%d %H:%M')
       AS next_poll, strftime(last_success_at, '%Y-%m-%d %H:%M') AS last_success, new_24h, per_day_7d,
       CASE WHEN gone THEN 'GONE' WHEN silent THEN 'silent' ELSE '' END AS flag, last_error
FROM feed_health ORDER BY gone DESC, consecutive_failures DESC, silent DESC, name"""


def cmd_feeds(args: argparse.Namespace) -> int:
    if args.all and args.action != "add":
        raise InputError("--all goes with `feeds add SITE` only (it adds every feed the site announces)")
    if args.action is None:
        from newsmon.console import print_rows

        cols, rows = _open_read_only(args).query(FEED_HEALTH_SQL)
        print_rows(cols, rows, "table")
        return EXIT_OK
    path = resolve_config_path(args.config)
    settings = load_settings(path, alert_secrets=False)
    if args.action == "export":
        from extractors.opml import to_opml

        if args.target:
            raise InputError(f"newsmon feeds export takes no argument (got {args.target!r}): it prints the OPML; "
                             "redirect it to a file")
        sys.stdout.write(to_opml(settings.feeds, title=f"newsmon feeds ({path.name})"))
        return EXIT_OK
    if not args.target:
        raise InputError(f"newsmon feeds {args.action} needs a {'URL' if args.action == 'add' else 'FILE'}")
    return (_feeds_add(path, settings, args.target, every_feed=args.all) if args.action == "add"
            else _feeds_import(path, args.target))


def _feeds_add(path: Path, settings: Settings, url: str, *, every_feed: bool) -> int:
    from extractors.discovery import discover_feeds
    from newsmon.console import printable

    if not url.startswith(("http://", "https://")):
        raise InputError(f"{url!r} is not an http:// or https:// URL; give the address of a site or of a feed")
    found = discover_feeds(url, settings.http, every_feed=every_feed)
    if found.announced:  # several feeds and no choice made: say which, add none
        where = "" if resolve_config_path(None).resolve() == path.resolve() else f" --config {quoted(path)}"
        print(printable(f"{url} announces {len(found.announced)} feeds; nothing added. Add one with "
                        f"`{hint()} feeds add FEED_URL{where}`, or every one with "
                        f"`{hint()} feeds add --all {quoted(url)}{where}`:", one_line=True))
        for title, feed_url in found.announced:
            print(printable(f"  {feed_name(title, feed_url)!r} {feed_url}", one_line=True))
        return EXIT_OK
    added = {f.url: f for f in append_feeds(path, found.feeds)}
    for feed in found.feeds:
        new = added.get(feed.url)
        print(printable(f"added {new.name!r} {feed.url} to {path}" if new else f"{feed.url} is already in {path}",
                        one_line=True))
    for failed in found.failed:
        print(printable(f"not added: {failed}", one_line=True))
    return EXIT_OK


def _feeds_import(path: Path, opml: str) -> int:
    from extractors.opml import read_opml
    from newsmon.console import printable

    listed = read_opml(read_input(opml, "an OPML file (export one from your feed reader)"), opml)
    added = {f.url for f in append_feeds(path, listed.feeds)}
    print(f"imported {len(added)} new feed(s) of {listed.outlines} feed outline(s) in {opml} into {path}")
    skipped = [(f"{f.name!r} {f.url}", f"already in {path}") for f in listed.feeds if f.url not in added]
    for what, why in [*skipped, *listed.skipped]:
        print(printable(f"skipped {what}: {why}", one_line=True))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from newsmon.report import build_report

    if Path(args.out).is_dir():
        raise InputError(f"--out {args.out}: is a folder; name the HTML file to write, e.g. "
                         f"{Path(args.out) / 'report.html'}")
    now = datetime.now(UTC)
    path = build_report(load_settings(args.config, alert_secrets=False), args.since.period(now), Path(args.out),
                        now=now)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return EXIT_OK


def _maintenance(args: argparse.Namespace, job: Any) -> int:
    """Open the warehouse, run `job(warehouse, watchlists)`, print its report."""
    from newsmon.tagging import load_watchlists
    from warehouse import location, open_warehouse

    settings = load_settings(resolve_config_path(args.config), alert_secrets=False)  # re-tagging sends nothing
    watchlists = load_watchlists(list(settings.tagging.rules))
    if not location(settings.warehouse).exists() and not settings.warehouse.path.exists():
        raise StorageError(f"{settings.warehouse.catalog_shown}: no warehouse here yet; run `{hint()} run` first")
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
    since = args.since.start(now) if args.since else None
    return _maintenance(args, lambda wh, wls: retag(wh, wls, since=since, dry_run=args.dry_run, now=now))


def cmd_reextract(args: argparse.Namespace) -> int:
    from flows.jobs import reextract

    now = datetime.now(UTC)
    since = args.since.start(now) if args.since else None
    return _maintenance(args, lambda wh, wls: reextract(wh, wls, since=since, now=now))


def cmd_migrate(args: argparse.Namespace) -> int:
    from warehouse import open_warehouse
    from warehouse.legacy import MIGRATED_SUFFIX, legacy_file

    settings = load_settings(resolve_config_path(args.config), alert_secrets=False).warehouse
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
    contact, origin = init_contact(args.contact)
    path.write_text(with_contact(default_config_text(), contact), encoding="utf-8")
    print(f"wrote {path}; edit [[feeds]] and [alerts] urls, then run `{hint()} run --config {quoted(path)}`")
    print(f"User-Agent contact: {contact} ({origin})")
    from newsmon.console import contact_warning

    if warning := contact_warning(path, contact):
        print(warning, file=sys.stderr)
    return EXIT_OK


def init_contact(given: str | None) -> tuple[str, str]:
    """The contact `init` writes, and where it came from: --contact, else an answer on a terminal (the default
    offered: git's user.email), else git's user.email, else the placeholder."""
    if given is not None:
        return contact_value(given), "--contact"
    derived = git_email()
    fallback = (derived, "git config user.email") if derived else (PLACEHOLDER_CONTACT, "a placeholder")
    if not sys.stdin.isatty():
        return fallback
    offered = f" [{fallback[0]}]" if derived else ""
    while True:
        print("Where can site operators reach you (a web page or an email address; servers see it in the "
              f"User-Agent){offered}: ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer.strip():  # Enter, or end of input
            return fallback
        try:
            return contact_value(answer, "contact"), "entered"
        except ConfigError as exc:
            print(f"newsmon: {shown(exc)}", file=sys.stderr)


def git_email() -> str | None:
    """`git config user.email` as a contact, when git has a real-looking one (not a placeholder, not noreply)."""
    import subprocess

    try:
        out = subprocess.run(["git", "config", "--get", "user.email"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL).stdout.strip()
        value = contact_value(out)
    except (OSError, subprocess.SubprocessError, ConfigError):
        return None
    return None if placeholder_contact(value) or "noreply" in value.lower() else value


def warn_placeholder_contact(settings: Settings) -> None:
    """One line on stderr when serve starts while the config's User-Agent contact names no one (every poll run
    says it again: flows.poll)."""
    from newsmon.console import contact_warning

    if warning := contact_warning(settings.source, settings.http.contact_url):
        print(warning, file=sys.stderr)


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

    settings = load_settings(resolve_config_path(args.config), alert_secrets=False)  # shards copy ${VAR} as written
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
                  f"{hint('prefect')} deployment delete poll-feeds/newsmon-poll-shard-{number}")
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
        print(f"wrote {yaml_path}: {hint('prefect')} --no-prompt deploy --all --prefect-file {quoted(yaml_path)}")
    return EXIT_OK


def _earlier_shards(out: Path, n: int) -> tuple[dict[str, int], bool]:
    """Site -> shard of the shard configs an earlier `newsmon shards` wrote in `out` (shard-1.toml on), and
    whether they were N shards."""
    from extractors.shards import site_of

    paths: list[Path] = []
    while (path := out / SHARD_FILE.format(len(paths) + 1)).exists():
        paths.append(path)
    earlier = {site_of(f.url): k for k, p in enumerate(paths, 1) for f in load_settings(p, alert_secrets=False).feeds}
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
