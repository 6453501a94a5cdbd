"""ReportData -> one self-contained HTML page (pure: values in, a string out).

Every string that came from a feed (titles, outlet names, URLs, snippets, errors) goes through `esc` or
`href`; the embedded filter data is JSON with `<`, `>` and `&` written as \\u escapes, so no feed text
can close the script element. The page loads nothing: CSS and JS are inlined, the chart is inline SVG.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import resources
from urllib.parse import urlsplit

from newsmon import __version__
from newsmon.report.model import MATCH_RULE, Copy, FeedRow, Marked, ReportData, RuleCount, Story

SAFE_SCHEMES = ("http", "https")


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def href(url: str) -> str | None:
    """An escaped link target, or None for anything but http(s) (javascript:, data:, ...)."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return esc(url.strip()) if scheme in SAFE_SCHEMES else None


def link(url: str, text_html: str) -> str:
    target = href(url)
    return f'<a href="{target}">{text_html}</a>' if target else text_html


def marked(m: Marked) -> str:
    """Text with <mark> around its spans, everything escaped."""
    out, pos = [], 0
    for lo, hi in m.marks:
        lo, hi = max(lo, pos), min(hi, len(m.text))
        if lo >= hi:
            continue
        out += [esc(m.text[pos:lo]), "<mark>", esc(m.text[lo:hi]), "</mark>"]
        pos = hi
    out.append(esc(m.text[pos:]))
    return "".join(out)


def when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "—"


def script_json(data: object) -> str:
    """JSON safe inside <script type="application/json">: no `</script>`, `<!--` or entities possible."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- stories ---------------------------------------------------------------------------------------


def story_html(s: Story) -> str:
    """One story, compact (a week can hold thousands): the title links to the first copy; the outlets
    link to theirs when the cluster has more than one."""
    if len(s.copies) > 1:
        outlets = ", ".join(link(c.url, esc(c.source)) for c in _one_per_source(s.copies))
        outlets += f" · {len(s.copies)} articles"
    else:
        outlets = esc(s.copies[0].source)
    dates = when(s.first_seen) + ("" if s.last_seen == s.first_seen else f" – {when(s.last_seen)}")
    labels = "".join(f"<i>{esc(x)}</i>" for x in s.labels)
    snippets = "".join(f"<q>{marked(m)}</q>" for m in s.snippets)
    return (f"<article><h3>{link(s.url, marked(s.headline))}</h3><p><time>{dates}</time> · {outlets} · "
            f"score <b>{s.score:.2f}</b> {labels}</p>{snippets}</article>")


def _one_per_source(copies: Iterable[Copy]) -> list[Copy]:
    seen: dict[str, Copy] = {}
    for c in copies:
        seen.setdefault(c.source, c)
    return list(seen.values())


def filter_data(stories: Sequence[Story]) -> dict[str, object]:
    """Facet names once, then per story (in page order) [label ids, source ids, language ids, score]."""
    facets: dict[str, dict[str, int]] = {"labels": {}, "sources": {}, "languages": {}}

    def ids(kind: str, names: Iterable[str]) -> list[int]:
        table = facets[kind]
        return [table.setdefault(n, len(table)) for n in names]

    rows = [[ids("labels", s.labels), ids("sources", s.sources), ids("languages", s.languages), s.score]
            for s in stories]
    return {**{k: list(v) for k, v in facets.items()}, "stories": rows}


# -- tables ----------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def feeds_html(feeds: Sequence[FeedRow]) -> str:
    if not feeds:
        return "<p>No feed has been polled yet.</p>"
    rows = [(f'<span class="st {esc(f.state.replace(" ", "-"))}">{esc(f.state)}</span>', link(f.url, esc(f.name)),
             esc(f.last_result or (f.last_status if f.last_status is not None else "—")), esc(f.failures),
             when(f.last_success_at), when(f.newest_article_at), esc(f.articles_stored),
             f'<span class=err>{esc(f.last_error)}</span>')
            for f in feeds]
    counts = {s: sum(1 for f in feeds if f.state == s) for s in ("failing", "silent")}
    summary = (f"<p>{len(feeds)} feeds: <b>{counts['failing']}</b> failing, <b>{counts['silent']}</b> silent "
               "(no new story for 3 days).</p>")
    return summary + table(["state", "feed", "last poll", "failures in a row", "last success (UTC)",
                            "newest story (UTC)", "stories stored", "last error"], rows, "feeds")


def rules_html(rules: Sequence[RuleCount]) -> str:
    if not rules:
        return "<p>No story was tagged in this period.</p>"
    rows = [(esc(r.watchlist), esc(r.rules_version), esc(r.rule),
             "matching stories" if r.rule == MATCH_RULE else "stories passing this label", esc(r.stories))
            for r in rules]
    note = ("<p>A label row counts every story that passed the label, matching or not (a football story can pass "
            f"<i>energy</i>); only the {esc(MATCH_RULE)} row counts matches.</p>")
    return note + table(["watchlist", "rules version", "rule", "counted", "stories"], rows, "rules")


# -- the page --------------------------------------------------------------------------------------


def render_report(data: ReportData, chart_svg: str, *, title: str = "newsmon report") -> str:
    stories = "".join(story_html(s) for s in data.stories)
    shown = len(data.stories)
    capped = (f"<p class=note>Showing the newest {shown} of {data.stories_total} stories; "
              "a shorter --since shows the rest.</p>") if data.stories_total > shown else ""
    script = _asset("report.js")
    versions = sorted({r.rules_version for r in data.rules})
    head = (f"<header><h1>{esc(title)}</h1><p>{when(data.start)} – {when(data.generated_at)} UTC · "
            f"{data.articles_total} articles stored, {data.matches_total} matching, "
            f"{data.stories_total} {'story clusters' if data.clustered else 'stories'}"
            f" · rules {esc(', '.join(versions) or '—')}</p></header>")
    return "".join([
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<meta http-equiv=Content-Security-Policy content=\"{csp(script)}\">",
        f"<title>{esc(title)} {when(data.generated_at)}</title><style>{_asset('report.css')}</style></head><body>",
        head, '<section id=trends><h2>Trends</h2>', chart_svg, _spikes(data), "</section>",
        "<section id=stories><h2>Matching stories</h2>", _filters(), capped,
        f"<p id=count>{shown} stories</p><div id=list>{stories}</div></section>",
        f"<section id=health><h2>Feed health</h2>{feeds_html(data.feeds)}</section>",
        f"<section id=rules><h2>Rules</h2>{rules_html(data.rules)}</section>",
        f"<footer>newsmon {esc(__version__)} · generated {when(data.generated_at)} UTC</footer>",
        f'<script type="application/json" id=data>{script_json(filter_data(data.stories))}</script>',
        f"<script>{script}</script></body></html>",
    ])


def csp(script: str) -> str:
    """Load nothing from anywhere; run only our own script (by hash), never one a feed slipped in."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"


def _spikes(data: ReportData) -> str:
    if not data.spikes:
        return ""
    items = ", ".join(f"{d.isoformat()} ({esc(w)})" for d, w in data.spikes)
    return f'<p class=spikes><span class=spike>▼</span> spike alert: {items}</p>'


def _filters() -> str:
    return ("<form id=filters onsubmit='return false'>"
            "<label>label <select id=f-label><option value=''>any</option></select></label>"
            "<label>source <select id=f-source><option value=''>any</option></select></label>"
            "<label>language <select id=f-lang><option value=''>any</option></select></label>"
            "<label>min score <input id=f-score type=number step=0.1 min=0 value=0></label>"
            "<label>title <input id=f-text type=search placeholder='words in the title'></label>"
            "</form>")


def _asset(name: str) -> str:
    return resources.files("newsmon.report").joinpath(name).read_text(encoding="utf-8")
