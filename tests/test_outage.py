"""A total outage is not a success: `newsmon run` exits 1 while every feed fails or backs off and none has
worked within [schedule] outage_hours (never, on a new install); --quiet still says what failed, on stderr;
--now polls every feed whatever its backoff; a config without feeds is a configuration error; the run says at
once what it starts, and Prefect's own notices stay off the terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from extractors.schedule import outage, split_due
from newsmon import cli
from newsmon.console import print_problems
from newsmon.records import FeedResult, FeedSpec, FeedState
from tests.conftest import RouteServer, config_text, write_config
from tests.test_hostile_process import NEWSMON, user_env

EMPTY_RSS = (b"<rss version='2.0'><channel><title>t</title><link>http://x/</link><description>d</description>"
             b"</channel></rss>")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)
CI_VARS = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "CIRCLECI", "BUILDKITE", "TF_BUILD",
           "CODEBUILD_BUILD_ID", "BITBUCKET_COMMIT", "TEAMCITY_VERSION", "DRONE", "SEMAPHORE", "APPVEYOR", "BUDDY",
           "CI_NAME", "DO_NOT_TRACK")


def own_lines(err: str) -> list[str]:
    """stderr's lines but the placeholder-contact warning every run of a test config prints."""
    return [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("newsmon: warning: ")]


def terminal_user_env(home: Path) -> dict[str, str]:
    """A user at a terminal, outside CI, who has not opted out of Prefect's telemetry: Prefect shows its
    first-run telemetry notice to such a user (on a fresh PREFECT_HOME)."""
    return {k: v for k, v in user_env(home).items() if k not in CI_VARS}


def run_on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """`newsmon ARGS` with stdout on a pseudo-terminal (so Prefect takes the session for an interactive one) and
    stderr on a pipe: (exit code, what reached the terminal, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(NEWSMON), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE, text=True)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's last writer closed it
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, shown.decode(errors="replace"), err


@pytest.mark.slow  # three real runs, each starting Prefect's server: ~15 s each on an idle machine
def test_an_outage_exits_1_until_a_feed_works_quiet_says_why_and_now_polls_past_the_backoff(
        routes: RouteServer, tmp_path: Path) -> None:
    a = routes.add("/a.xml", 500, b"down")
    b = routes.add("/b.xml", 500, b"down")
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text(config_text([("A", a), ("B", b)]), encoding="utf-8")
    home = tmp_path / "prefect-home"
    env = terminal_user_env(home)

    # 1. a new install, every feed failing, --quiet, at a terminal: exit 1 and one stderr line per failure
    code, shown, err = run_on_a_terminal(["run", "--quiet", "--config", str(cfg)], tmp_path, env)
    lines = own_lines(err)
    assert code == cli.EXIT_FEEDS_FAILED, err[-3000:]
    assert lines[0].startswith(f"newsmon: feed A failed: {a}: HTTP 500") and "Traceback" not in err
    assert lines[1].startswith(f"newsmon: feed B failed: {b}: HTTP 500")
    assert lines[2].startswith("newsmon: outage: none of the 2 feeds has ever been polled successfully")
    assert len(lines) == 3  # no starting line (quiet), no second copy of each failure from Prefect's logger
    assert shown.strip() == ""  # nothing on the terminal: no summary, no progress, no Prefect notice
    # Prefect did show its first-run telemetry notice to this session: newsmon kept it off stdout and stderr
    assert (home / ".sdk_telemetry" / "notice_shown").exists()
    assert "anonymous usage data" not in shown + err

    # 2. minutes later both wait in backoff: nothing is polled, and it is still an outage (was: exit 0)
    hits = len(routes.hits)
    res = subprocess.run([str(NEWSMON), "run", "--json", "--config", str(cfg)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    summary = json.loads(res.stdout)  # stdout is the JSON and nothing else
    assert res.returncode == cli.EXIT_FEEDS_FAILED, res.stderr[-3000:]
    assert summary["feeds_waiting"] == ["A", "B"] and summary["failed_feeds"] == [] and len(routes.hits) == hits
    assert summary["outage"] == {"feeds": 2, "hours": 6.0, "last_success_at": None}
    assert own_lines(res.stderr)[0] == (f"newsmon: polling 2 feeds (those due) into {tmp_path}/wh/newsmon.ducklake; "
                                        "starting Prefect...")

    # 3. feed A is back; --now polls both although they wait in backoff: A works, so no outage, exit 0
    routes.add("/a.xml", body=EMPTY_RSS)
    res = subprocess.run([str(NEWSMON), "run", "--now", "--config", str(cfg)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == cli.EXIT_OK, res.stdout + res.stderr[-3000:]
    assert sorted(routes.hits[hits:]) == ["/a.xml", "/b.xml"]
    assert own_lines(res.stderr)[0].startswith("newsmon: polling all 2 feeds now into ")
    assert "2 feeds: 1 with news, 0 not modified, 1 failed" in res.stdout and "OUTAGE" not in res.stdout


@pytest.mark.usefixtures("prefect_harness")
def test_an_outage_counts_from_the_last_success_and_outage_hours_sets_how_long(routes: RouteServer,
                                                                               tmp_path: Path) -> None:
    from flows.poll import poll_feeds

    a = routes.add("/a.xml", body=EMPTY_RSS)
    b = routes.add("/b.xml", 500, b"down")
    cfg = write_config(tmp_path, [("A", a), ("B", b)])
    first = poll_feeds(config=str(cfg))
    assert first["outage"] is None and cli.run_exit_code(first) == cli.EXIT_OK

    routes.add("/a.xml", 503, b"down")  # A fails now, B waits in backoff: every feed is down ...
    second = poll_feeds(config=str(cfg))
    assert [f["name"] for f in second["failed_feeds"]] == ["A"] and second["feeds_waiting"] == ["B"]
    assert second["outage"] is None and cli.run_exit_code(second) == cli.EXIT_OK  # ... but A worked minutes ago

    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[schedule]\noutage_hours = 0\n", encoding="utf-8")
    hits = len(routes.hits)
    third = poll_feeds(config=str(cfg), every_feed=True)  # 0 hours: any success is too long ago
    assert sorted(routes.hits[hits:]) == ["/a.xml", "/b.xml"]  # every_feed (--now): both, though in backoff
    assert third["outage"]["last_success_at"] is not None and third["outage"]["hours"] == 0
    assert datetime.fromisoformat(third["outage"]["last_success_at"]) < datetime.now(UTC)
    assert cli.run_exit_code(third) == cli.EXIT_FEEDS_FAILED
    err = StringIO()
    print_problems(third, Console(file=err, width=40))
    assert err.getvalue().splitlines()[-1].startswith("newsmon: outage: none of the 2 feeds has been polled "
                                                      "successfully since ")


def feed(name: str) -> FeedSpec:
    return FeedSpec(name, f"http://127.0.0.1:9/{name}.xml")


def failed(spec: FeedSpec) -> FeedResult:
    return FeedResult(feed=spec, fetched_at=NOW, error="HTTP 500 server error", status=500)


def test_outage_is_every_feed_down_and_no_success_within_the_window() -> None:
    a, b = feed("a"), feed("b")
    backing_off = FeedState(b.url, consecutive_failures=2, next_poll_at=NOW + timedelta(minutes=10),
                            last_success_at=NOW - timedelta(hours=7))
    cached = FeedState(b.url, next_poll_at=NOW + timedelta(minutes=10), last_success_at=NOW - timedelta(hours=7))
    never = FeedState(a.url, consecutive_failures=1)
    # a never worked and fails; b waits in backoff, last worked 7 h ago: an outage since then
    got = outage([a, b], {a.url: never, b.url: backing_off}, [failed(a)], NOW, SIX_HOURS)
    assert got is not None and got.feeds == 2 and got.last_success_at == NOW - timedelta(hours=7)
    assert outage([a, b], {a.url: never, b.url: backing_off}, [failed(a)], NOW, timedelta(hours=8)) is None
    # b only waits for its cache hint after a success: not down
    assert outage([a, b], {a.url: never, b.url: cached}, [failed(a)], NOW, SIX_HOURS) is None
    # a new install: nothing ever worked
    fresh = outage([a, b], {}, [failed(a), failed(b)], NOW, SIX_HOURS)
    assert fresh is not None and fresh.last_success_at is None
    ok = FeedResult(feed=a, fetched_at=NOW, status=304, not_modified=True)  # a 304 is a success
    assert outage([a, b], {}, [ok, failed(b)], NOW, SIX_HOURS) is None
    assert outage([], {}, [], NOW, SIX_HOURS) is None


def test_now_makes_every_feed_due() -> None:
    a, b = feed("a"), feed("b")
    states = {a.url: FeedState(a.url, consecutive_failures=5, next_poll_at=NOW + timedelta(hours=6)),
              b.url: FeedState(b.url, next_poll_at=NOW + timedelta(hours=1))}  # backoff; a cache floor
    assert split_due([a, b], states, NOW) == ([], [a, b])
    assert split_due([a, b], states, NOW, every=True) == ([a, b], [])


def test_quiet_lines_are_one_line_each_with_outside_text_made_visible() -> None:
    summary = {"failed_feeds": [{"name": "Bad\x1b]0;x\x07 feed", "error": "HTTP 500\nserver error " + "x" * 200}],
               "alert_errors": ["json://hooks.example/…: HTTP 502"],
               "outage": {"feeds": 3, "hours": 6.0, "last_success_at": "2026-11-30T01:02:03+00:00"}}
    out = StringIO()
    assert print_problems(summary, Console(file=out, width=40)) == 3
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\x1b" not in out.getvalue()
    assert lines[0].startswith("newsmon: feed Bad\\x1b]0;x\\x07 feed failed: HTTP 500\\x0aserver error xxx")
    assert lines[1] == "newsmon: alert failed: json://hooks.example/…: HTTP 502"
    assert lines[2].startswith("newsmon: outage: none of the 3 feeds has been polled successfully since "
                               "2026-11-30 01:02 UTC (more than [schedule] outage_hours = 6 ago)")
    assert print_problems({"failed_feeds": [], "alert_errors": [], "outage": None}, Console(file=StringIO())) == 0


def test_a_config_without_feeds_is_a_configuration_error_for_run_and_serve(tmp_path: Path) -> None:
    (tmp_path / "newsmon.toml").write_text(config_text([]), encoding="utf-8")
    other = tmp_path / "empty.toml"
    other.write_text(config_text([]), encoding="utf-8")
    env = user_env(tmp_path / "prefect-home")
    serve = subprocess.run([str(NEWSMON), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    run = subprocess.run([str(NEWSMON), "run", "--config", str(other)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    for res, cfg, hint in ((serve, tmp_path / "newsmon.toml", "feeds add URL`"),
                           (run, other, f"feeds add URL --config {other}`")):
        lines = own_lines(res.stderr)
        assert res.returncode == cli.EXIT_CONFIG and len(lines) == 1, res.stderr
        assert lines[0].startswith(f"newsmon: configuration error: no feeds in {cfg}: add [[feeds]] or `")
        assert lines[0].endswith(hint) and res.stdout == ""
    assert not (tmp_path / "wh").exists()  # refused before anything was opened


def test_run_help_documents_the_outage_now_and_quiet() -> None:
    res = subprocess.run([str(NEWSMON), "run", "--help"], capture_output=True, text=True, timeout=60)
    text = " ".join(res.stdout.split())
    assert res.returncode == 0
    assert "Exit 1 when every feed failed, or in an outage" in text and "outage_hours (default 6" in text
    assert "--now" in text and "also those waiting in backoff" in text
    assert "only what failed" in text and "on stderr" in text
    top = " ".join(subprocess.run([str(NEWSMON), "--help"], capture_output=True, text=True, timeout=60).stdout.split())
    assert "1 every feed failed or an outage" in top and "a config without feeds too" in top
