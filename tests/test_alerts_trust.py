"""Alerts you can set up and trust, through the real command line: a channel Apprise cannot use fails when the
config loads, `newsmon alerts test` says per channel whether a message got through and why not, the ledger and
the run's summary keep the service's own reason, a receiver that fails once still gets the alert in the same
run (once), and commands that send nothing run without the channels' secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root
from tests.conftest import config_text
from tests.test_alerts import Inbox, mail_url, smtp  # noqa: F401  (the SMTP fixture)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-Token-4711"
REASON_500 = "Failed to send JSON POST notification: Internal server error., error=500."


@pytest.fixture(scope="module")
def env(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for `newsmon` processes: the harness's Prefect API, a wide terminal, no SMTP_PASSWORD."""
    from prefect.settings import PREFECT_API_URL

    base = {k: v for k, v in os.environ.items() if k != "SMTP_PASSWORD"}
    return base | {"PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                   "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")), "COLUMNS": "3000",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}


def newsmon(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsmon.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def write(tmp_path: Path, feeds: list[tuple[str, str]], urls: list[str], extra: str = "") -> Path:
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text(config_text(feeds, urls, extra), encoding="utf-8")
    return cfg


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def sql(env: dict[str, str], cfg: Path, query: str) -> list[dict[str, object]]:
    res = newsmon(env, "sql", query, "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return list(json.loads(res.stdout))


def test_a_channel_apprise_cannot_use_fails_every_sending_command_at_load(env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    with WebhookReceiver() as rx:
        bad = f"notascheme://newsmon:{SECRET}@foo"
        in_urls = write(tmp_path, [("f", "http://127.0.0.1:9/feed.xml")], [rx.apprise_url(), bad])
        in_route = tmp_path / "route.toml"
        route = f'\n[[alerts.routes]]\nname = "ops"\nurls = ["{bad}"]\n'
        in_route.write_text(config_text([], [rx.apprise_url()]) + route, encoding="utf-8")
        for cfg, key in ((in_urls, "alerts.urls[1]"), (in_route, "alerts.routes[0].urls[0]")):
            for command in (["run"], ["serve"], ["digest", "--send"], ["alerts", "test"]):
                res = newsmon(env, *command, "--config", str(cfg))
                said = one_line(res)
                assert res.returncode == 2, (command, res.stderr)
                assert f"{cfg.resolve()}: {key}: notascheme://… is not a URL Apprise can use" in said, said
                assert SECRET not in res.stdout + res.stderr
        assert rx.attempts == 0  # nothing was sent, not even to the good channel
    assert not (tmp_path / "wh").exists()  # nor stored: the runs stopped before opening the warehouse


def test_alerts_test_sends_one_message_per_channel_and_says_why_one_failed(
        env: dict[str, str], smtp: tuple[int, Inbox], tmp_path: Path) -> None:  # noqa: F811
    port, inbox = smtp
    down = closed_port()
    with WebhookReceiver() as ok, WebhookReceiver(fail_first=100) as broken:
        routes = {"ok": f"json://newsmon:{SECRET}@127.0.0.1:{ok.port}/hook?token={SECRET}",
                  "broken": f"json://newsmon:{SECRET}@127.0.0.1:{broken.port}/hook",
                  "down": f"json://127.0.0.1:{down}/hook?token={SECRET}", "mail": mail_url(port)}
        cfg = tmp_path / "newsmon.toml"
        cfg.write_text(config_text([], []) + "".join(f'\n[[alerts.routes]]\nname = "{n}"\nurls = ["{u}"]\n'
                                                     for n, u in routes.items()), encoding="utf-8")
        every = newsmon(env, "alerts", "test", "--config", str(cfg))
        only = newsmon(env, "alerts", "test", "--channel", "ok", "--config", str(cfg))
        unknown = newsmon(env, "alerts", "test", "--channel", "nope", "--config", str(cfg))
    assert every.returncode == 1, every.stderr
    assert every.stdout.splitlines() == [
        "OK    json://127.0.0.1 (route ok): delivered",
        f"FAIL  json://127.0.0.1 (route broken): delivery failed: {REASON_500}",
        "FAIL  json://127.0.0.1 (route down): delivery failed: A Connection error occurred sending JSON "
        "notification to 127.0.0.1. ([Errno 111] Connection refused)",
        "OK    mailto://127.0.0.1 (route mail): delivered"]
    assert only.returncode == 0 and only.stdout.splitlines() == ["OK    json://127.0.0.1 (route ok): delivered"]
    assert unknown.returncode == 2 and "--channel 'nope': no alert channel or route of that name" in one_line(unknown)
    assert SECRET not in every.stdout + every.stderr + only.stdout + only.stderr
    # what arrived: one test message per run of the command, each with its own idempotency key
    assert [p["title"] for p in ok.received] == ["newsmon test message"] * 2
    assert len({p["idempotency_key"] for p in ok.received}) == 2
    assert broken.attempts == 1 and broken.received == []  # one try: the result is the channel's state now
    assert [m["Subject"] for m in inbox.messages] == ["newsmon test message"]
    assert not (tmp_path / "wh").exists()  # a test message is not an alert: nothing is stored
    top, sub = newsmon(env, "--help").stdout, newsmon(env, "alerts", "--help").stdout
    assert "alerts" in top and "`alerts test` sends one test message to each" in " ".join(sub.split())


def test_the_services_reason_is_in_the_ledger_the_run_summary_and_alerts_test(env: dict[str, str],
                                                                                tmp_path: Path) -> None:
    with SiteServer(demo_site_root()) as site, WebhookReceiver(fail_first=10_000) as rx:
        cfg = write(tmp_path, [("en", site.url("/feeds/en.xml"))], [rx.apprise_url()],
                    extra="send_attempts = 1")
        run = newsmon(env, "run", "--config", str(cfg))
        check = newsmon(env, "alerts", "test", "--config", str(cfg))
    assert run.returncode == 0, run.stderr
    error = f"json://127.0.0.1: delivery failed: {REASON_500}"
    ledger = sql(env, cfg, "SELECT DISTINCT status, attempts, last_error FROM alerts")
    assert ledger == [{"status": "pending", "attempts": 1, "last_error": error}]
    assert f"alert failed {error}" in run.stdout  # the run's summary lists each failure with its reason
    assert check.returncode == 1
    assert check.stdout == f"FAIL  json://127.0.0.1 (route all): delivery failed: {REASON_500}\n"


def test_a_receiver_that_fails_twice_gets_each_alert_in_the_same_run_exactly_once(env: dict[str, str],
                                                                                  tmp_path: Path) -> None:
    with SiteServer(demo_site_root()) as site, WebhookReceiver(fail_first=2) as flaky, WebhookReceiver() as steady:
        cfg = write(tmp_path, [("en", site.url("/feeds/en.xml"))], [flaky.apprise_url(), steady.apprise_url("b")],
                    extra="send_attempts = 3\nsend_backoff_s = 0.05")
        first = newsmon(env, "run", "--json", "--config", str(cfg))
        second = newsmon(env, "run", "--json", "--config", str(cfg))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    summary, again = json.loads(first.stdout), json.loads(second.stdout)
    assert summary["alert_errors"] == [] and summary["alerts_sent"] == summary["alerts_queued"] >= 2
    assert again["alerts_sent"] == 0 and again["alert_errors"] == []
    # the flaky receiver's first message was tried three times (two 500s, then delivered); the steady one was
    # never tried again, and no message that went was sent twice
    flaky_keys = [p["idempotency_key"] for p in flaky.received]
    steady_keys = [p["idempotency_key"] for p in steady.received]
    assert flaky.attempts == len(flaky_keys) + 2 and steady.attempts == len(steady_keys)
    keys = flaky_keys + steady_keys
    assert len(set(keys)) == len(keys) == summary["alerts_sent"]
    ledger = sql(env, cfg, "SELECT alert_id, status, attempts, last_error FROM alerts ORDER BY alert_id")
    assert ledger == [{"alert_id": k, "status": "sent", "attempts": 1, "last_error": None} for k in sorted(keys)]


def test_commands_that_send_nothing_run_without_the_alert_secrets(
        env: dict[str, str], smtp: tuple[int, Inbox], tmp_path: Path) -> None:  # noqa: F811
    port, _ = smtp
    url = f"mailto://newsmon:${{SMTP_PASSWORD}}@127.0.0.1:{port}?from=newsmon@example.com&to=a@example.com"
    with SiteServer(demo_site_root()) as site:
        cfg = write(tmp_path, [("en", site.url("/feeds/en.xml"))], [url], extra="send_attempts = 1")
        stored = newsmon(env | {"SMTP_PASSWORD": SECRET}, "run", "--json", "--config", str(cfg))
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout)["new_articles"] >= 1
    c = ["--config", str(cfg)]  # from here on SMTP_PASSWORD is not set
    count = sql(env, cfg, "SELECT count(*) AS n FROM articles")
    assert count[0]["n"] >= 1
    feeds = newsmon(env, "feeds", *c)
    assert feeds.returncode == 0 and "en" in feeds.stdout.split()
    report = newsmon(env, "report", "--out", str(tmp_path / "r.html"), *c)
    assert report.returncode == 0 and (tmp_path / "r.html").stat().st_size > 0, report.stderr
    digest = newsmon(env, "digest", "--since", "30d", *c)
    assert digest.returncode == 0 and "Azerbaijan" in digest.stdout, digest.stderr
    export = newsmon(env, "export", str(tmp_path / "out"), "--format", "csv", *c)
    assert export.returncode == 0 and (tmp_path / "out" / "articles.csv").exists(), export.stderr
    attach = newsmon(env, "sql", "--attach", *c)
    assert attach.returncode == 0 and "ATTACH" in attach.stdout
    for command in (["run"], ["serve"], ["digest", "--send"], ["alerts", "test"]):
        res = newsmon(env, *command, *c)
        assert res.returncode == 2, (command, res.stderr)
        assert (f"{cfg.resolve()}: alerts.urls[0] refers to ${{SMTP_PASSWORD}}, which is not set in the environment"
                in one_line(res)), res.stderr
