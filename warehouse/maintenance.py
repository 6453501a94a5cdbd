"""The warehouse's maintenance reads and writes: dedup by canonical URL, kept raw pages, re-tagging.

Mixed into DuckDBWarehouse, which provides `_connect` and `_transaction`; kept apart so the store stays
under 400 lines. The row helpers live in duckdb_store, which imports this module, so they are looked up
when first used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import ModuleType
from typing import Any

from newsmon.records import Article, RawPage, Verdict

# records.Article fields, in order, as a SELECT list (the table has run_id and url_key besides).
_ARTICLE_FIELDS = ("article_id, feed_url, feed_name, entry_key, url, title, summary, text, fetched_at, canonical_url, "
                   "author, site_name, language, published_at, word_count, extraction_status, extraction_note, "
                   "content_hash, cluster_id")


def _store() -> ModuleType:
    from warehouse import duckdb_store

    return duckdb_store


class MaintenanceMixin:
    _connect: Any
    _transaction: Any

    def article_ids_by_url_key(self, keys: Iterable[str]) -> dict[str, str]:
        """Stored article id for each of `keys` (see records.url_key) that a stored article has."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self._connect(read_only=True) as con:
            rows = con.execute("SELECT url_key, min(article_id) FROM articles WHERE url_key IN (SELECT unnest(?)) "
                               "GROUP BY url_key", [wanted]).fetchall()
        return dict(rows)

    def stored_articles(self, *, since: datetime | None, after: str = "", limit: int = 500) -> list[Article]:
        """Up to `limit` stored articles with id > `after` (id order), published (else fetched) since `since`."""
        sql = f"SELECT {_ARTICLE_FIELDS} FROM articles WHERE article_id > ? AND coalesce(published_at, fetched_at) " \
              ">= coalesce(?, '-infinity'::TIMESTAMPTZ) ORDER BY article_id LIMIT ?"
        with self._connect(read_only=True) as con:
            rows = con.execute(sql, [after, since, limit]).fetchall()
        return [Article(*r) for r in rows]

    def stored_raw_pages(self, *, since: datetime | None, after: str = "",
                         limit: int = 100) -> list[tuple[RawPage, Article]]:
        """Up to `limit` kept raw pages with their articles, id > `after`, published (else fetched) since."""
        cols = ", ".join(f"a.{c.strip()}" for c in _ARTICLE_FIELDS.split(","))
        sql = f"""SELECT r.article_id, r.url, r.content_type, r.charset, r.codec, r.body, r.raw_bytes, r.fetched_at,
                         {cols}
                  FROM raw_pages r JOIN articles a USING (article_id)
                  WHERE r.article_id > ? AND coalesce(a.published_at, a.fetched_at)
                        >= coalesce(?, '-infinity'::TIMESTAMPTZ)
                  ORDER BY r.article_id LIMIT ?"""
        with self._connect(read_only=True) as con:
            rows = con.execute(sql, [after, since, limit]).fetchall()
        return [(RawPage(*r[:5], bytes(r[5]), *r[6:8]), Article(*r[8:])) for r in rows]

    def stored_verdicts(self, article_ids: Iterable[str]) -> dict[tuple[str, str], tuple[bool, float, str]]:
        """(article_id, watchlist) -> (match, score, rules_version) as stored."""
        wanted = sorted(set(article_ids))
        if not wanted:
            return {}
        with self._connect(read_only=True) as con:
            rows = con.execute("SELECT article_id, watchlist, match, score, rules_version FROM verdicts "
                               "WHERE article_id IN (SELECT unnest(?))", [wanted]).fetchall()
        return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}

    def store_raw_pages(self, pages: Sequence[RawPage]) -> None:
        """Keep compressed pages for re-extraction (a page fetched again replaces the older copy)."""
        with self._transaction() as con:
            _store()._insert(con, "raw_pages", [(p.article_id, p.url, p.content_type, p.charset, p.codec, p.body,
                                        p.raw_bytes, p.fetched_at) for p in pages],
                    "ON CONFLICT (article_id) DO UPDATE SET url = excluded.url, content_type = excluded.content_type, "
                    "charset = excluded.charset, codec = excluded.codec, body = excluded.body, "
                    "raw_bytes = excluded.raw_bytes, fetched_at = excluded.fetched_at")

    def update_articles(self, articles: Sequence[Article]) -> None:
        """Replace the extracted text and metadata of stored articles (after re-extraction)."""
        if not articles:
            return
        with self._transaction() as con:
            con.execute("CREATE TEMP TABLE upd AS SELECT * FROM articles LIMIT 0")
            _store()._insert(con, "upd", [_store()._article_row(a, "") for a in articles], "", _store().ARTICLE_COLUMNS)
            con.execute("""
                UPDATE articles SET text = u.text, canonical_url = u.canonical_url, author = u.author,
                    site_name = u.site_name, language = u.language, word_count = u.word_count,
                    extraction_status = u.extraction_status, extraction_note = u.extraction_note,
                    content_hash = u.content_hash, url_key = u.url_key
                FROM upd u WHERE u.article_id = articles.article_id""")

    def replace_verdicts(self, verdicts: Sequence[Verdict], *, now: datetime) -> None:
        """Store fresh verdicts and tags (after re-tagging), replacing those of the same article and watchlist."""
        if not verdicts:
            return
        keys = [(v.article_id, v.watchlist) for v in verdicts]
        with self._transaction() as con:
            con.execute("CREATE TEMP TABLE redo (article_id VARCHAR, watchlist VARCHAR)")
            _store()._insert(con, "redo", keys, "")
            for table in ("tags", "verdicts"):
                con.execute(f"DELETE FROM {table} t USING redo r "
                            "WHERE t.article_id = r.article_id AND t.watchlist = r.watchlist")
            _store()._insert(con, "tags", [r for v in verdicts for r in _store()._tag_rows(v, now)], "")
            _store()._insert(con, "verdicts", [_store()._verdict_row(v, now) for v in verdicts], "")
