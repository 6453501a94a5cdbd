"""The demo site and its server: feeds, pages, templating, conditional GET, errors and the command line."""

from __future__ import annotations

import calendar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import pytest

from newsmon.demo.server import DemoSiteError, SiteServer, demo_site_root, render_template

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
FEED_SIZES = {"en.xml": 8, "ru.xml": 5}
FEED_TYPES = {"en.xml": "application/rss+xml", "ru.xml": "application/atom+xml"}
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root(), now=NOW) as server:
        yield server


@pytest.fixture
def tiny_site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "static").mkdir(parents=True)
    (root / "index.html").write_text("<p>{{BASE_URL}} {{DATE:-1h:iso}}</p>", encoding="utf-8")
    (root / "static" / "raw.txt").write_text("{{BASE_URL}}", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside the site", encoding="utf-8")
    return root


def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def parse_feed(site: SiteServer, name: str) -> Any:
    status, _, body = fetch(site.url(f"feeds/{name}"))
    assert status == 200
    return feedparser.parse(body)


def entry_time(entry: Any) -> datetime:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def all_entries(site: SiteServer) -> list[Any]:
    return [entry for name in FEED_SIZES for entry in parse_feed(site, name).entries]


# --- feeds ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FEED_SIZES))
def test_feed_parses_with_expected_entries_and_type(site: SiteServer, name: str) -> None:
    status, headers, body = fetch(site.url(f"feeds/{name}"))
    parsed = feedparser.parse(body)

    assert status == 200
    assert headers["Content-Type"] == FEED_TYPES[name]
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert len(parsed.entries) == FEED_SIZES[name]
    for entry in parsed.entries:
        assert entry.title and entry.id and entry.summary
        assert entry.link.startswith(site.base_url + "/articles/")


def test_russian_feed_is_atom_in_russian(site: SiteServer) -> None:
    parsed = parse_feed(site, "ru.xml")

    assert parsed.version == "atom10"
    assert parsed.feed.language == "ru"
    assert all(re.search("[а-яё]", entry.title, re.IGNORECASE) for entry in parsed.entries)


def test_feed_dates_are_relative_to_the_server_clock(site: SiteServer) -> None:
    published = sorted(entry_time(entry) for entry in all_entries(site))

    assert published[-1] <= NOW
    assert NOW - published[-1] <= timedelta(hours=6)
    assert sum(NOW - moment <= timedelta(hours=48) for moment in published) >= 10
    assert any(NOW - moment > timedelta(days=7) for moment in published), "no old backlog story"


def test_default_clock_makes_stories_look_recent() -> None:
    with SiteServer(demo_site_root()) as server:
        newest = max(entry_time(entry) for entry in parse_feed(server, "en.xml").entries)

    assert timedelta(0) <= datetime.now(UTC) - newest <= timedelta(hours=48)


def test_broken_feed_is_bozo_without_entries(site: SiteServer) -> None:
    parsed = parse_feed(site, "broken.xml")

    assert parsed.bozo
    assert parsed.entries == []


# --- pages ------------------------------------------------------------------------------------------------


def test_every_feed_link_is_a_full_article_page(site: SiteServer) -> None:
    for entry in all_entries(site):
        status, headers, body = fetch(entry.link)
        page = body.decode("utf-8")

        assert status == 200, entry.link
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert 8_000 <= len(body) <= 40_000, (entry.link, len(body))
        assert f'<link rel="canonical" href="{entry.link}">' in page
        assert "<article" in page and "<aside" in page and "{{" not in page


def test_page_publication_time_matches_its_feed_entry(site: SiteServer) -> None:
    for entry in all_entries(site):
        page = fetch(entry.link)[2].decode("utf-8")
        found = re.search(r'<meta property="article:published_time" content="([^"]+)">', page)

        assert found, entry.link
        assert datetime.fromisoformat(found.group(1)) == entry_time(entry)


def test_home_page_announces_the_feeds(site: SiteServer) -> None:
    status, _, body = fetch(site.url("/"))
    page = body.decode("utf-8")

    assert status == 200
    assert '<link rel="alternate" type="application/rss+xml"' in page
    assert 'href="/feeds/en.xml"' in page and 'href="/feeds/ru.xml"' in page


def test_internal_links_all_resolve(site: SiteServer) -> None:
    pages = [site.url("/")] + [entry.link for entry in all_entries(site)]
    links: set[str] = set()
    for page in pages:
        for href in re.findall(r'(?:href|src)="([^"#?]*)', fetch(page)[2].decode("utf-8")):
            if href.startswith(site.base_url) or (href.startswith("/") and not href.startswith("//")):
                links.add(href.removeprefix(site.base_url) or "/")

    assert len(links) > 15
    broken = [link for link in sorted(links) if fetch(site.url(link))[0] != 200]
    assert broken == []


def test_every_site_template_renders_completely() -> None:
    templates = [path for path in demo_site_root().rglob("*") if path.suffix in {".html", ".xml"}]

    assert len(templates) >= 17
    for path in templates:
        rendered = render_template(path.read_text("utf-8"), base_url="http://127.0.0.1:1", now=NOW)
        assert "{{" not in rendered, path


# --- HTTP behaviour ---------------------------------------------------------------------------------------


def test_etag_is_stable_and_answers_304(site: SiteServer) -> None:
    _, first, body = fetch(site.url("feeds/en.xml"))
    _, second, _ = fetch(site.url("feeds/en.xml"))
    status, headers, again = fetch(site.url("feeds/en.xml"), headers={"If-None-Match": first["ETag"]})

    assert first["ETag"] == second["ETag"]
    assert (status, again) == (304, b"")
    assert headers["ETag"] == first["ETag"]
    assert body


def test_weak_or_listed_etag_matches(site: SiteServer) -> None:
    etag = fetch(site.url("/"))[1]["ETag"]

    assert fetch(site.url("/"), headers={"If-None-Match": f'"other", W/{etag}'})[0] == 304
    assert fetch(site.url("/"), headers={"If-None-Match": '"other"'})[0] == 200


def test_if_modified_since_answers_304(site: SiteServer) -> None:
    last_modified = fetch(site.url("feeds/ru.xml"))[1]["Last-Modified"]
    earlier = "Mon, 02 Jun 2025 11:00:00 GMT"

    assert last_modified == "Mon, 02 Jun 2025 12:00:00 GMT"
    assert fetch(site.url("feeds/ru.xml"), headers={"If-Modified-Since": last_modified})[0] == 304
    assert fetch(site.url("feeds/ru.xml"), headers={"If-Modified-Since": earlier})[0] == 200


def test_head_sends_headers_without_body(site: SiteServer) -> None:
    status, headers, body = fetch(site.url("feeds/en.xml"), method="HEAD")

    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) > 1000 and headers["ETag"]


def test_unknown_path_is_404(site: SiteServer) -> None:
    assert fetch(site.url("articles/no-such-story.html"))[0] == 404


def test_requests_are_logged(site: SiteServer) -> None:
    fetch(site.url("feeds/en.xml"))
    fetch(site.url("logged-missing-page.html"))

    assert ("GET", "/feeds/en.xml", 200) in site.requests
    assert ("GET", "/logged-missing-page.html", 404) in site.requests


def test_static_files_are_served_verbatim_with_their_type(tiny_site: Path) -> None:
    with SiteServer(tiny_site, now=NOW) as server:
        status, headers, body = fetch(server.url("static/raw.txt"))
        page = fetch(server.url("/"))[2].decode("utf-8")

    assert (status, body) == (200, b"{{BASE_URL}}")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert page == f"<p>{server.base_url} 2025-06-02T11:00:00+00:00</p>"


@pytest.mark.parametrize(
    "path", ["/../secret.txt", "/%2e%2e/secret.txt", "/static/..%2f..%2fsecret.txt", "/index.html%00"]
)
def test_paths_outside_the_root_are_404(tiny_site: Path, path: str) -> None:
    with SiteServer(tiny_site) as server:
        assert fetch(server.base_url + path)[0] == 404


def test_latency_is_added_per_request_and_requests_run_in_parallel(tiny_site: Path) -> None:
    with SiteServer(tiny_site, latency_s=0.3) as server, ThreadPoolExecutor(max_workers=4) as pool:
        started = time.monotonic()
        statuses = list(pool.map(lambda _: fetch(server.url("/"))[0], range(4)))
        elapsed = time.monotonic() - started

    assert statuses == [200] * 4
    assert 0.3 <= elapsed < 1.0


def test_server_prints_nothing(tiny_site: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with SiteServer(tiny_site) as server:
        fetch(server.url("/"))
        fetch(server.url("missing"))

    assert capfd.readouterr() == ("", "")


def test_base_url_is_known_before_start_and_stop_is_idempotent(tiny_site: Path) -> None:
    server = SiteServer(tiny_site)

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
    assert server.url("/feeds/en.xml") == server.url("feeds/en.xml") == server.base_url + "/feeds/en.xml"
    server.start()
    server.stop()
    server.stop()


def test_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DemoSiteError, match="not a folder"):
        SiteServer(tmp_path / "nowhere")


# --- templating -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{BASE_URL}}/feeds/en.xml", "http://127.0.0.1:8000/feeds/en.xml"),
        ("{{DATE:-3h:rfc822}}", "Mon, 02 Jun 2025 09:00:00 GMT"),
        ("{{DATE:-3h:iso}}", "2025-06-02T09:00:00+00:00"),
        ("{{DATE:-1d-2h+30m:iso}}", "2025-06-01T10:30:00+00:00"),
        ("{{DATE:-10d:date}} {{DATE:now:time}} {{DATE:now:year}}", "2025-05-23 12:00 2025"),
        ("{{DATE:-13h:human}}", "1 June 2025, 23:00"),
        ("{{DATE:-13h:ru}}", "1 июня 2025, 23:00"),
    ],
)
def test_render_template(template: str, expected: str) -> None:
    assert render_template(template, base_url="http://127.0.0.1:8000", now=NOW) == expected


def test_render_template_converts_the_clock_to_utc() -> None:
    baku = datetime(2025, 6, 2, 16, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Baku"))

    assert render_template("{{DATE:now:iso}}", base_url="", now=baku) == "2025-06-02T16:00:00+00:00"


@pytest.mark.parametrize("template", ["{{TODAY}}", "{{DATE:-3x:iso}}", "{{DATE:-3h:unix}}", "{{DATE:3h:iso}}"])
def test_render_template_rejects_unknown_placeholders(template: str) -> None:
    with pytest.raises(DemoSiteError):
        render_template(template, base_url="", now=NOW)


def test_render_template_refuses_a_naive_clock() -> None:
    with pytest.raises(DemoSiteError, match="timezone-aware"):
        render_template("{{DATE:now:iso}}", base_url="", now=datetime(2025, 6, 2, 12, 0))


# --- command line -----------------------------------------------------------------------------------------


def _default_sigint() -> None:
    """Ctrl-C as a terminal delivers it, whatever state earlier tests left this pytest process in (a signal's
    disposition SIG_IGN and the blocked mask are inherited across exec): in a long session the server ignored
    SIGINT here while it stops on it run alone."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_command_line_serves_a_folder_until_interrupted(tiny_site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsmon.demo.server", "--port", "0", str(tiny_site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_sigint,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert base_url, banner
        assert fetch(base_url.group(0) + "/")[0] == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)  # a loaded machine can take seconds to stop it

    assert process.returncode == 0
    assert stderr == ""
