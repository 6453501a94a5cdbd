"""DDL and numbered migrations. Migration N upgrades a file at version N-1 to N, in place."""

from __future__ import annotations

SCHEMA_VERSION = 1

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE feeds (
    feed_url VARCHAR PRIMARY KEY,
    name VARCHAR,
    etag VARCHAR,
    last_modified VARCHAR,
    body_hash VARCHAR,
    last_status INTEGER,
    last_error VARCHAR,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_polled_at TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    next_poll_at TIMESTAMPTZ,
    entries_seen BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE poll_runs (
    run_id VARCHAR PRIMARY KEY,
    config VARCHAR,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    feeds_total INTEGER,
    feeds_ok INTEGER,
    feeds_not_modified INTEGER,
    feeds_failed INTEGER,
    new_articles INTEGER,
    matches INTEGER,
    alerts_queued INTEGER
);

CREATE TABLE fetch_log (
    run_id VARCHAR NOT NULL,
    logged_at TIMESTAMPTZ NOT NULL,
    kind VARCHAR NOT NULL,          -- 'feed' | 'page'
    feed_url VARCHAR NOT NULL,
    url VARCHAR NOT NULL,
    status INTEGER,
    error VARCHAR
);

CREATE TABLE articles (
    article_id VARCHAR PRIMARY KEY,
    url VARCHAR NOT NULL,
    canonical_url VARCHAR,
    feed_url VARCHAR NOT NULL,
    feed_name VARCHAR,
    entry_key VARCHAR NOT NULL,
    title VARCHAR,
    summary VARCHAR,
    text VARCHAR,
    author VARCHAR,
    site_name VARCHAR,
    language VARCHAR,
    published_at TIMESTAMPTZ,
    fetched_at TIMESTAMPTZ NOT NULL,
    word_count INTEGER,
    extraction_status VARCHAR,
    extraction_note VARCHAR,
    content_hash VARCHAR,
    run_id VARCHAR
);

CREATE TABLE tags (
    article_id VARCHAR NOT NULL,
    watchlist VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    passed BOOLEAN NOT NULL,
    rules_version VARCHAR NOT NULL,
    evidence STRUCT(term VARCHAR, concept VARCHAR, "where" VARCHAR, "start" INTEGER, "end" INTEGER,
                    snippet VARCHAR, weight DOUBLE)[],
    tagged_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (article_id, watchlist, label)
);

CREATE TABLE verdicts (
    article_id VARCHAR NOT NULL,
    watchlist VARCHAR NOT NULL,
    rules_version VARCHAR NOT NULL,
    match BOOLEAN NOT NULL,
    score DOUBLE NOT NULL,
    tags VARCHAR[] NOT NULL,
    tagged_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (article_id, watchlist)
);

CREATE TABLE alerts (
    alert_id VARCHAR PRIMARY KEY,     -- also the idempotency key sent with the message
    article_id VARCHAR NOT NULL,
    watchlist VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,         -- stable id of the Apprise URL (never the URL: it may hold secrets)
    channel_name VARCHAR NOT NULL,    -- redacted, e.g. 'mailto://smtp.example.com'
    status VARCHAR NOT NULL,          -- 'pending' | 'sent' | 'failed'
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    sent_at TIMESTAMPTZ
);

CREATE VIEW matches AS
SELECT a.article_id, a.url, a.title, a.published_at, v.score, v.tags, v.watchlist, v.rules_version,
       a.feed_name AS source, a.feed_url, a.language, a.fetched_at
FROM articles a JOIN verdicts v USING (article_id)
WHERE v.match;

CREATE VIEW feed_health AS
SELECT f.feed_url AS url, f.name, f.last_status, f.last_error, f.consecutive_failures,
       f.last_polled_at, f.last_success_at, f.next_poll_at, f.entries_seen,
       (SELECT count(*) FROM articles a WHERE a.feed_url = f.feed_url) AS articles_stored,
       (SELECT max(a.published_at) FROM articles a WHERE a.feed_url = f.feed_url) AS newest_article_at
FROM feeds f;

CREATE VIEW alert_ledger AS
SELECT al.alert_id, al.status, al.attempts, al.channel_name, al.watchlist, al.created_at, al.sent_at,
       al.last_error, a.title, a.url, a.feed_name AS source
FROM alerts al JOIN articles a USING (article_id);

CREATE VIEW daily_counts AS
SELECT CAST(a.published_at AT TIME ZONE 'UTC' AS DATE) AS day, a.feed_name AS source, t.watchlist, t.label,
       count(*) AS articles
FROM articles a JOIN tags t USING (article_id)
WHERE t.passed
GROUP BY ALL;
"""

# MIGRATIONS[n] brings a file from version n to n + 1 (0 = empty file).
MIGRATIONS: dict[int, str] = {0: _V1}
