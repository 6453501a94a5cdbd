"""No one let in: the SSRF guard through `newsmon run` and the page fetcher, hostile feed content stored as
data and defused in alerts, `newsmon sql` read-only, and alert secrets kept out of every trace a run leaves."""

from __future__ import annotations

import asyncio
import email
import logging
import re
import socket
import sqlite3
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from extractors.http import Fetcher
from extractors.pages import fetch_articles
from newsmon import cli
from newsmon.config import HttpSettings, WarehouseSettings, default_config_text, load_settings
from newsmon.demo.receiver import WebhookReceiver
from newsmon.errors import BlockedURLError
from newsmon.records import Entry
from tests.conftest import RouteServer, write_config
from tests.hostile_servers import MATCH_TEXT
from warehouse import open_reader, open_warehouse

NOW = datetime.now(UTC).replace(microsecond=0)


def default_config_with(tmp_path: Path, feed_url: str) -> Path:
    """`newsmon init`'s file as shipped, with its feed list replaced by one feed."""
    text = default_config_text()
    text = text[: text.index("[[feeds]]")] + f'[[feeds]]\nname = "local"\nurl = "{feed_url}"\n'
    text = text.replace('path = "data/newsmon.duckdb"', f'path = "{tmp_path / "wh.duckdb"}"')
    path = tmp_path / "newsmon.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.usefixtures("prefect_harness")
def test_newsmon_run_with_the_default_config_refuses_a_loopback_feed_before_any_request(
        routes: RouteServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = routes.add("/feed.xml", body=b"<rss version='2.0'><channel><title>t</title></channel></rss>")
    cfg = default_config_with(tmp_path, url)
    assert load_settings(cfg).http.allow_private_networks is False
    code = cli.main(["run", "--config", str(cfg), "--quiet"])
    out = capsys.readouterr().err  # --quiet: only what failed, one line each on stderr
    assert code == cli.EXIT_FEEDS_FAILED
    assert routes.hits == []  # nothing reached the server
    assert url in out and "refused before any request" in out


PRIVATE = ["http://127.0.0.1/a", "http://10.1.2.3/a", "http://172.16.0.1/a", "http://192.168.1.1/a",
           "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/a", "http://0.0.0.0/a",
           "http://224.0.0.1/a", "http://240.0.0.1/a", "http://255.255.255.255/a", "http://[::1]/a",
           "http://[fe80::1]/a", "http://[fc00::1]/a", "http://[ff02::1]/a", "http://[::ffff:127.0.0.1]/a",
           "http://[64:ff9b::7f00:1]/a", "http://[2002:7f00:1::]/a", "http://2130706433/a", "http://0x7f.1/a",
           "http://localhost/a"]


def test_article_urls_on_non_public_addresses_or_schemes_are_refused_by_default() -> None:
    links = [*PRIVATE, "ftp://127.0.0.1/a", "file:///etc/passwd", "gopher://127.0.0.1:70/"]
    entries = [Entry(feed_url="https://feed.example/rss", key=u, link=u, title=f"t{i}", summary="s")
               for i, u in enumerate(links)]
    got = fetch_articles(entries, {}, HttpSettings(), now=NOW, workers=1)
    articles, errors = got.articles, got.errors
    errs = {url: err for _, url, err in errors}
    assert len(articles) == len(links)
    for u in PRIVATE:
        assert "refused before any request" in errs[u] and u in errs[u], (u, errs.get(u))
    for u in links[len(PRIVATE):]:
        assert "only http:// and https://" in errs[u], u


def test_a_redirect_to_another_scheme_is_refused_at_that_hop(routes: RouteServer) -> None:
    routes.add("/go", status=302, headers={"Location": "file:///etc/passwd"})

    async def go() -> None:
        async with Fetcher(HttpSettings(allow_private_networks=True, timeout_s=2)) as f:
            await f.get(routes.base_url + "/go", max_bytes=10_000)
    with pytest.raises(BlockedURLError, match="only http"):
        asyncio.run(go())


HOSTILE_TITLE = ("Azerbaijan and Russia sign energy cooperation deal <script>alert('x')</script> "
                 "**[click](javascript:alert(1))** \x1b[31mred\x1b[0m \u202egnp.exe\r\nX-Injected: yes ")
SQLI = "'); DROP TABLE articles; --"


def hostile_feed(base: str) -> bytes:
    when = format_datetime(NOW, usegmt=True)
    long_title = "Baku " * 40_000
    items = [(HOSTILE_TITLE.replace("<", "&lt;").replace(">", "&gt;"), "/hostile", SQLI),
             (long_title, "/long", "&lt;img src=x onerror=alert(1)&gt;")]
    body = "".join(f"<item><title>{t}</title><link>{base}{p}</link><pubDate>{when}</pubDate>"
                   f"<description>{d}</description></item>" for t, p, d in items)
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>f</title><link>{base}/"
            f"</link><description>d</description>{body}</channel></rss>").encode("utf-8", "surrogatepass")


@pytest.mark.usefixtures("prefect_harness")
def test_hostile_titles_and_text_are_stored_as_data_and_defused_in_alerts(routes: RouteServer,
                                                                          tmp_path: Path) -> None:
    from flows.poll import poll_feeds

    page = (f"<html><body><article><h1>t</h1><p>{MATCH_TEXT}</p><script>steal()</script>"
            f"<p>{MATCH_TEXT} {SQLI}</p></article></body></html>").encode()
    routes.add("/hostile", body=page, content_type="text/html")
    routes.add("/long", body=page, content_type="text/html")
    feed = routes.add("/feed.xml", body=hostile_feed(routes.base_url))
    with WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [("hostile", feed)], [rx.apprise_url()])
        summary = poll_feeds(config=str(cfg))
    reader = open_reader(load_settings(cfg).warehouse)
    try:
        rows = dict(reader.query("SELECT url, title FROM articles")[1])
        verbatim = reader.query("SELECT count(*) FROM articles WHERE summary = ?", [SQLI])[1]
    finally:
        reader.close()
    stored = rows[routes.base_url + "/hostile"]
    assert "<script>alert('x')</script>" not in stored and "alert('x')" in stored  # tags stripped, text kept
    assert "**[click](javascript:alert(1))**" in stored  # Markdown is just characters in the warehouse
    assert verbatim == [(1,)]  # stored verbatim
    assert len(rows[routes.base_url + "/long"]) > 100_000  # absurd, but data
    assert summary["alerts_sent"] == len(rx.received) >= 1
    for msg in rx.received:
        title, body = msg["title"], msg["message"]
        assert len(title) <= 160 and "\n" not in title
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", title + body)
        assert len(body.splitlines()) == 6 and "X-Injected" not in body.splitlines()[1]
        assert "<script>" not in title + body


def test_html_email_alerts_escape_markup(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    from newsmon.alerts.notify import AppriseNotifier
    from newsmon.alerts.policy import Channel

    got: list[email.message.Message] = []

    class Inbox:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            got.append(email.message_from_bytes(envelope.content))  # type: ignore[attr-defined]
            return "250 OK"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Inbox(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        url = f"mailto://127.0.0.1:{port}?from=n@example.com&to=a@example.com&mode=insecure&format=html"
        AppriseNotifier().send(Channel(url), "t", "Title <script>alert(1)</script> & <b>bold</b>")
    finally:
        ctl.stop()
    parts = [p for p in got[0].walk() if p.get_content_type() == "text/html"]
    html = parts[0].get_payload(decode=True).decode()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("statement", ["DROP TABLE articles", "DELETE FROM alerts",
                                       "UPDATE alerts SET status = 'pending'", "CREATE TABLE x (a INT)",
                                       "INSERT INTO meta VALUES ('k', 'v')"])
def test_newsmon_sql_is_read_only(tmp_path: Path, statement: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, [])
    open_warehouse(load_settings(cfg).warehouse).close()  # create it
    assert cli.main(["sql", "--config", str(cfg), statement]) == cli.EXIT_WAREHOUSE
    assert "read-only" in capsys.readouterr().err
    assert cli.main(["sql", "--config", str(cfg), "SELECT count(*) FROM articles"]) == cli.EXIT_OK


SECRET = "s3cr3t-T0ken-9f8e7d"


@pytest.mark.usefixtures("prefect_harness")
def test_alert_secrets_never_reach_the_warehouse_logs_summary_or_prefect(
        routes: RouteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    page = f"<html><body><article><p>{MATCH_TEXT}</p><p>{MATCH_TEXT}</p></article></body></html>".encode()
    routes.add("/story", body=page, content_type="text/html")
    when = format_datetime(NOW, usegmt=True)
    feed = routes.add("/feed.xml", body=(
        "<rss version='2.0'><channel><title>f</title><link>http://x/</link><description>d</description>"
        f"<item><title>Azerbaijan invites Russian companies to green energy projects</title>"
        f"<link>{routes.base_url}/story</link><pubDate>{when}</pubDate></item></channel></rss>").encode())
    monkeypatch.setenv("NEWSMON_TEST_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver(fail_first=1_000) as rx:  # every delivery fails
        urls = [f"json://newsmon:${{NEWSMON_TEST_SECRET}}@127.0.0.1:{rx.port}/hook?token=${{NEWSMON_TEST_SECRET}}",
                "mailto://analyst:${NEWSMON_TEST_SECRET}@127.0.0.1:1?from=a@example.com&to=b@example.com"]
        cfg = write_config(tmp_path, [("f", feed)], urls)
        code = cli.main(["run", "--config", str(cfg), "--json", "--verbose"])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_OK and rx.attempts >= 1
    assert '"alert_errors"' in out and "delivery failed" in out and "json://127.0.0.1" in out
    traces = {"stdout": out, "stderr": err, "logs": "\n".join(r.getMessage() for r in caplog.records)}
    settings = load_settings(cfg).warehouse
    after_run = warehouse_traces(settings)  # a run's few rows are inlined in the catalog...
    wh = open_warehouse(settings)
    try:
        wh.upkeep(now=datetime.now(UTC))  # ...until upkeep flushes them to Parquet
    finally:
        wh.close()
    after_upkeep = warehouse_traces(settings)
    assert after_upkeep["Parquet rows"], "upkeep wrote no Parquet data"
    traces.update({f"{k} after the run": v for k, v in after_run.items()})
    traces.update({f"{k} after upkeep": v for k, v in after_upkeep.items()})
    traces["prefect"] = asyncio.run(prefect_traces())
    assert "delivery failed" in after_run["state database rows"]  # the ledger keeps each attempt's error...
    assert "delivery failed" in after_run["catalog rows"] + after_run["Parquet rows"]  # ...the lake mirrors it
    assert "delivery failed" in after_upkeep["Parquet rows"]  # ...and so do its Parquet files
    for where, text in traces.items():
        assert SECRET not in text, f"the secret leaked into {where}"


def warehouse_traces(settings: WarehouseSettings) -> dict[str, str]:
    """Everything the warehouse wrote: every file's raw bytes (the state database, the DuckLake catalog, their
    WAL files and the Parquet data), the rows of both SQLite databases and of every Parquet file."""
    import duckdb

    state, catalog, data = settings.state_path, Path(settings.catalog_target), settings.data_folder
    parquet = sorted(data.rglob("*.parquet"))
    assert state.is_file() and catalog.is_file(), "the run wrote no warehouse files"
    files = {p for base in (state, catalog) for p in base.parent.glob(base.name + "*")} | set(data.rglob("*"))
    traces = {"warehouse files (raw bytes)":
              "\n".join(p.read_bytes().decode("latin-1") for p in sorted(files) if p.is_file())}
    for name, path in (("state database rows", state), ("catalog rows", catalog)):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            traces[name] = "\n".join(db.iterdump())
        finally:
            db.close()
    con = duckdb.connect()
    try:
        traces["Parquet rows"] = "\n".join(repr(row) for p in parquet
                                           for row in con.execute("SELECT * FROM read_parquet(?)", [str(p)]).fetchall())
    finally:
        con.close()
    return traces


async def prefect_traces() -> str:
    """Every log line, artifact and flow run state message the Prefect API holds."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        logs = await client.read_logs()
        artifacts = await client.read_artifacts()
        runs = await client.read_flow_runs()
    return "\n".join([*(log.message for log in logs), *(str(a.data) for a in artifacts),
                      *(f"{r.parameters} {r.state.message if r.state else ''}" for r in runs)])
