"""The warehouse's maintenance reads and writes: dedup by canonical URL, kept raw pages, re-tagging.

Mixed into DuckDBWarehouse, which provides `_connect`, `_read`, `_submit` and `_spooled_runs`; kept apart
so the store stays under 400 lines. Writes go through the spool like every other write (warehouse/rows.py
holds their statements).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from newsmon.records import Article, RawPage, Verdict, url_key
from warehouse import StoreReport, spool

# records.Article fields, in order, as a SELECT list (the table has run_id, url_key and more besides).
_ARTICLE_FIELDS = ("article_id, feed_url, feed_name, entry_key, url, title, summary, text, fetched_at, canonical_url, "
                   "author, site_name, language, published_at, word_count, extraction_status, extraction_note, "
                   "content_hash, cluster_id, updated_at, guid")


class MaintenanceMixin:
    _connect: Any
    _read: Any
    _submit: Any
    _spooled_runs: Any

    def article_ids_by_url_key(self, keys: Iterable[str]) -> dict[str, str]:
        """Article id for each of `keys` (see records.url_key) that a stored or spooled article has."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        found = dict(self._read("SELECT url_key, min(article_id) FROM articles "
                                "WHERE url_key IN (SELECT unnest(?)) GROUP BY url_key", [wanted]))
        for key, article_id in _spooled_url_keys(self._spooled_runs()):
            if key in wanted and key not in found:
                found[key] = article_id
        return found

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

    def store_raw_pages(self, pages: Sequence[RawPage]) -> StoreReport:
        """Keep compressed pages for re-extraction (a page fetched again replaces the older copy)."""
        return self._write("raw_pages", "pages", pages, None)

    def update_articles(self, articles: Sequence[Article]) -> StoreReport:
        """Replace the extracted text and metadata of stored articles (after re-extraction)."""
        return self._write("article_updates", "articles", articles, None)

    def replace_verdicts(self, verdicts: Sequence[Verdict], *, now: datetime) -> StoreReport:
        """Store fresh verdicts and tags (after re-tagging), replacing those of the same article and watchlist."""
        return self._write("verdicts", "verdicts", verdicts, now)

    def _write(self, kind: str, key: str, items: Sequence[Any], now: datetime | None) -> StoreReport:
        if not items:
            return StoreReport(stored=True, merged=0, pending=0, locked_by=None)
        stamp = (now or datetime.now(UTC)).isoformat()
        return self._submit(kind, f"{kind}-{spool.new_id()}", {"now": stamp, key: spool.to_json(list(items))})


def _spooled_url_keys(runs: Iterator[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(url key, article id) of every article in runs waiting in the spool (its canonical key and its link's)."""
    for batch in runs:
        for a in batch["articles"]:
            yield url_key(a["canonical_url"] or a["url"]), a["article_id"]
            yield url_key(a["url"]), a["article_id"]
