"""The report's queries: plain SQL through `Reader.query()` on a read-only snapshot of the lake.

Columns that other parts of newsmon add over time are looked up first and used when present:
`cluster_id` (story clusters; until then each article is its own story), `alerts.kind = 'spike'`
(volume-spike alerts; until then no spike markers) and `feed_health.silent`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from newsmon.report.model import (
    MATCH_RULE,
    Copy,
    Evidence,
    ReportData,
    RuleCount,
    build_stories,
    day_range,
    feed_row,
    series,
    sort_feeds,
)
from warehouse import Reader

MAX_STORIES = 2000
TOP_SOURCES = 8
SILENT_AFTER = timedelta(days=3)

# the moment a story counts from: its publication date, else when newsmon stored it
SEEN = "coalesce({t}.published_at, {t}.fetched_at)"


def load_report(wh: Reader, *, start: datetime, now: datetime, max_stories: int = MAX_STORIES) -> ReportData:
    """Everything the report shows for stories seen in [start, now]."""
    cols = columns(wh)
    window = (start, now)
    copies = matched_copies(wh, cols, window)
    stories, stories_total = build_stories(copies, evidence_by_article(wh, window), limit=max_stories)
    days = day_range(start, now)
    return ReportData(
        generated_at=now, start=start, articles_total=_scalar(wh, _ARTICLES_IN_WINDOW, window),
        matches_total=len({c.article_id for _, c in copies}), stories_total=stories_total, stories=stories,
        clustered=_has(cols, "matches", "cluster_id") or _has(cols, "articles", "cluster_id"), days=days,
        per_label=series(_rows(wh, _PER_DAY_LABEL, window), days),
        per_source=series(_rows(wh, _PER_DAY_SOURCE, window), days, top=TOP_SOURCES),
        spikes=spike_days(wh, cols, window), feeds=feed_health(wh, now), rules=rule_counts(wh, cols, window))


def columns(wh: Reader) -> dict[str, set[str]]:
    """table or view name -> its column names (for the columns that newer schemas add)."""
    _, rows = wh.query("SELECT table_name, column_name FROM information_schema.columns "
                       "WHERE table_name IN ('articles', 'matches', 'alerts', 'feed_health')")
    out: dict[str, set[str]] = {}
    for table, col in rows:
        out.setdefault(table, set()).add(col)
    return out


def _has(cols: dict[str, set[str]], table: str, col: str) -> bool:
    return col in cols.get(table, set())


def cluster_expr(cols: dict[str, set[str]], alias: str, table: str) -> str:
    """SQL for a row's story cluster: its cluster_id when the schema has one, else its article_id."""
    if _has(cols, table, "cluster_id"):
        return f"coalesce({alias}.cluster_id, {alias}.article_id)"
    return f"{alias}.article_id"


def matched_copies(wh: Reader, cols: dict[str, set[str]], window: tuple[datetime, datetime]
                   ) -> list[tuple[str, Copy]]:
    seen = SEEN.format(t="m")
    sql = f"""
        SELECT {cluster_expr(cols, "m", "matches")}, m.article_id, m.title, m.url, m.source, m.language,
               {seen}, m.score, m.tags
        FROM matches m WHERE {seen} BETWEEN ? AND ?
        ORDER BY {seen} DESC, m.article_id"""
    return [(str(r[0]), Copy(article_id=r[1], title=r[2] or "(no title)", url=r[3] or "", source=r[4] or "?",
                             language=r[5] or "?", seen_at=r[6], score=float(r[7]), labels=tuple(r[8] or ())))
            for r in wh.query(sql, window)[1]]


def evidence_by_article(wh: Reader, window: tuple[datetime, datetime]) -> dict[str, list[Evidence]]:
    """Evidence of every label that passed on a matching article, with the matched text cut out of the
    stored title or text by the evidence's own offsets."""
    sql = f"""
        SELECT t.article_id, t.label, e."where", e."start", e."end", e.snippet, e.weight,
               substr(CASE WHEN e."where" = 'title' THEN a.title ELSE a.text END,
                      e."start" + 1, e."end" - e."start")
        FROM tags t JOIN articles a USING (article_id), unnest(t.evidence) AS u(e)
        WHERE t.passed AND {SEEN.format(t="a")} BETWEEN ? AND ?
          AND t.article_id IN (SELECT article_id FROM verdicts WHERE match)"""
    out: dict[str, list[Evidence]] = {}
    for aid, label, where, start, end, snippet, weight, surface in wh.query(sql, window)[1]:
        out.setdefault(aid, []).append(Evidence(label, where or "", int(start or 0), int(end or 0),
                                                snippet or "", float(weight or 0), surface or ""))
    return out


_ARTICLES_IN_WINDOW = f"SELECT count(*) FROM articles a WHERE {SEEN.format(t='a')} BETWEEN ? AND ?"

_PER_DAY_LABEL = f"""
    SELECT CAST({SEEN.format(t="m")} AS DATE) AS day, u.label, count(DISTINCT m.article_id)
    FROM matches m, unnest(m.tags) AS u(label)
    WHERE {SEEN.format(t="m")} BETWEEN ? AND ? GROUP BY ALL"""

_PER_DAY_SOURCE = f"""
    SELECT CAST({SEEN.format(t="m")} AS DATE) AS day, m.source, count(DISTINCT m.article_id)
    FROM matches m WHERE {SEEN.format(t="m")} BETWEEN ? AND ? GROUP BY ALL"""


def spike_days(wh: Reader, cols: dict[str, set[str]], window: tuple[datetime, datetime]
               ) -> tuple[tuple[Any, str], ...]:
    """(UTC day, watchlist) of every spike alert in the window; nothing while the ledger has no kinds."""
    if not _has(cols, "alerts", "kind"):
        return ()
    rows = _rows(wh, "SELECT DISTINCT CAST(created_at AS DATE), watchlist FROM alerts "
                     "WHERE kind = 'spike' AND created_at BETWEEN ? AND ? ORDER BY 1, 2", window)
    return tuple((r[0], str(r[1])) for r in rows)


def feed_health(wh: Reader, now: datetime) -> tuple[Any, ...]:
    names, rows = wh.query("SELECT * FROM feed_health")
    return sort_feeds(feed_row(dict(zip(names, r, strict=True)), now=now, silent_after=SILENT_AFTER)
                      for r in rows)


def rule_counts(wh: Reader, cols: dict[str, set[str]], window: tuple[datetime, datetime]
                ) -> tuple[RuleCount, ...]:
    """Stories each label passed on, and stories each watchlist matched, per rules version."""
    cluster = cluster_expr(cols, "a", "articles")
    seen = SEEN.format(t="a")
    sql = f"""
        SELECT t.watchlist, t.rules_version, t.label, count(DISTINCT {cluster})
        FROM tags t JOIN articles a USING (article_id)
        WHERE t.passed AND {seen} BETWEEN ? AND ? GROUP BY ALL
        UNION ALL
        SELECT v.watchlist, v.rules_version, ?, count(DISTINCT {cluster})
        FROM verdicts v JOIN articles a USING (article_id)
        WHERE v.match AND {seen} BETWEEN ? AND ? GROUP BY ALL
        ORDER BY 1, 2 DESC, 4 DESC, 3"""
    rows = _rows(wh, sql, (*window, MATCH_RULE, *window))
    return tuple(RuleCount(str(w), str(v), str(label), int(n)) for w, v, label, n in rows)


def _rows(wh: Reader, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return wh.query(sql, params)[1]


def _scalar(wh: Reader, sql: str, params: Sequence[Any]) -> int:
    rows = _rows(wh, sql, params)
    return int(rows[0][0]) if rows else 0
