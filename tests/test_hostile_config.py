"""Hostile input that reaches the configuration and the files we write (issue 16): alert URLs with odd
characters or secrets Apprise cannot use, hostile feed titles written into the config by `feeds import` /
`feeds add`, and CSV cells that spreadsheets would run as formulas. Real files, real servers on 127.0.0.1,
real `newsmon` processes."""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
import random
import resource
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from newsmon import cli
from newsmon.alerts.deliver import deliver_pending
from newsmon.alerts.notify import AppriseNotifier, keyed_url, url_problem
from newsmon.alerts.policy import Channel, plan_alerts, redact_url, scrub, secret_fragments, url_scheme
from newsmon.config import MAX_FEED_NAME, AlertSettings, FeedSpec, append_feeds, feed_name, load_settings, toml_string
from newsmon.demo.receiver import WebhookReceiver
from newsmon.errors import ConfigError
from newsmon.records import RunBatch
from tests.conftest import RouteServer, lake_query, make_warehouse, write_config
from tests.hostile_servers import MATCH_TEXT, RawServer, reset
from tests.test_warehouse import NOW, article, batch, verdict

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "x7]Kp2!q"  # the issue's SMTP password: `]` made urlsplit raise "Invalid IPv6 URL"
TOKEN = "s3cretT0kenVALUE9f8e"
LEAKY = "Zq9hooksecret"  # short enough that Apprise's own log masking (CWE-312) logs it whole
# One per class of alert URL Apprise cannot use; each hides a secret that must never be shown.
UNUSABLE = {
    "bracket in password": (f"mailtos://user:{PASSWORD}@smtp.example.com", PASSWORD, "mailtos://smtp.example.com"),
    "open bracket in password": (f"mailtos://user:x7[{TOKEN}@smtp.example.com", TOKEN, "mailtos://smtp.example.com"),
    "both brackets in password": (f"json://user:a]{TOKEN}[@127.0.0.1:9/hook", TOKEN, "json://"),
    "unknown scheme": (f"foo://bar:{TOKEN}@hooks.example.com/x", TOKEN, "foo://hooks.example.com"),
    "token Apprise refuses": (f"discord://{LEAKY}", LEAKY, "discord://…"),
    "no scheme": (f"{TOKEN}@smtp.example.com", TOKEN, "…://…"),
    "broken IPv6 literal": (f"json://[127.0.0.1:9/{TOKEN}", TOKEN, "json://"),
}


# --- alert URLs: redaction is total ---------------------------------------------------------------------------

ODD = "]:[@/?#% \t\n\x00\x7f\u2028\"'\\é"


@pytest.mark.parametrize("char", list(ODD), ids=[f"U+{ord(c):04X}" for c in ODD])
@pytest.mark.parametrize("scheme", ["mailtos", "json", "slack", "tgram"])
def test_a_password_with_any_odd_character_is_redacted_and_nothing_raises(scheme: str, char: str) -> None:
    secret = f"ab{char}{TOKEN}{char}yz"
    for url in (f"{scheme}://user:{secret}@smtp.example.com:465/path?to=a@b.example",
                f"{scheme}://{secret}/{secret}", f"{scheme}://smtp.example.com/?pass={secret}"):
        shown = redact_url(url)
        assert TOKEN not in shown and shown.startswith(f"{scheme}://")
        assert TOKEN not in scrub(f"could not load {url}", [url])
        assert Channel(url).name == shown and Channel(url).is_email is (scheme == "mailtos")
        assert url_scheme(url) == scheme
        keyed_url(url, "k1")  # the idempotency key goes on any URL without raising


@settings(max_examples=400, deadline=None)
@given(st.text(), st.text(min_size=4))
@example(url="", secret="a/bc/")  # a password holding / and ending the user info early
@example(url="json://[::1", secret="x]y[z")
def test_redaction_is_total_for_any_string(url: str, secret: str) -> None:
    for text in (url, f"mailtos://user:{secret}@smtp.example.com", f"json://{url}", f"{url}://{secret}"):
        shown = redact_url(text)
        assert isinstance(shown, str) and "://" in shown
        secret_fragments(text)
        scrub(text + " and more", [text])
        url_scheme(text)
        Channel(text).name  # noqa: B018 - a property that must not raise
    leaked = scrub(f"user:{secret}@smtp.example.com", [f"mailtos://user:{secret}@smtp.example.com"])
    assert secret not in leaked or secret in "mailtos://user:***@smtp.example.com"  # the scheme, host are public


# --- alert URLs: checked at load, named redacted, exit 2 ------------------------------------------------------


def alert_config(tmp_path: Path, feed: str, urls: list[str], routes: str = "") -> Path:
    return write_config(tmp_path, [("f", feed)], urls, extra=routes)


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_newsmon_run_refuses_an_unusable_alert_url_at_load_naming_it_redacted(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    url, secret, shown = UNUSABLE[case]
    caplog.set_level(logging.DEBUG)
    cfg = alert_config(tmp_path, "https://news.example/rss", ["json://127.0.0.1:9/ok", url])
    assert cli.main(["run", "--config", str(cfg), "--quiet"]) == cli.EXIT_CONFIG
    out, err = capsys.readouterr()
    # one line from newsmon (stderr may also hold Apprise's redacted complaint, via a handler an earlier
    # in-process Prefect run left on the root logger; the real process test below checks stderr whole)
    said = [line for line in err.splitlines() if line.startswith("newsmon:")]
    assert len(said) == 1 and "alerts.urls[1]" in said[0] and shown in said[0] and "Apprise" in said[0], err
    assert secret not in out + err + caplog.text
    assert not (tmp_path / "wh").exists()  # refused before anything was opened


def test_the_issues_smtp_password_exits_2_in_a_real_process_and_shows_no_secret(tmp_path: Path) -> None:
    cfg = alert_config(tmp_path, "https://news.example/rss", ["mailtos://user:${SMTP_PASSWORD}@smtp.example.com"])
    res = subprocess.run([sys.executable, "-m", "newsmon.cli", "run", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "SMTP_PASSWORD": PASSWORD})
    assert res.returncode == cli.EXIT_CONFIG and res.stdout == ""
    assert res.stderr.startswith(f"newsmon: configuration error: {cfg.resolve()}: alerts.urls[0]: "
                                 "mailtos://smtp.example.com is not a URL Apprise can use")
    assert res.stderr.count("\n") == 1 and PASSWORD not in res.stderr and "Traceback" not in res.stderr


def test_routes_and_the_environment_are_checked_after_expansion(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    routes = ('[[alerts.routes]]\nname = "ops"\nurls = ["json://127.0.0.1:9/ops", '
              '"mailtos://ops:${SMTP_PASSWORD}@smtp.example.com?to=ops@example.com"]\nevents = ["feed"]\n')
    cfg = alert_config(tmp_path, "https://news.example/rss", ["json://127.0.0.1:9/all"], routes)
    assert load_settings(cfg).alerts.routes[0].urls[1].endswith(f":{PASSWORD}@smtp.example.com?to=ops@example.com")
    assert cli.main(["run", "--config", str(cfg)]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "alerts.routes[0].urls[1]" in err and "mailtos://smtp.example.com" in err and PASSWORD not in err
    monkeypatch.setenv("NEWSMON_ALERT_URLS", f"json://127.0.0.1:9/a discord://{TOKEN}")
    assert cli.main(["digest", "--send", "--config", str(cfg)]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "NEWSMON_ALERT_URLS[1]" in err and "discord://…" in err and TOKEN not in err
    monkeypatch.setenv("NEWSMON_ALERT_URLS", "json://127.0.0.1:9/a ${EMPTY_SECRET}")
    monkeypatch.setenv("EMPTY_SECRET", "")
    assert cli.main(["serve", "--config", str(cfg)]) == cli.EXIT_CONFIG
    assert "NEWSMON_ALERT_URLS[1]: the URL is empty" in capsys.readouterr().err
    # the same URL percent-encoded is what the message asks for, and it loads
    monkeypatch.delenv("NEWSMON_ALERT_URLS")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD.replace("]", "%5D"))
    assert load_settings(cfg, check_url=url_problem).alerts.routes[0].name == "ops"


def test_a_literal_secret_in_a_mistyped_urls_key_is_not_echoed(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text(f'[alerts]\nurls = "mailtos://user:{TOKEN}@smtp.example.com"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts\.urls: expected a list of strings") as err:
        load_settings(cfg)
    assert TOKEN not in str(err.value)


def test_apprise_logs_keep_secrets_out_even_for_urls_it_cannot_parse(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for url, _, _ in UNUSABLE.values():
        assert url_problem(url) is not None
    logging.getLogger("apprise").error("retrying %s", f"discord://{TOKEN}", exc_info=ValueError(f"bad {TOKEN}"))
    assert url_problem("json://127.0.0.1:9/hook") is None
    text = caplog.text + "".join(str(r.msg) + str(r.exc_text) for r in caplog.records)
    assert "Could not load Discord URL: discord://…" in text  # Apprise's own words, with the URL redacted
    for _, secret, _ in UNUSABLE.values():
        assert secret not in text


# --- alert URLs: at send time a channel fails alone -----------------------------------------------------------


class OneChannelBreaks:
    """A notifier (our Notifier protocol) that raises an unexpected error, carrying its secret URL, for one
    channel and sends the rest through Apprise: a bug in rendering, redaction or a library for one channel."""

    def __init__(self, broken: str) -> None:
        self.broken = broken
        self.real = AppriseNotifier()

    def send(self, channel: Channel, title: str, body: str, *, key: str | None = None,
             body_format: str = "text") -> None:
        if channel.url == self.broken:
            raise RuntimeError(f"cannot render for {channel.url}")
        self.real.send(channel, title, body, key=key, body_format=body_format)


def test_one_unusable_or_raising_channel_fails_alone_and_the_rest_are_delivered(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    bad = UNUSABLE["bracket in password"][0]
    raising = f"json://user:{TOKEN}@127.0.0.1:9/broken"
    with WebhookReceiver() as rx, RawServer(reset) as rst:
        refused = f"json://user:{TOKEN}@127.0.0.1:{rst.port}/hook"
        settings = AlertSettings(urls=(bad, raising, refused, rx.apprise_url()), retry_minutes=0)
        arts = [article(0, published_at=NOW)]
        alerts = plan_alerts(arts, [verdict(0, True)], settings.all_routes, clusters={}, now=NOW,
                             window=timedelta(hours=48))  # the run's planning no longer raises on any URL
        assert len(alerts) == 4 and {a.channel_name for a in alerts} == {
            "mailtos://smtp.example.com", "json://127.0.0.1"}
        stored = wh.runs.store_run(RunBatch("r1", "t", NOW, batch("r1", 1).feed_results, tuple(arts),
                                            (verdict(0, True),), tuple(alerts)), finished_at=NOW)
        assert stored is not None
        report = deliver_pending(wh, settings, OneChannelBreaks(raising), now=NOW)
    assert report.sent == 1 and len(rx.received) == 1 and len(report.errors) == 3
    assert any("RuntimeError" in e for e in report.errors)
    assert any("mailtos://smtp.example.com: not a valid Apprise URL" in e for e in report.errors)
    for e in report.errors:
        assert TOKEN not in e and PASSWORD not in e
    wh.runs.sync_alerts()
    rows = wh.lake.query("SELECT status, count(*) FROM alerts GROUP BY status ORDER BY status")[1]
    assert rows == [("pending", 3), ("sent", 1)]  # the failures wait for a retry; the article is stored
    assert wh.lake.query("SELECT count(*) FROM articles")[1] == [(1,)]
    wh.close()


@pytest.fixture
def api_env(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a process that runs a flow against the session's Prefect API server."""
    from prefect.settings import PREFECT_API_URL

    return os.environ | {"PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                         "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
                         "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


FLOW = "import json, sys; from flows.poll import poll_feeds; print(json.dumps(poll_feeds(config=sys.argv[1]), " \
       "default=str))"


@pytest.mark.slow  # a flow in its own process: ~25 s; the in-process test above covers the same rule fast
def test_a_scheduled_run_with_unusable_channels_stores_everything_and_alerts_the_good_one(
        api_env: dict[str, str], routes: RouteServer, tmp_path: Path) -> None:
    """The flow as a deployment or `newsmon serve` runs it (the config edited after serve checked it): no
    load check, so every bad channel reaches the send, fails there alone, and Apprise's complaints (its
    ERROR lines reach stderr through Prefect's console handler) carry no secret."""
    page = f"<html><body><article><p>{MATCH_TEXT}</p><p>{MATCH_TEXT}</p></article></body></html>".encode()
    routes.add("/story", body=page, content_type="text/html")
    when = format_datetime(datetime.now(UTC), usegmt=True)
    feed = routes.add("/feed.xml", body=(
        "<rss version='2.0'><channel><title>f</title><link>http://x/</link><description>d</description>"
        f"<item><title>Azerbaijan invites Russian companies to green energy projects</title>"
        f"<link>{routes.base_url}/story</link><pubDate>{when}</pubDate></item></channel></rss>").encode())
    with WebhookReceiver() as rx, RawServer(reset) as rst:
        urls = [UNUSABLE["bracket in password"][0], UNUSABLE["token Apprise refuses"][0],
                UNUSABLE["unknown scheme"][0], f"json://user:{TOKEN}@127.0.0.1:{rst.port}/hook", rx.apprise_url()]
        cfg = alert_config(tmp_path, feed, urls)
        res = subprocess.run([sys.executable, "-c", FLOW, str(cfg)], cwd=ROOT, env=api_env, capture_output=True,
                             text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["new_articles"] == 1 and summary["alerts_sent"] == 1 and len(rx.received) == 1
    assert len(summary["alert_errors"]) == 4
    assert "Could not load Discord URL: discord://…" in res.stderr  # Apprise spoke, redacted
    for secret in (PASSWORD, TOKEN, LEAKY):
        assert secret not in res.stdout + res.stderr
    assert lake_query(cfg, "SELECT count(*) FROM articles") == [(1,)]
    assert lake_query(cfg, "SELECT status, count(*) FROM alerts GROUP BY ALL ORDER BY 1") == [
        ("pending", 4), ("sent", 1)]


# --- feed titles written into the config ----------------------------------------------------------------------

HOSTILE_TITLES = [
    "Caucasus Wire\x7f", "nul\x00inside", "line\u2028separator\u2029para", 'say "hi"', "back\\slash\\",
    "]]\n[[feeds]]\nname = \"injected\"\nurl = \"https://evil.example/\"", "multi\nline\r\ntitle", "tab\there",
    "\x1b]0;title\x07\x1b[31mred", "bidi \u202eevil\u202c", "zero\u200bwidth\ufeff", "C1 \x85\x9b controls",
    "'''triple'''", '"""triple"""', "#not a comment", "key = \"value\"", "é漢字🙂 Ünïcode", "\ud800lone surrogate",
    "   ", "", "x" * 100_000, "\\u0041 not an escape", "${NOT_EXPANDED}", "\"\\\"\\\\\"",
]


def test_append_feeds_writes_any_title_as_an_escaped_toml_string(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [("Old", "https://old.example/rss")])
    rng = random.Random(16)
    fuzz = ["".join(chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0x80, 0x3000),
                                    rng.randrange(0xD800, 0xE000), rng.randrange(0x10000, 0x10FFFF)]))
                    for _ in range(rng.randrange(1, 60))) for _ in range(200)]
    feeds = [FeedSpec(t, f"https://site{i}.example/rss") for i, t in enumerate(HOSTILE_TITLES + fuzz)]
    added = append_feeds(cfg, feeds)
    assert len(added) == len(feeds)
    loaded = load_settings(cfg).feeds[1:]
    assert [f.url for f in loaded] == [f.url for f in feeds]
    assert [f.name for f in loaded] == [feed_name(f.name, f.url) for f in feeds] == [f.name for f in added]
    for f in loaded:
        assert f.name and len(f.name) <= MAX_FEED_NAME and f.name == f.name.strip()
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029\u202e\u200b\ufeff" for c in f.name)
    assert loaded[0].name == "Caucasus Wire" and loaded[3].name == 'say "hi"' and loaded[4].name == "back\\slash\\"
    assert loaded[5].name.startswith("]] [[feeds]]") and loaded[18].name == "https://site18.example/rss"
    assert len(load_settings(cfg).feeds) == len(feeds) + 1  # nothing injected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_toml_string_round_trips_any_text(text: str) -> None:
    import tomllib

    expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    assert tomllib.loads(f"k = {toml_string(text)}\n")["k"] == expected


def opml(titles: list[str], urls: list[str] | None = None) -> bytes:
    """An OPML file whose titles are XML attribute values: every character XML 1.0 allows, as written."""
    def attr(s: str) -> str:
        s = "".join(c for c in s if c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD
                    or ord(c) > 0xFFFF)
        return quoteattr(s, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;", "\x7f": "&#127;"})
    urls = urls or [f"https://feeds{i}.example/rss" for i in range(len(titles))]
    rows = "".join(f"<outline type=\"rss\" text={attr(t)} title={attr(t)} xmlUrl={attr(u)}/>\n"
                   for t, u in zip(titles, urls, strict=True))
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0"><body>\n{rows}</body></opml>'.encode()


def newsmon(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsmon.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_feeds_import_of_hostile_titles_keeps_the_config_valid_for_every_later_command(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [("Old", "https://old.example/rss")])
    cfg.chmod(0o600)  # it may hold secrets: the rewritten file keeps its permissions
    src = tmp_path / "reader.opml"
    src.write_bytes(opml(HOSTILE_TITLES))
    res = newsmon("feeds", "import", str(src), "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert f"imported {len(HOSTILE_TITLES)} new feed(s)" in res.stdout
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    names = [f.name for f in load_settings(cfg).feeds]
    assert names[1] == "Caucasus Wire" and "line separator para" in names and 'say "hi"' in names
    assert len(names) == len(HOSTILE_TITLES) + 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    again = newsmon("feeds", "export", "--config", str(cfg))  # a later command reads it back
    assert again.returncode == 0 and again.stdout.count("<outline") == len(HOSTILE_TITLES) + 1


@pytest.mark.parametrize("case", ["url with a space", "url with a control character", "config with inline feeds"])
def test_a_feed_list_that_would_not_load_leaves_the_old_file_untouched(case: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [("Old", "https://old.example/rss")])
    urls = ["https://ok.example/rss", "https://bad.example/a b" if case == "url with a space"
            else "https://bad.example/a\x7fb"]
    if case == "config with inline feeds":  # valid, but `[[feeds]]` cannot be appended to it
        cfg.write_text("feeds = []\n" + cfg.read_text(encoding="utf-8").split("[[feeds]]")[0], encoding="utf-8")
        urls = ["https://ok.example/rss", "https://ok2.example/rss"]
    before = cfg.read_bytes()
    src = tmp_path / "reader.opml"
    src.write_bytes(opml(["Good", "Bad"], urls))
    res = newsmon("feeds", "import", str(src), "--config", str(cfg))
    assert res.returncode == cli.EXIT_CONFIG, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and "was left unchanged" in res.stderr and "Traceback" not in res.stderr
    assert cfg.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsmon.toml", "reader.opml"]


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    """A full disk, as a file size limit (works as root too): the new file cannot be written whole."""
    cfg = write_config(tmp_path, [("Old", "https://old.example/rss")])
    before = cfg.read_bytes()
    src = tmp_path / "reader.opml"
    src.write_bytes(opml([f"Feed {i}" for i in range(50)]))
    limit = len(before) + 300

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    res = subprocess.run([sys.executable, "-m", "newsmon.cli", "feeds", "import", str(src), "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         timeout=120, preexec_fn=small_files)
    assert res.returncode == cli.EXIT_CONFIG, res.stdout + res.stderr
    assert "cannot write the new configuration beside it" in res.stderr and res.stderr.count("\n") == 1
    assert cfg.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsmon.toml", "reader.opml"]


def test_a_symlinked_config_stays_a_link_to_the_updated_file(tmp_path: Path) -> None:
    real = write_config(tmp_path, [("Old", "https://old.example/rss")])
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    append_feeds(link, [FeedSpec('New "one"\x7f', "https://new.example/rss")])
    assert link.is_symlink() and [f.name for f in load_settings(real).feeds] == ["Old", 'New "one"']


def test_feeds_add_writes_a_hostile_discovered_title_safely(routes: RouteServer, tmp_path: Path) -> None:
    """A site whose feed has no title of its own: the page's link title is used, raw control bytes and all."""
    title = 'Wire\x7f\x00 "quoted" \\ ]]\n[[feeds]]\x1b[31m\u2028end'
    page = (f'<html><head><link rel="alternate" type="application/rss+xml" title="{html.escape(title)}" '
            'href="/feed.xml">'
            "</head><body></body></html>").encode()
    routes.add("/", body=page, content_type="text/html")
    routes.add("/feed.xml", body=b"<rss version='2.0'><channel><title></title><item><title>A</title>"
                                 b"<link>https://x.example/a</link></item></channel></rss>")
    cfg = write_config(tmp_path, [("Old", "https://old.example/rss")])
    res = newsmon("feeds", "add", routes.base_url + "/", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    added = load_settings(cfg).feeds[-1]
    assert added.url == routes.base_url + "/feed.xml"
    assert added.name == 'Wire "quoted" \\ ]] [[feeds]] [31m end' and "\x1b" not in res.stdout


# --- CSV cells a spreadsheet would run ------------------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1", "=", "-"]
SAFE = ["Story", " =1 (a space first)", "'=already quoted", "1+1", "", "Baku = Moscow"]


@pytest.fixture
def formula_config(tmp_path: Path) -> Path:
    wh = make_warehouse(tmp_path / "w.duckdb")
    titles = FORMULAS + SAFE
    arts = tuple(article(i, title=t, summary=t, word_count=-i - 1, feed_name=f"@feed{i}") for i, t in enumerate(titles))
    wh.runs.store_run(RunBatch("r1", "=cmd", NOW, batch("r1", 1).feed_results, arts,
                               tuple(verdict(i, False) for i in range(len(arts))), ()), finished_at=NOW)
    wh.close()
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    return cfg


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what a spreadsheet reads as the start of a formula


def neutral(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def test_csv_export_prefixes_formula_text_cells_and_keeps_numbers(formula_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    assert cli.main(["export", "-c", str(formula_config), "--format", "csv", str(out)]) == 0
    with (out / "articles.csv").open(encoding="utf-8", newline="") as fh:
        rows = {r["article_id"]: r for r in csv.DictReader(fh)}
    for i, t in enumerate(FORMULAS + SAFE):
        row = rows[f"a{i}"]
        assert row["title"] == neutral(t) and row["summary"] == neutral(t) and row["feed_name"] == f"'@feed{i}"
        assert row["word_count"] == str(-i - 1)  # a negative number in a numeric column stays a number
    for t in FORMULAS:
        assert neutral(t).startswith("'")
    for t in SAFE:
        assert neutral(t) == t
    with (out / "poll_runs.csv").open(encoding="utf-8", newline="") as fh:
        assert next(csv.DictReader(fh))["config"] == "'=cmd"
    # the other formats keep every value exactly as stored
    assert cli.main(["export", "-c", str(formula_config), "--format", "jsonl", str(tmp_path / "j")]) == 0
    lines = (tmp_path / "j" / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["title"] for line in lines) == sorted(FORMULAS + SAFE)


def test_sql_csv_output_applies_the_same_rule(formula_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = ("SELECT title, word_count, -1.5 AS neg, CAST(-7 AS DECIMAL(5, 1)) AS dec, '-3' AS text_number, "
             "NULL AS nothing, [title] AS list FROM articles ORDER BY article_id")
    assert cli.main(["sql", "-c", str(formula_config), "--format", "csv", query]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["title", "word_count", "neg", "dec", "text_number", "nothing", "list"]
    assert len(rows) == 1 + len(FORMULAS + SAFE)
    for row in rows[1:]:
        assert not row[0].startswith(FORMULA_START) and not row[6].startswith(FORMULA_START)
        assert row[2:6] == ["-1.5", "-7.0", "'-3", ""] and int(row[1]) < 0  # numbers stay numbers
    titles = {r[0] for r in rows[1:]}  # (control characters may also be shown as escapes: the terminal rule)
    assert {neutral(t) for t in FORMULAS + SAFE if t.isprintable()} <= titles
    assert cli.main(["sql", "-c", str(formula_config), "--format", "csv", 'SELECT 1 AS "=cmd"']) == 0
    assert capsys.readouterr().out.splitlines() == ["'=cmd", "1"]


@pytest.fixture(autouse=True)
def _no_leftover_apprise_level() -> Iterator[None]:
    """AppriseNotifier raises Apprise's log level; other tests' caplog should see what they expect."""
    level = logging.getLogger("apprise").level
    yield
    logging.getLogger("apprise").setLevel(level)
