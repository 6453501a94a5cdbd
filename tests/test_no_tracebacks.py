"""No tracebacks, one meaning per option: every command answers bad input with one line and a documented exit
code; `--since` means the same everywhere; `feeds import` and `feeds add` say what they skipped and why.

Every subcommand is taken from the parser itself (newsmon.cli.build_parser), so a new command is driven too:
its `--config`, its file and folder arguments (an argument whose help says "file" or "folder") and its options
with a type or choices each get bad values, and a command that uses the warehouse gets one it cannot use.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsmon.cli import EXIT_CONFIG, EXIT_FEEDS_FAILED, EXIT_OK, EXIT_WAREHOUSE, build_parser
from newsmon.config import load_settings
from newsmon.since import Since, parse_since
from tests.conftest import RouteServer, lake_query, make_warehouse
from tests.test_cli import POSITIVE, newsmon

DOCUMENTED = {EXIT_OK, EXIT_FEEDS_FAILED, EXIT_CONFIG, EXIT_WAREHOUSE}
RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Caspian Wire</title><item><title>A</title>'
       b"<link>https://x.example/a</link></item></channel></rss>")
UNCREATABLE = "/proc/newsmon-test/x"  # under /proc nothing can be created, not even by root
ANNOUNCED = re.compile(r"newsmon: polling .* starting Prefect\.\.\.")  # `run` says what starts (README), no error

# --- every subcommand, bad input ------------------------------------------------------------------------------

# Values that make an argument good, where the generic ones (a text file, a new file or folder, "2") do not fit.
GOOD = {("sql", "query"): "SELECT 1", ("feeds add", "target"): "{feed_url}", ("feeds import", "target"): "{opml}",
        ("feeds", "target"): None, ("feeds export", "target"): None}
# Commands that never open the warehouse: an unusable one is no bad input for them.
NO_WAREHOUSE = {"tag", "init", "demo", "shards", "alerts test", "feeds add", "feeds import", "feeds export",
                "doctor",  # reports the warehouse as FAIL on stdout (its report), exit 1: tests/test_doctor.py
                "migrate"}  # moves an earlier single-file warehouse only; finding none there, it says so (exit 0)
BAD = {"file_in": ("missing", "folder", "binary"), "file_out": ("folder", "uncreatable"),
       "folder_out": ("binary", "uncreatable")}


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]  # {placeholders} are filled in by the test (paths under tmp_path, the feed server)
    expected: int
    warehouse: str = "good"  # good | uncreatable | damaged
    stdin: str = ""


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def kind(action: argparse.Action) -> str | None:
    """What a value of `action` names, from its help: an input file, a file to write, a folder to write in."""
    words = (action.help or "").lower()
    if "folder" in words:
        return "folder_out"
    if "file" in words:
        return "file_out" if "to write" in words else "file_in"
    return None


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0 and not isinstance(action, argparse._HelpAction)


def variants(name: str, sp: argparse.ArgumentParser) -> Iterator[tuple[str, dict[str, str | None]]]:
    """(variant name, positional dest -> value) for each choice of a positional with choices (`feeds add`)."""
    chosen = [a for a in sp._actions if not a.option_strings and a.choices]
    if not chosen:
        yield name, {}
        return
    action = chosen[0]
    for choice in ([None] if action.nargs == "?" else []) + list(action.choices or ()):
        yield (f"{name} {choice}" if choice else name), {action.dest: choice}


def good_value(variant: str, action: argparse.Action) -> str | None:
    if (variant, action.dest) in GOOD:
        return GOOD[(variant, action.dest)]
    if action.dest == "config":
        return "{config}"
    if action.option_strings:
        return None  # an option left out
    return {"file_in": "{text}", "file_out": "{out_file}", "folder_out": "{out_dir}"}.get(
        kind(action) or "", "2" if action.type is not None else ("" if action.nargs == "?" else "x")) or None


def argv_of(name: str, sp: argparse.ArgumentParser, values: dict[str, str | None]) -> tuple[str, ...]:
    args = [name]
    for a in sp._actions:
        if not a.option_strings and values.get(a.dest) is not None:
            args.append(str(values[a.dest]))
    for a in sp._actions:
        if a.option_strings and takes_value(a) and values.get(a.dest) is not None:
            args += [a.option_strings[0], str(values[a.dest])]
    return tuple(args)


def bad_input_cases() -> list[Case]:
    cases: dict[str, Case] = {}

    def add(case: Case) -> None:
        cases.setdefault(case.name, case)

    for name, sp in subcommands().items():
        for variant, chosen in variants(name, sp):
            values: dict[str, str | None] = {}
            for a in sp._actions:
                if takes_value(a):
                    values[a.dest] = chosen[a.dest] if a.dest in chosen else good_value(variant, a)
            for a in sp._actions:
                if not takes_value(a) or (not a.option_strings and values.get(a.dest) is None):
                    continue  # a flag, or a positional this variant does not take
                label = a.option_strings[0] if a.option_strings else a.dest
                for bad in BAD.get(kind(a) or "", ()):
                    add(Case(f"{variant} {label}={bad}", argv_of(name, sp, {**values, a.dest: "{" + bad + "}"}),
                             EXIT_CONFIG))
                if a.choices or a.type is not None:  # the variant's own choice is made bogus once per command
                    add(Case(f"{name if a.dest in chosen else variant} {label}=bogus",
                             argv_of(name, sp, {**values, a.dest: "bogus-value"}), EXIT_CONFIG))
            if "config" in values and variant not in NO_WAREHOUSE:
                for wh in ("uncreatable", "damaged"):
                    add(Case(f"{variant} warehouse={wh}", argv_of(name, sp, values), EXIT_WAREHOUSE, warehouse=wh))
    extra = [  # bad values of free-form arguments, which the parser cannot describe
        Case("sql empty query", ("sql", "", "--config", "{config}"), EXIT_CONFIG),
        Case("sql blank query", ("sql", "  ", "--config", "{config}"), EXIT_CONFIG),
        # a query the warehouse refuses: DuckDB's message spans lines (the query, a caret), said in one
        Case("sql query that does not parse", ("sql", "SELEC 1", "--config", "{config}"), EXIT_WAREHOUSE),
        Case("sql unknown column", ("sql", "SELECT nocol FROM articles", "--config", "{config}"), EXIT_WAREHOUSE),
        Case("sql reads a file", ("sql", "SELECT * FROM read_csv('/etc/passwd')", "--config", "{config}"),
             EXIT_WAREHOUSE),
        Case("tag unknown watchlist", ("tag", "{text}", "--watchlist", "nope", "--config", "{config}"), EXIT_CONFIG),
        Case("tag binary stdin", ("tag", "-"), EXIT_CONFIG, stdin="text\x00with a NUL byte"),
        Case("tag --jsonl one bad line", ("tag", "--jsonl"), EXIT_FEEDS_FAILED,
             stdin='{"id": 1, "text": "x"}\nnot json\n{"id": 3, "text": "y"}\n'),
        Case("feeds add not a URL", ("feeds", "add", "jam-news.net", "--config", "{config}"), EXIT_CONFIG),
        Case("feeds export with an argument", ("feeds", "export", "{text}", "--config", "{config}"), EXIT_CONFIG),
        Case("feeds --all without add", ("feeds", "export", "--all", "--config", "{config}"), EXIT_CONFIG),
        Case("feeds import not OPML", ("feeds", "import", "{text}", "--config", "{config}"), EXIT_CONFIG),
    ]
    for case in extra:
        add(case)
    return list(cases.values())


CASES = bad_input_cases()
# What some of those lines say (each names the file or value and what to do instead).
SAYS = {"tag path=missing": "missing.txt: no such file; give a plain-text file to tag",
        "tag path=folder": "a-folder: is a folder; give a plain-text file to tag",
        "tag path=binary": "binary.bin: not UTF-8 text (byte 0x89 at offset 0)",
        "tag binary stdin": "stdin: a binary file (it holds NUL bytes)",
        "feeds import target=binary": "binary.bin: not an OPML file",
        "feeds import target=folder": "a-folder: is a folder; give an OPML file",
        "feeds add target=missing": "is not an http:// or https:// URL",
        "export dir=binary": "binary.bin: a file is in the way of the folder to write in",
        "export dir=uncreatable": "/proc/newsmon-test: No such file or directory",
        "report --out=folder": "--out {folder}: is a folder; name the HTML file to write",
        "demo --dir=binary": "binary.bin: a file is in the way",
        "init path=uncreatable": f"{UNCREATABLE}: No such file or directory",
        "run --config=missing": "missing.txt: no such configuration file",
        "run warehouse=uncreatable": "warehouse error: /proc/newsmon-test/x/w.state.sqlite: cannot open",
        "serve warehouse=damaged": "warehouse error:",
        "digest --since=bogus": "argument --since: 'bogus-value': expected a duration like 30m, 6h, 24h, 7d or 2w",
        "sql empty query": "newsmon sql needs a query",
        "sql query that does not parse": 'syntax error at or near "SELEC"; LINE 1: SELEC 1',
        "feeds export with an argument": "feeds export takes no argument",
        "feeds --all without add": "--all goes with `feeds add SITE` only"}


def test_every_subcommand_is_driven() -> None:
    """The generated cases cover each command of the parser, and each file argument and typed option."""
    driven = {c.argv[0] for c in CASES}
    assert driven == set(subcommands()) and len(driven) >= 15
    names = {c.name for c in CASES}
    assert set(SAYS) <= names
    for expected in ("tag path=missing", "tag path=folder", "tag path=binary", "run --config=missing",
                     "feeds import target=binary", "export dir=uncreatable", "report --since=bogus",
                     "digest --since=bogus", "retag --since=bogus", "init path=uncreatable", "demo --dir=binary",
                     "shards n=bogus", "run warehouse=uncreatable", "serve warehouse=damaged"):
        assert expected in names


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The files the cases name: a good config (a real warehouse, one feed on 127.0.0.1) and bad paths. Made
    once: every case fails before it writes anything."""
    tmp_path = tmp_path_factory.mktemp("inputs")
    routes = RouteServer()
    feed_url = routes.add("/feed.xml", body=RSS)
    make_warehouse(tmp_path / "wh" / "w.duckdb").close()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("w.duckdb", "w.ducklake", "w.state.sqlite"):
        (damaged / name).write_bytes(os.urandom(4096))
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" + os.urandom(256))
    (tmp_path / "story.txt").write_text(POSITIVE, encoding="utf-8")
    (tmp_path / "reader.opml").write_text(f'<opml version="2.0"><body><outline text="W" xmlUrl="{feed_url}"/>'
                                          "</body></opml>", encoding="utf-8")
    configs = {}
    for wh, path in (("good", tmp_path / "wh" / "w.duckdb"), ("uncreatable", Path(UNCREATABLE) / "w.duckdb"),
                     ("damaged", damaged / "w.duckdb")):
        configs[wh] = tmp_path / f"{wh}.toml"
        configs[wh].write_text(f'[warehouse]\npath = "{path}"\n[http]\nallow_private_networks = true\n'
                               'contact_url = "mailto:newsmon-tests@newsmon.org"\ntimeout_s = 5\nper_host_delay_s = 0\n'
                               f'jitter_s = 0\n[[feeds]]\nname = "Wire"\nurl = "{feed_url}"\n', encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    yield {"feed_url": feed_url, "missing": str(tmp_path / "missing.txt"), "folder": str(tmp_path / "a-folder"),
           "binary": str(tmp_path / "binary.bin"), "uncreatable": UNCREATABLE, "text": str(tmp_path / "story.txt"),
           "opml": str(tmp_path / "reader.opml"), "out_dir": str(tmp_path / "out"),
           "out_file": str(tmp_path / "out.html"), **{f"config_{k}": str(v) for k, v in configs.items()}}
    routes.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no case wrote a file or folder


def assert_one_clear_line(res: subprocess.CompletedProcess[str], expected: int) -> None:
    said = f"exit {res.returncode}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-3000:]}"
    assert "Traceback" not in res.stdout + res.stderr, said
    assert res.returncode in DOCUMENTED and res.returncode == expected, said
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ANNOUNCED.fullmatch(ln)]
    if lines and lines[0].startswith("usage: "):  # argparse's usage error: the usage, then one line saying why
        assert res.returncode == EXIT_CONFIG and ": error: " in lines[-1] and lines[-1].startswith("newsmon"), said
    else:
        assert len(lines) == 1 and lines[0].startswith("newsmon: "), said


@pytest.mark.slow  # ~110 short CLI processes: 2-4 minutes on two cores
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_and_a_documented_exit_code(case: Case, inputs: dict[str, str],
                                                           tmp_path: Path) -> None:
    fill = {**inputs, "config": inputs[f"config_{case.warehouse}"]}
    argv = [a.format(**fill) for a in case.argv]
    res = newsmon(*argv, stdin=case.stdin, cwd=tmp_path)
    assert_one_clear_line(res, case.expected)
    if case.name in SAYS:
        assert SAYS[case.name].format(**fill) in res.stderr, res.stderr
    assert "disk is full" not in res.stderr  # /proc has no free blocks, but it is no full disk
    if case.name == "tag --jsonl one bad line":  # the bad line is named; the others are tagged all the same
        assert "stdin line 2: not JSON" in res.stderr and "skipped" in res.stderr
        assert [json.loads(ln)["id"] for ln in res.stdout.splitlines()] == [1, 3]


# --- --since: one parser, one meaning -------------------------------------------------------------------------

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, start", [
    ("30m", NOW - timedelta(minutes=30)), ("6h", NOW - timedelta(hours=6)), ("24h", NOW - timedelta(days=1)),
    ("7d", NOW - timedelta(days=7)), ("2w", NOW - timedelta(days=14)), ("1.5h", NOW - timedelta(minutes=90)),
    (" 7D ", NOW - timedelta(days=7)), ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T12:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
    ("2026-11-01T12:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
    ("2026-11-01T16:00+04:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
    ("2026-11-01 12:00:30", datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC))])
def test_since_reads_durations_and_dates(text: str, start: datetime) -> None:
    since = parse_since(text)
    assert since.start(NOW) == start and since.start(NOW).utcoffset() == timedelta(0)
    assert since.period(NOW) == NOW - start


@pytest.mark.parametrize("text", ["", "7", "0d", "-1d", "7 days", "1y", "yesterday", "2026-13-01", "2026-11-01T25:00",
                                  "24 h ago", "P7D"])
def test_since_refuses_anything_else_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like 30m, 6h, 24h, 7d or 2w, or a date") as err:
        parse_since(text)
    assert repr(text) in str(err.value) or "more than 0" in str(err.value)


def test_a_date_after_now_covers_nothing() -> None:
    assert parse_since("2027-01-01").period(NOW) == timedelta(0)
    assert Since("7d", duration=timedelta(days=7)).period(NOW) == timedelta(days=7)


def since_warehouse(tmp_path: Path, now: datetime) -> Path:
    """Matches 2-5 hours and 10 days old (tests/test_digest.py fill), in a real warehouse; its config."""
    from tests.test_digest import fill

    wh = make_warehouse(tmp_path / "w.duckdb")
    fill(wh, now)
    wh.close()
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text(f'[warehouse]\npath = "{tmp_path / "w.duckdb"}"\n', encoding="utf-8")
    return cfg


def test_since_means_the_same_in_every_command(tmp_path: Path) -> None:
    """Each command takes 2w, 7d and a date, and covers the same stories for them: the 10-day-old match is in
    for 2w and for a date 11 days back, out for 7d and for a date 8 days back."""
    now = datetime.now(UTC)
    cfg = since_warehouse(tmp_path, now)
    long_ago, recent = f"{(now - timedelta(days=11)):%Y-%m-%d}", f"{(now - timedelta(days=8)):%Y-%m-%dT%H:%M}"
    for since, old_in in (("2w", True), (long_ago, True), ("7d", False), (recent, False)):
        digest = newsmon("digest", "--config", str(cfg), "--since", since)
        assert digest.returncode == 0, digest.stderr
        assert ("Old news" in digest.stdout) is old_in and "Gas swap talks continue" in digest.stdout
        out = tmp_path / f"report-{len(since)}-{old_in}.html"
        report = newsmon("report", "--config", str(cfg), "--since", since, "--out", str(out))
        assert report.returncode == 0, report.stderr
        assert ("Old news" in out.read_text(encoding="utf-8")) is old_in
        folder = tmp_path / f"export-{len(since)}-{old_in}"
        export = newsmon("export", str(folder), "--config", str(cfg), "--format", "jsonl", "--since", since)
        assert export.returncode == 0, export.stderr
        titles = {json.loads(ln)["title"] for ln in (folder / "articles.jsonl").read_text("utf-8").splitlines()}
        assert ("Old news" in titles) is old_in and len(titles) == (4 if old_in else 3)
        retag = newsmon("retag", "--config", str(cfg), "--since", since, "--dry-run")
        assert retag.returncode == 0, retag.stderr
        assert f"examined {4 if old_in else 3} articles" in retag.stdout
        reextract = newsmon("reextract", "--config", str(cfg), "--since", since)
        assert reextract.returncode == 0 and "examined 0 articles" in reextract.stdout  # no raw pages kept
    assert lake_query(cfg, "SELECT count(*) FROM articles") == [(4,)]


def test_every_since_option_is_the_one_parser() -> None:
    """No command keeps a --since of its own: each is read by newsmon.since, with the same help."""
    seen = {}
    for name, sp in subcommands().items():
        for a in sp._actions:
            if "--since" in a.option_strings:
                assert a.type is not None and a.type("2w").duration == timedelta(days=14), name
                assert a.type("2026-11-01").moment == datetime(2026, 11, 1, tzinfo=UTC), name
                seen[name] = a.help
    assert set(seen) == {"digest", "report", "export", "retag", "reextract"}
    assert all("30m, 6h, 24h, 7d, 2w" in (h or "") and "2026-11-01" in (h or "") for h in seen.values())


# --- feeds import: every outline counted, each skipped one named ----------------------------------------------

def opml_config(tmp_path: Path, known: str) -> Path:
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text(f'[warehouse]\npath = "w.duckdb"\n[http]\nallow_private_networks = true\ntimeout_s = 5\n'
                   f'[[feeds]]\nname = "Known"\nurl = "{known}"\n', encoding="utf-8")
    return cfg


def test_feeds_import_counts_every_feed_outline_and_names_each_skipped_one(tmp_path: Path) -> None:
    cfg = opml_config(tmp_path, "https://known.example/rss")
    src = tmp_path / "reader.opml"
    src.write_text("""<?xml version="1.0"?>
<opml version="2.0"><head><title>r</title></head><body>
  <outline text="Caucasus">
    <outline text="JAMnews" type="rss" xmlUrl="https://jam-news.net/feed/"/>
    <outline text="Known again" type="rss" xmlUrl="https://known.example/rss"/>
  </outline>
  <outline text="JAMnews copy" type="rss" xmlUrl="https://jam-news.net/feed/"/>
  <outline text="Local file" type="rss" xmlUrl="file:///etc/passwd"/>
  <outline text="A bookmark" htmlUrl="https://bookmark.example/"/>
  <outline text="Trend" type="rss" xmlUrl="https://en.trend.az/feeds/index.rss"/>
</body></opml>""", encoding="utf-8")
    res = newsmon("feeds", "import", str(src), "--config", str(cfg))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"imported 2 new feed(s) of 5 feed outline(s) in {src} into {cfg}"
    assert sorted(lines[1:]) == sorted([
        f"skipped 'Known again' https://known.example/rss: already in {cfg}",
        "skipped 'JAMnews copy' https://jam-news.net/feed/: listed before in the file (as 'JAMnews')",
        "skipped 'Local file' file:///etc/passwd: not an http(s) URL",
        "skipped 'A bookmark': no xmlUrl, so not a feed"])
    assert [f.url for f in load_settings(cfg).feeds] == [
        "https://known.example/rss", "https://jam-news.net/feed/", "https://en.trend.az/feeds/index.rss"]
    again = newsmon("feeds", "import", str(src), "--config", str(cfg))
    assert again.stdout.splitlines()[0].startswith("imported 0 new feed(s) of 5 feed outline(s)")
    assert sum("already in" in ln for ln in again.stdout.splitlines()) == 3


# --- feeds add: several announced feeds are listed, not guessed -------------------------------------------------

def site(routes: RouteServer, feeds: list[tuple[str, str]]) -> str:
    links = "".join(f'<link rel="alternate" type="application/rss+xml" title="{t}" href="{h}">' for t, h in feeds)
    routes.add("/", body=f"<html><head>{links}</head><body>news</body></html>".encode(), content_type="text/html")
    return routes.base_url + "/"


def rss(title: str) -> bytes:
    return RSS.replace(b"Caspian Wire", title.encode())


def test_feeds_add_lists_several_announced_feeds_and_adds_none(routes: RouteServer, tmp_path: Path) -> None:
    url = site(routes, [("All news", "/all.xml"), ("Energy", "/energy.xml"), ("Comments", "/comments.xml")])
    for path, title in (("/all.xml", "All news feed"), ("/energy.xml", "Energy feed"), ("/comments.xml", "Talk")):
        routes.add(path, body=rss(title))
    cfg = opml_config(tmp_path, "https://known.example/rss")
    before = cfg.read_bytes()
    res = newsmon("feeds", "add", url, "--config", str(cfg))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"{url} announces 3 feeds; nothing added.") and "--all" in lines[0]
    assert lines[1:] == [f"  'All news' {routes.base_url}/all.xml", f"  'Energy' {routes.base_url}/energy.xml",
                         f"  'Comments' {routes.base_url}/comments.xml"]
    assert cfg.read_bytes() == before and "/all.xml" not in routes.hits  # listed, not fetched
    # the user picks one by its URL
    one = newsmon("feeds", "add", f"{routes.base_url}/energy.xml", "--config", str(cfg))
    assert one.returncode == 0 and one.stdout.startswith("added 'Energy feed'"), one.stderr
    # or takes every one
    every = newsmon("feeds", "add", "--all", url, "--config", str(cfg))
    assert every.returncode == 0, every.stderr
    assert every.stdout.splitlines() == [f"added 'All news feed' {routes.base_url}/all.xml to {cfg}",
                                         f"{routes.base_url}/energy.xml is already in {cfg}",
                                         f"added 'Talk' {routes.base_url}/comments.xml to {cfg}"]
    assert [f.name for f in load_settings(cfg).feeds] == ["Known", "Energy feed", "All news feed", "Talk"]


def test_feeds_add_all_skips_announced_feeds_that_do_not_parse(routes: RouteServer, tmp_path: Path) -> None:
    url = site(routes, [("Gone", "/gone.xml"), ("Main", "/main.xml")])
    routes.add("/main.xml", body=rss("Main feed"))
    cfg = opml_config(tmp_path, "https://known.example/rss")
    res = newsmon("feeds", "add", url, "--all", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"added 'Main feed' {routes.base_url}/main.xml to {cfg}"
    assert lines[1].startswith(f"not added: {routes.base_url}/gone.xml (") and "404" in lines[1]
    assert [f.url for f in load_settings(cfg).feeds][1:] == [f"{routes.base_url}/main.xml"]


def test_feeds_add_takes_the_only_announced_feed_as_before(routes: RouteServer, tmp_path: Path) -> None:
    url = site(routes, [("Only", "/only.xml")])
    routes.add("/only.xml", body=rss("The only feed"))
    cfg = opml_config(tmp_path, "https://known.example/rss")
    res = newsmon("feeds", "add", url, "--config", str(cfg))
    assert res.returncode == 0 and res.stdout == f"added 'The only feed' {routes.base_url}/only.xml to {cfg}\n"
    none = site(routes, [("Gone", "/gone.xml")])
    failed = newsmon("feeds", "add", none, "--config", str(cfg))
    assert failed.returncode == EXIT_FEEDS_FAILED and failed.stderr.count("\n") == 1
    assert "no RSS/Atom feed found; tried" in failed.stderr and "gone.xml" in failed.stderr
