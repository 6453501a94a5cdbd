"""Reads and rewrites of the lake's records: digests, feed health, re-tagging and re-extraction, raw pages.

Every read here is a snapshot of the lake (it never waits for a writer); every write is one DuckLake commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb

from newsmon.records import Article, RawPage, StoryMatch, Verdict
from warehouse import lake_rows as lr
from warehouse.lake import Lake, insert
from warehouse.queries import STORY_MATCHES

# records.Article fields, in order, as a SELECT list (the table has run_id, url_key and more besides).
_ARTICLE_FIELDS = ("article_id, feed_url, feed_name, entry_key, url, title, summary, text, fetched_at, canonical_url, "
                   "author, site_name, language, published_at, word_count, extraction_status, extraction_note, "
                   "content_hash, cluster_id, updated_at, guid")
_SINCE = "coalesce(a.published_at, a.fetched_at) >= coalesce(?, '-infinity'::TIMESTAMPTZ)"


class Archive:
    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def story_matches(self, *, since: datetime, until: datetime) -> list[StoryMatch]:
        """Matching stories first published in [since, until], one per cluster x watchlist (its best-scored
        article), with every outlet and evidence snippets: what digests list."""
        return [StoryMatch(r[0], r[1], r[2] or "", r[3], r[4], r[5], r[6], tuple(r[7]), tuple(sorted(r[8] or ())),
                           cluster_id=r[9], outlets=tuple(r[10] or ()), snippets=tuple(r[11] or ()))
                for r in self.lake.read(STORY_MATCHES, [since, until])]

    def feed_silence(self) -> dict[str, tuple[bool, datetime | None, float | None]]:
        """Per feed URL, from `feed_health`: silent (polls succeed, no new story for far longer than usual), when
        its newest story was first seen, its usual gap between stories (hours)."""
        return {r[0]: (bool(r[1]), r[2], r[3])
                for r in self.lake.read("SELECT url, silent, last_new_at, usual_gap_hours FROM feed_health")}

    def stored_articles(self, *, since: datetime | None, after: str = "", limit: int = 500) -> list[Article]:
        """Up to `limit` stored articles with id > `after` (id order), published (else fetched) since `since`."""
        rows = self.lake.read(f"SELECT {_ARTICLE_FIELDS} FROM articles a WHERE article_id > ? AND {_SINCE} "
                              "ORDER BY article_id LIMIT ?", [after, since, limit])
        return [Article(*r) for r in rows]

    def stored_raw_pages(self, *, since: datetime | None, after: str = "",
                         limit: int = 100) -> list[tuple[RawPage, Article]]:
        """Up to `limit` kept raw pages with their articles, id > `after`, published (else fetched) since."""
        cols = ", ".join(f"a.{c.strip()}" for c in _ARTICLE_FIELDS.split(","))
        rows = self.lake.read(f"""
            SELECT r.article_id, r.url, r.content_type, r.charset, r.codec, r.body, r.raw_bytes, r.fetched_at, {cols}
            FROM raw_pages r JOIN articles a USING (article_id)
            WHERE r.article_id > ? AND {_SINCE} ORDER BY r.article_id LIMIT ?""", [after, since, limit])
        return [(RawPage(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6], r[7]), Article(*r[8:])) for r in rows]

    def stored_verdicts(self, article_ids: Iterable[str]) -> dict[tuple[str, str], tuple[bool, float, str]]:
        """(article_id, watchlist) -> (match, score, rules_version) as stored."""
        wanted = sorted(set(article_ids))
        if not wanted:
            return {}
        rows = self.lake.read("SELECT article_id, watchlist, match, score, rules_version FROM verdicts "
                              "WHERE article_id IN (SELECT unnest(?))", [wanted])
        return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}

    def store_raw_pages(self, pages: Sequence[RawPage]) -> None:
        """Keep compressed pages for re-extraction (a page fetched again replaces the older copy)."""
        rows = [(p.article_id, p.url, p.content_type, p.charset, p.codec, p.body, p.raw_bytes, p.fetched_at)
                for p in pages]
        if rows:
            self.lake.write(lambda con: _replace(con, "raw_pages", rows))

    def update_articles(self, articles: Sequence[Article]) -> None:
        """Replace the extracted text and metadata of stored articles (after re-extraction)."""
        if articles:
            self.lake.write(lambda con: _update_articles(con, articles))

    def replace_verdicts(self, verdicts: Sequence[Verdict], *, now: datetime) -> None:
        """Fresh verdicts and tags (after re-tagging), replacing those of the same article and watchlist."""
        if verdicts:
            self.lake.write(lambda con: _replace_verdicts(con, verdicts, now))


def _replace(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    con.execute(f"DELETE FROM {table} WHERE article_id IN (SELECT unnest(?))", [sorted({r[0] for r in rows})])
    insert(con, table, rows)


def _update_articles(con: duckdb.DuckDBPyConnection, articles: Sequence[Article]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE upd AS SELECT * FROM articles LIMIT 0")
    insert(con, "upd", [lr.article_row(a, "") for a in articles], lr.ARTICLE_COLUMNS)
    con.execute("""
        UPDATE articles SET text = u.text, canonical_url = u.canonical_url, author = u.author,
            site_name = u.site_name, language = u.language, word_count = u.word_count,
            extraction_status = u.extraction_status, extraction_note = u.extraction_note,
            content_hash = u.content_hash, url_key = u.url_key
        FROM upd u WHERE u.article_id = articles.article_id""")


def _replace_verdicts(con: duckdb.DuckDBPyConnection, verdicts: Sequence[Verdict], now: datetime) -> None:
    keys = sorted({f"{v.article_id}\x1f{v.watchlist}" for v in verdicts})
    for table in ("tags", "verdicts"):
        con.execute(f"DELETE FROM {table} WHERE article_id || chr(31) || watchlist IN (SELECT unnest(?))", [keys])
    insert(con, "tags", [r for v in verdicts for r in lr.tag_rows(v, now)])
    insert(con, "verdicts", [lr.verdict_row(v, now) for v in verdicts])
