"""The report without a browser: highlighting, escaping, grouping, series, feed states, and the queries
against real warehouses (including the columns other parts of newsmon add later)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from newsmon.config import Settings, WarehouseSettings
from newsmon.records import AlertRecord
from newsmon.report import build_report
from newsmon.report.chart import matches_chart
from newsmon.report.data import load_report
from newsmon.report.model import (
    MATCH_RULE,
    Copy,
    Evidence,
    Marked,
    ReportData,
    build_stories,
    feed_row,
    mark_snippet,
    mark_title,
    merge_spans,
    series,
    story_snippets,
)
from newsmon.report.render import filter_data, href, marked, render_report, script_json
from tests.conftest import make_warehouse
from tests.report_week import fill_week
from warehouse import DeliveryOutcome, open_reader

NOW = datetime(2025, 6, 8, 12, 0, tzinfo=UTC)
HOSTILE = 'Baku <script>window.__pwned=1</script> & <img src=x onerror="alert(1)">'


def copy(aid: str, hours_ago: float, source: str = "A", score: float = 1.0, title: str = "t",
         labels: tuple[str, ...] = ("energy",)) -> Copy:
    return Copy(aid, title, f"https://x.org/{aid}", source, "en", NOW - timedelta(hours=hours_ago), score, labels)


# -- highlighting ---------------------------------------------------------------------------------


def test_the_snippet_marks_the_occurrence_the_offsets_point_at() -> None:
    text = "gas " * 30 + "Azerbaijan sells gas to Russia"  # the first 'gas' far outside the window
    start = text.index("Azerbaijan sells gas") + len("Azerbaijan sells ")
    lo = start - 60
    snippet = "…" + " ".join(text[lo:start + 63].split())
    ev = Evidence("energy", "body", start, start + 3, snippet, 1.0, "gas")
    m = mark_snippet(ev, {"gas", "Russia"})
    hit = snippet.index("sells gas") + len("sells ")
    assert (hit, hit + 3) in m.marks
    assert any(snippet[lo:hi] == "Russia" for lo, hi in m.marks)
    assert all(snippet[lo:hi].lower() in {"gas", "russia"} or "gas" in snippet[lo:hi] for lo, hi in m.marks)


def test_marks_are_whole_words_and_case_insensitive() -> None:
    ev = Evidence("az_ru", "body", 10, 16, "Gasprom is not Gas; RUSSIA is", 1.0, "Russia")
    m = mark_snippet(ev, {"gas"})
    assert [ev.snippet[lo:hi] for lo, hi in m.marks] == ["Gas", "RUSSIA"]


def test_title_marks_use_the_exact_offsets_and_ignore_stale_ones() -> None:
    title = "SOCAR and Gazprom sign gas deal"
    good = Evidence("energy", "title", 23, 26, title, 2.0, "gas")
    stale = Evidence("energy", "title", 0, 5, title, 2.0, "Other")  # text changed since: offsets do not fit
    negative = Evidence("energy", "title", 10, 17, title, -1.0, "Gazprom")
    assert mark_title(title, [good, stale, negative]).marks == ((23, 26),)


def test_snippets_are_the_strongest_that_do_not_overlap() -> None:
    evs = [Evidence("a", "title", 0, 1, "T", 9.0, "T"), Evidence("a", "body", 0, 1, "one", 1.0, "o"),
           Evidence("a", "body", 200, 201, "two", 3.0, "t"), Evidence("b", "lead", 200, 201, "two", 3.0, "t"),
           Evidence("a", "body", 230, 231, "two, a little later", 2.5, "t"),
           Evidence("a", "body", 400, 401, "three", 2.0, "t"), Evidence("a", "body", 600, 601, "neg", -5.0, "n")]
    assert [m.text for m in story_snippets(evs)] == ["two", "three"]


def test_merge_spans_joins_overlaps() -> None:
    assert merge_spans([(5, 8), (0, 2), (1, 3), (8, 9)]) == ((0, 3), (5, 9))


def test_marked_text_is_escaped_inside_and_outside_marks() -> None:
    out = marked(Marked("<b>gas</b> & <i>", ((3, 6),)))
    assert out == "&lt;b&gt;<mark>gas</mark>&lt;/b&gt; &amp; &lt;i&gt;"


# -- escaping -------------------------------------------------------------------------------------


def test_only_http_links_become_links() -> None:
    assert href("https://x.org/a?b=1&c=2") == "https://x.org/a?b=1&amp;c=2"
    assert href("javascript:alert(1)") is None and href(" JavaScript:alert(1)") is None
    assert href("data:text/html,<script>") is None


def test_embedded_json_cannot_close_its_script_element() -> None:
    text = script_json({"t": "</script><script>alert(1)</script><!--"})
    assert "<" not in text and ">" not in text
    assert json.loads(text) == {"t": "</script><script>alert(1)</script><!--"}


def week_report(path: Path) -> ReportData:
    """The report data of the week before NOW, read as the report reads it (a read-only lake snapshot)."""
    reader = open_reader(WarehouseSettings(path=path))
    try:
        return load_report(reader, start=NOW - timedelta(days=7), now=NOW)
    finally:
        reader.close()


def hostile_data(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    fill_week(path, n=3, now=NOW, title=HOSTILE)
    wh = make_warehouse(path)
    wh.lake.write(lambda con: (
        con.execute("UPDATE articles SET feed_name = '<b onmouseover=alert(1)>Evil</b>', url = 'javascript:alert(1)'"),
        con.execute("UPDATE feeds SET name = '<svg onload=alert(1)>', last_error = '</td><script>x()</script>'")))
    wh.close()
    return week_report(path)


def test_every_feed_string_is_escaped_in_the_page(tmp_path: Path) -> None:
    data = hostile_data(tmp_path)
    page = render_report(data, matches_chart(data.days, data.per_label, data.per_source))
    assert "window.__pwned" in page  # the title is there...
    assert len(re.findall(r"<script", page)) == 2  # ...but the only script elements are our own two
    for raw in ("<img src=x", "<b onmouseover", "<svg onload", "</td><script>", "javascript:"):
        assert raw not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page and "script-src 'sha256-" in page


# -- grouping, series, feeds ------------------------------------------------------------------------


def test_stories_group_by_cluster_newest_first_and_cap() -> None:
    rows = [("c1", copy("a1", 30, "A", 1.0, "first")), ("c1", copy("a2", 2, "B", 3.0, "later copy")),
            ("a3", copy("a3", 10, "C")), ("a4", copy("a4", 50, "D")),
            ("c1", copy("a2", 2, "B", 2.0, "later copy", ("cooperation",)))]  # a second watchlist's row
    stories, total = build_stories(rows, {}, limit=2)
    assert total == 3 and [s.key for s in stories] == ["c1", "a3"]
    c1 = stories[0]
    assert c1.headline.text == "first" and c1.sources == ("A", "B") and c1.score == 3.0
    assert len(c1.copies) == 2 and set(c1.labels) == {"energy", "cooperation"}
    assert c1.first_seen == NOW - timedelta(hours=30) and c1.last_seen == NOW - timedelta(hours=2)


def test_filter_data_lists_facets_once() -> None:
    stories, _ = build_stories([("a", copy("a", 1, "A")), ("b", copy("b", 2, "B")), ("c", copy("c", 3, "A"))],
                               {}, limit=10)
    data = filter_data(stories)
    assert data["sources"] == ["A", "B"] and data["labels"] == ["energy"]
    assert data["stories"] == [[[0], [0], [0], 1.0], [[0], [1], [0], 1.0], [[0], [0], [0], 1.0]]


def test_series_align_with_days_and_fold_small_sources() -> None:
    days = [date(2025, 6, d) for d in (1, 2, 3)]
    rows = [(days[0], "A", 5), (days[2], "A", 1), (days[1], "B", 2), (days[1], "C", 1), (date(2025, 5, 1), "A", 9)]
    assert series(rows, days) == {"A": (5, 0, 1), "B": (0, 2, 0), "C": (0, 1, 0)}
    assert series(rows, days, top=2) == {"A": (5, 0, 1), "other": (0, 3, 0)}


def test_feed_states() -> None:
    base = {"url": "u", "name": "n", "last_polled_at": NOW, "consecutive_failures": 0, "last_error": None}
    state = lambda **kw: feed_row({**base, **kw}, now=NOW, silent_after=timedelta(days=3)).state  # noqa: E731
    assert state(consecutive_failures=2, last_error="HTTP 500", last_success_at=NOW) == "failing"
    assert state(last_success_at=NOW, newest_article_at=NOW - timedelta(days=1)) == "ok"
    assert state(last_success_at=NOW, newest_article_at=NOW - timedelta(days=5)) == "silent"
    assert state(last_success_at=NOW, newest_article_at=NOW - timedelta(days=5), silent=False) == "ok"
    assert state(last_polled_at=None) == "never polled"


# -- against real warehouses ------------------------------------------------------------------------------


def test_report_data_from_a_generated_week(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    fill_week(path, n=100, now=NOW, match_every=5)
    data = week_report(path)
    assert data.articles_total == 100 and data.matches_total == 20 == data.stories_total == len(data.stories)
    assert data.clustered and data.spikes == ()  # every article stored without a cluster is its own
    assert [s.last_seen for s in data.stories] == sorted((s.last_seen for s in data.stories), reverse=True)
    story = data.stories[0]
    assert [story.headline.text[lo:hi] for lo, hi in story.headline.marks] == \
        ["Azerbaijan", "Russia", "gas", "agreement"]
    assert story.snippets and all(m.marks for m in story.snippets)
    assert len(data.days) == 8 and sum(data.per_source[s][-1] for s in data.per_source) >= 1
    assert sum(sum(v) for v in data.per_label.values()) == 60  # 20 stories x 3 labels
    assert len(data.per_source) == 8 and "other" in data.per_source  # 12 outlets: top 7 + other
    rules = {(r.rule, r.stories) for r in data.rules}
    assert (MATCH_RULE, 20) in rules and ("energy", 20) in rules
    assert {r.rules_version for r in data.rules} == {"2025.06.1"}
    assert [f.state for f in data.feeds] == ["ok"] * 12 and data.feeds[0].articles_stored > 0


def test_cluster_ids_and_spike_alerts_are_used_once_the_schema_has_them(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    fill_week(path, n=12, now=NOW)
    wh = make_warehouse(path)  # three copies of one wire story (as clustering stores them) and a spike
    wh.lake.write(lambda con: con.execute(
        "UPDATE articles SET cluster_id = 'wire-1' WHERE entry_key IN ('gen:0', 'gen:1', 'gen:2')"))
    spike = AlertRecord("sp1", "", "az_ru", "c", "pending", 0, "", "", "", None, 0.0, (), (),
                        channel_name="json://h", kind="spike", subject="az_ru")
    sent = NOW - timedelta(days=2)
    assert wh.runs.queue_alerts([spike], now=sent) == 1
    wh.runs.mark_alerts([DeliveryOutcome("sp1", None)], now=sent, max_attempts=3)
    assert wh.runs.sync_alerts() == 1
    wh.close()
    data = week_report(path)
    assert data.clustered and data.stories_total == 10 and data.matches_total == 12
    wire = next(s for s in data.stories if s.key == "wire-1")
    assert len(wire.copies) == 3 and len(wire.sources) == 3
    assert data.spikes == ((date(2025, 6, 6), "az_ru"),)
    assert {(r.rule, r.stories) for r in data.rules} >= {(MATCH_RULE, 10)}
    svg = matches_chart(data.days, data.per_label, data.per_source, [d for d, _ in data.spikes])
    assert svg.count('id="spike-2025-06-06"') == 2  # one marker per panel
    page = render_report(data, svg)
    assert "12 matching, 10 story clusters" in page and "3 articles" in page and "spike alert: 2025-06-06" in page


def test_build_report_writes_a_page_for_an_empty_warehouse(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    make_warehouse(path).close()
    settings = Settings(source=tmp_path / "desk.toml", warehouse=WarehouseSettings(path))
    out = build_report(settings, timedelta(days=7), tmp_path / "out" / "report.html", now=NOW)
    page = out.read_text(encoding="utf-8")
    assert "newsmon report: desk" in page and "no matches in this period" in page
    assert "No feed has been polled yet." in page and list((tmp_path / "out").iterdir()) == [out]


def test_the_chart_escapes_names_and_treats_dollars_as_text() -> None:
    days = [date(2025, 6, 1), date(2025, 6, 2)]
    svg = matches_chart(days, {"energy": (1, 2)}, {"<script>alert(1)</script>": (1, 2), "$x$ news": (2, 0)})
    assert svg.startswith("<svg") and "<script" not in svg and "&lt;script&gt;" in svg and "$x$" in svg


def test_the_report_command_writes_the_file(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import write_config

    cfg = write_config(tmp_path, [("x", "http://127.0.0.1:9/x.xml")])
    fill_week(tmp_path / "wh" / "newsmon.duckdb", n=30, now=datetime.now(UTC))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "newsmon.cli", "report", "--config", str(cfg), "--since", "36h",
                           "--out", str(tmp_path / "r.html")], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'r.html'}")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 0 < page.count("<article>") < 30  # 36 hours of a week
    bad = subprocess.run([sys.executable, "-m", "newsmon.cli", "report", "--config", str(cfg), "--since", "soon"],
                         cwd=root, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--since: 'soon': expected a duration" in bad.stderr
