"""The DuckLake tables and views analysts query. Column names are those of the single-file warehouse
(schema v5) they replace, so saved queries keep working; DuckLake has no PRIMARY KEY or UNIQUE constraints:
uniqueness is decided in the state database before anything is written here (warehouse/state.py).

LAKE_VERSION counts changes to this schema; MIGRATIONS[n] brings a lake from n to n + 1 (0 = empty).
"""

from __future__ import annotations

LAKE_VERSION = 2

EVIDENCE_TYPE = ('STRUCT(term VARCHAR, concept VARCHAR, "where" VARCHAR, "start" INTEGER, "end" INTEGER, '
                 'snippet VARCHAR, weight DOUBLE, text VARCHAR)[]')

TABLES: dict[str, str] = {
    "meta": "key VARCHAR NOT NULL, value VARCHAR",
    "feeds": """feed_url VARCHAR NOT NULL, name VARCHAR, etag VARCHAR, last_modified VARCHAR, body_hash VARCHAR,
        last_status INTEGER, last_error VARCHAR, consecutive_failures INTEGER, last_polled_at TIMESTAMPTZ,
        last_success_at TIMESTAMPTZ, next_poll_at TIMESTAMPTZ, entries_seen BIGINT, effective_url VARCHAR""",
    "poll_runs": """run_id VARCHAR NOT NULL, config VARCHAR, started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ, feeds_total INTEGER, feeds_ok INTEGER, feeds_not_modified INTEGER,
        feeds_failed INTEGER, new_articles INTEGER, matches INTEGER, alerts_queued INTEGER""",
    "fetch_log": """run_id VARCHAR NOT NULL, logged_at TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL,
        feed_url VARCHAR NOT NULL, url VARCHAR NOT NULL, status INTEGER, error VARCHAR""",
    "articles": """article_id VARCHAR NOT NULL, url VARCHAR NOT NULL, canonical_url VARCHAR,
        feed_url VARCHAR NOT NULL, feed_name VARCHAR, entry_key VARCHAR NOT NULL, title VARCHAR, summary VARCHAR,
        text VARCHAR, author VARCHAR, site_name VARCHAR, language VARCHAR, published_at TIMESTAMPTZ,
        fetched_at TIMESTAMPTZ NOT NULL, word_count INTEGER, extraction_status VARCHAR, extraction_note VARCHAR,
        content_hash VARCHAR, run_id VARCHAR, cluster_id VARCHAR, first_seen_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ, guid VARCHAR, edits INTEGER, url_key VARCHAR""",
    "tags": f"""article_id VARCHAR NOT NULL, watchlist VARCHAR NOT NULL, label VARCHAR NOT NULL,
        score DOUBLE NOT NULL, passed BOOLEAN NOT NULL, rules_version VARCHAR NOT NULL,
        evidence {EVIDENCE_TYPE}, tagged_at TIMESTAMPTZ NOT NULL""",
    "verdicts": """article_id VARCHAR NOT NULL, watchlist VARCHAR NOT NULL, rules_version VARCHAR NOT NULL,
        match BOOLEAN NOT NULL, score DOUBLE NOT NULL, tags VARCHAR[] NOT NULL, tagged_at TIMESTAMPTZ NOT NULL""",
    "clusters": """cluster_id VARCHAR NOT NULL, seed_article_id VARCHAR NOT NULL, title VARCHAR,
        first_published_at TIMESTAMPTZ NOT NULL, created_at TIMESTAMPTZ NOT NULL""",
    "alerts": """alert_id VARCHAR NOT NULL, article_id VARCHAR, watchlist VARCHAR NOT NULL, channel VARCHAR NOT NULL,
        channel_name VARCHAR NOT NULL, status VARCHAR NOT NULL, attempts INTEGER, last_error VARCHAR,
        created_at TIMESTAMPTZ NOT NULL, last_attempt_at TIMESTAMPTZ, sent_at TIMESTAMPTZ, kind VARCHAR,
        cluster_id VARCHAR, subject VARCHAR, body VARCHAR, next_attempt_at TIMESTAMPTZ, delivery_key VARCHAR""",
    "entry_aliases": "alias VARCHAR NOT NULL, article_id VARCHAR NOT NULL",
    "article_aliases": """alias_id VARCHAR NOT NULL, article_id VARCHAR NOT NULL, url VARCHAR NOT NULL,
        url_key VARCHAR NOT NULL, seen_at TIMESTAMPTZ NOT NULL""",
    "raw_pages": """article_id VARCHAR NOT NULL, url VARCHAR NOT NULL, content_type VARCHAR, charset VARCHAR,
        codec VARCHAR NOT NULL, body BLOB NOT NULL, raw_bytes INTEGER NOT NULL, fetched_at TIMESTAMPTZ NOT NULL""",
}

VIEWS: dict[str, str] = {
    "matches": """
SELECT a.article_id, a.url, a.title, a.published_at, v.score, v.tags, v.watchlist, v.rules_version,
       a.feed_name AS source, a.feed_url, a.language, a.fetched_at, a.cluster_id
FROM articles a JOIN verdicts v USING (article_id)
WHERE v.match""",
    "story_clusters": """
SELECT c.cluster_id, c.title, c.first_published_at, c.created_at, count(a.article_id) AS articles,
       list(DISTINCT a.feed_name ORDER BY a.feed_name) FILTER (WHERE a.feed_name IS NOT NULL) AS outlets,
       max(a.fetched_at) AS last_seen_at
FROM clusters c LEFT JOIN articles a USING (cluster_id)
GROUP BY c.cluster_id, c.title, c.first_published_at, c.created_at""",
    "alert_ledger": """
SELECT al.alert_id, al.status, al.attempts, al.channel_name, al.watchlist, al.created_at, al.sent_at,
       al.last_error, coalesce(a.title, al.subject) AS title, coalesce(a.url, '') AS url, a.feed_name AS source,
       al.kind, al.cluster_id,
       (SELECT list(DISTINCT m.feed_name ORDER BY m.feed_name) FROM articles m
        WHERE m.cluster_id = al.cluster_id) AS outlets,
       al.next_attempt_at, al.delivery_key
FROM alerts al LEFT JOIN articles a USING (article_id)""",
    "failed_alerts": "SELECT * FROM alert_ledger WHERE status = 'failed'",
    # last_result: what the last poll came to. Its phrases for a timeout and an oversized body are the messages
    # extractors/http.py gives (tests/test_counts_output.py runs each through a real poll).
    "feed_health": """
WITH stats AS (
    SELECT feed_url, count(*) AS articles_stored, max(published_at) AS newest_article_at,
           max(first_seen_at) AS last_new_at,
           count(*) FILTER (WHERE first_seen_at > now() - INTERVAL 1 DAY) AS new_24h,
           count(*) FILTER (WHERE first_seen_at > now() - INTERVAL 7 DAY) AS new_7d
    FROM articles GROUP BY feed_url),
recent AS (
    SELECT feed_url, published_at FROM articles WHERE published_at IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY feed_url ORDER BY published_at DESC) <= 30),
gaps AS (
    SELECT feed_url, median(epoch(gap)) / 3600 AS usual_gap_hours
    FROM (SELECT feed_url, published_at - lag(published_at) OVER (PARTITION BY feed_url ORDER BY published_at)
                 AS gap FROM recent)
    WHERE gap IS NOT NULL GROUP BY feed_url)
SELECT f.feed_url AS url, f.name, f.last_status, f.last_error, f.consecutive_failures,
       f.last_polled_at, f.last_success_at, f.next_poll_at, f.entries_seen,
       coalesce(s.articles_stored, 0) AS articles_stored, s.newest_article_at,
       f.effective_url, s.last_new_at, coalesce(s.new_24h, 0) AS new_24h, coalesce(s.new_7d, 0) AS new_7d,
       round(coalesce(s.new_7d, 0) / 7.0, 2) AS per_day_7d, round(g.usual_gap_hours, 2) AS usual_gap_hours,
       coalesce(f.consecutive_failures = 0 AND s.articles_stored >= 3
                AND s.last_new_at < f.last_polled_at - greatest(INTERVAL 1 DAY,
                                                     to_seconds(4 * 3600 * coalesce(g.usual_gap_hours, 24))),
                false) AS silent,
       coalesce(f.last_status = 410, false) AS gone,
       CASE WHEN f.last_polled_at IS NULL THEN 'not polled yet'
            WHEN f.last_error IS NULL AND f.last_status = 304 THEN 'not modified (HTTP 304)'
            WHEN f.last_error IS NULL THEN 'ok' || coalesce(' (HTTP ' || f.last_status || ')', '')
            WHEN f.last_status >= 400 THEN 'HTTP ' || f.last_status
            WHEN f.last_error LIKE '%-byte cap%' THEN 'too large' || coalesce(' (HTTP ' || f.last_status || ')', '')
            WHEN f.last_status IS NOT NULL THEN 'parse error (HTTP ' || f.last_status || ')'
            WHEN regexp_matches(f.last_error, 'timed out \\(|no complete answer within|cut off after') THEN 'timeout'
            ELSE 'fetch failed' END AS last_result
FROM feeds f LEFT JOIN stats s USING (feed_url) LEFT JOIN gaps g USING (feed_url)""",
    "daily_counts": """
SELECT CAST(coalesce(a.published_at, a.fetched_at) AT TIME ZONE 'UTC' AS DATE) AS day, a.feed_name AS source,
       t.watchlist, t.label, count(*) AS articles
FROM articles a JOIN tags t USING (article_id)
WHERE t.passed
GROUP BY ALL""",
    "match_daily_counts": """
SELECT CAST(coalesce(published_at, fetched_at) AT TIME ZONE 'UTC' AS DATE) AS day, source, watchlist,
       count(DISTINCT article_id) AS matches
FROM matches
GROUP BY ALL""",
    "tag_evidence": """
SELECT t.article_id, t.watchlist, t.label, t.passed, t.score, t.rules_version,
       e.term, e.text, e.concept, e."where", e."start", e."end", e.snippet, e.weight
FROM tags t, unnest(t.evidence) AS u(e)""",
}


def _create_all() -> str:
    tables = [f"CREATE TABLE IF NOT EXISTS {name} ({cols})" for name, cols in TABLES.items()]
    views = [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]
    return ";\n".join(tables + views)


def _replace_views() -> str:
    return ";\n".join(f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items())


# MIGRATIONS[n] brings a lake from version n to n + 1 (0 = empty catalog).
# 1 -> 2: `match_daily_counts` (matches per day; `daily_counts` counts label passes) and feed_health.last_result.
MIGRATIONS: dict[int, str] = {0: _create_all(), 1: _replace_views()}
