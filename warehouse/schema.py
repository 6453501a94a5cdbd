"""DDL and numbered migrations. Migration N upgrades a file at version N-1 to N, in place."""

from __future__ import annotations

SCHEMA_VERSION = 5

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

# Story clusters (near-duplicate copies across outlets) and an alert ledger keyed by cluster: articles get a
# cluster_id (existing ones each seed their own cluster, with no signature: new copies never join them);
# alerts get a kind (story | spike | feed | digest), the cluster, a stored message for non-story alerts and
# retry backoff.
_V2_CLUSTERS = """
ALTER TABLE articles ADD COLUMN cluster_id VARCHAR;
UPDATE articles SET cluster_id = left(sha256('cluster' || chr(31) || article_id), 24);

CREATE TABLE clusters (
    cluster_id VARCHAR PRIMARY KEY,
    seed_article_id VARCHAR NOT NULL,
    title VARCHAR,
    first_published_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    signature UINTEGER[]
);
INSERT INTO clusters
SELECT cluster_id, article_id, title, coalesce(published_at, fetched_at), fetched_at, NULL FROM articles;

ALTER TABLE alerts ALTER COLUMN article_id DROP NOT NULL;
ALTER TABLE alerts ADD COLUMN kind VARCHAR DEFAULT 'story';
ALTER TABLE alerts ADD COLUMN cluster_id VARCHAR;
ALTER TABLE alerts ADD COLUMN subject VARCHAR;
ALTER TABLE alerts ADD COLUMN body VARCHAR;
ALTER TABLE alerts ADD COLUMN next_attempt_at TIMESTAMPTZ;
ALTER TABLE alerts ADD COLUMN delivery_key VARCHAR;
UPDATE alerts SET kind = 'story',
    cluster_id = (SELECT a.cluster_id FROM articles a WHERE a.article_id = alerts.article_id);

CREATE OR REPLACE VIEW matches AS
SELECT a.article_id, a.url, a.title, a.published_at, v.score, v.tags, v.watchlist, v.rules_version,
       a.feed_name AS source, a.feed_url, a.language, a.fetched_at, a.cluster_id
FROM articles a JOIN verdicts v USING (article_id)
WHERE v.match;

CREATE VIEW story_clusters AS
SELECT c.cluster_id, c.title, c.first_published_at, c.created_at, count(a.article_id) AS articles,
       list(DISTINCT a.feed_name ORDER BY a.feed_name) FILTER (WHERE a.feed_name IS NOT NULL) AS outlets,
       max(a.fetched_at) AS last_seen_at
FROM clusters c LEFT JOIN articles a USING (cluster_id)
GROUP BY c.cluster_id, c.title, c.first_published_at, c.created_at;

CREATE OR REPLACE VIEW alert_ledger AS
SELECT al.alert_id, al.status, al.attempts, al.channel_name, al.watchlist, al.created_at, al.sent_at,
       al.last_error, coalesce(a.title, al.subject) AS title, coalesce(a.url, '') AS url, a.feed_name AS source,
       al.kind, al.cluster_id,
       (SELECT list(DISTINCT m.feed_name ORDER BY m.feed_name) FROM articles m
        WHERE m.cluster_id = al.cluster_id) AS outlets,
       al.next_attempt_at, al.delivery_key
FROM alerts al LEFT JOIN articles a USING (article_id);

CREATE VIEW failed_alerts AS
SELECT * FROM alert_ledger WHERE status = 'failed';
"""

# v3: polling state and entry identity. Feeds remember the URL a permanent redirect moved them to; articles
# keep first_seen_at, published_at and updated_at apart (an edited entry updates in place); every identity an
# entry was seen under (GUID, normalised link, title+date fingerprint) points at its article; feed_health gains
# entry rates, a silent flag and a gone flag.
_V3_POLLING = """
ALTER TABLE feeds ADD COLUMN effective_url VARCHAR;

ALTER TABLE articles ADD COLUMN first_seen_at TIMESTAMPTZ;
ALTER TABLE articles ADD COLUMN updated_at TIMESTAMPTZ;
ALTER TABLE articles ADD COLUMN guid VARCHAR;
ALTER TABLE articles ADD COLUMN edits INTEGER DEFAULT 0;
UPDATE articles SET first_seen_at = fetched_at, edits = 0;

CREATE TABLE entry_aliases (
    alias VARCHAR PRIMARY KEY,      -- 'guid:...', a normalised link, or 'fp:<hash of title + minute>'
    article_id VARCHAR NOT NULL
);
INSERT INTO entry_aliases SELECT entry_key, min(article_id) FROM articles GROUP BY entry_key;

CREATE OR REPLACE VIEW feed_health AS
WITH stats AS (
    SELECT feed_url, count(*) AS articles_stored, max(published_at) AS newest_article_at,
           max(first_seen_at) AS last_new_at,
           count(*) FILTER (WHERE first_seen_at > now() - INTERVAL 1 DAY) AS new_24h,
           count(*) FILTER (WHERE first_seen_at > now() - INTERVAL 7 DAY) AS new_7d
    FROM articles GROUP BY feed_url),
recent AS (  -- each feed's newest 30 stories by publication date
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
       -- silent: its polls succeed, yet at the last one its newest story was far older than its usual gap
       coalesce(f.consecutive_failures = 0 AND s.articles_stored >= 3
                AND s.last_new_at < f.last_polled_at - greatest(INTERVAL 1 DAY,
                                                     to_seconds(4 * 3600 * coalesce(g.usual_gap_hours, 24))),
                false) AS silent,
       coalesce(f.last_status = 410, false) AS gone
FROM feeds f LEFT JOIN stats s USING (feed_url) LEFT JOIN gaps g USING (feed_url);
"""

# v4: the store log (one row per batch stored, the spool's exactly-once key), evidence as rows, and daily
# counts that keep undated stories (on the day they were fetched).
_V4_STORE_LOG = """
CREATE TABLE store_log (
    batch_id VARCHAR PRIMARY KEY,   -- run_id for a run; 'alerts-...', 'marks-...' otherwise
    kind VARCHAR NOT NULL,          -- 'run' | 'alerts' (queued outside a run) | 'alert_outcomes'
    spooled_at TIMESTAMPTZ NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL,
    records INTEGER NOT NULL        -- articles in a run; alerts or outcomes otherwise
);

CREATE VIEW tag_evidence AS
SELECT t.article_id, t.watchlist, t.label, t.passed, t.score, t.rules_version,
       e.term, e.concept, e."where", e."start", e."end", e.snippet, e.weight
FROM tags t, unnest(t.evidence) AS u(e);

CREATE OR REPLACE VIEW daily_counts AS
SELECT CAST(coalesce(a.published_at, a.fetched_at) AT TIME ZONE 'UTC' AS DATE) AS day, a.feed_name AS source,
       t.watchlist, t.label, count(*) AS articles
FROM articles a JOIN tags t USING (article_id)
WHERE t.passed
GROUP BY ALL;
"""

# v5: evidence quotes the matched words as published (`text`, beside the rule pattern `term`); articles get
# `url_key` (dedup by canonical URL; the SQL below is newsmon.records.url_key written in SQL); entries that
# turned out to duplicate a stored article are remembered in `article_aliases`; `raw_pages` keeps
# compressed pages for `newsmon reextract` when [extraction] keep_raw_pages is on; tag_evidence shows `text`.
_V5_RAW_PAGES = """
ALTER TABLE tags ALTER evidence TYPE
    STRUCT(term VARCHAR, concept VARCHAR, "where" VARCHAR, "start" INTEGER, "end" INTEGER, snippet VARCHAR,
           weight DOUBLE, text VARCHAR)[]
    USING list_transform(evidence, lambda e: struct_insert(e, text := NULL::VARCHAR));

ALTER TABLE articles ADD COLUMN url_key VARCHAR;
UPDATE articles SET url_key = rtrim(split_part(
    regexp_replace(lower(trim(coalesce(canonical_url, url))), '^[a-z][a-z0-9+.-]*://(www\\.)?', ''), '#', 1), '/');

CREATE TABLE article_aliases (
    alias_id VARCHAR PRIMARY KEY,     -- the article_id the duplicate entry would have had
    article_id VARCHAR NOT NULL,      -- the stored article it duplicates
    url VARCHAR NOT NULL,
    url_key VARCHAR NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE raw_pages (
    article_id VARCHAR PRIMARY KEY,
    url VARCHAR NOT NULL,             -- final URL after redirects
    content_type VARCHAR,
    charset VARCHAR,
    codec VARCHAR NOT NULL,           -- 'zstd' | 'gzip'
    body BLOB NOT NULL,
    raw_bytes INTEGER NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL
);

CREATE OR REPLACE VIEW tag_evidence AS
SELECT t.article_id, t.watchlist, t.label, t.passed, t.score, t.rules_version,
       e.term, e.text, e.concept, e."where", e."start", e."end", e.snippet, e.weight
FROM tags t, unnest(t.evidence) AS u(e);
"""

# MIGRATIONS[n] brings a file from version n to n + 1 (0 = empty file).
MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2_CLUSTERS, 2: _V3_POLLING, 3: _V4_STORE_LOG,
                              4: _V5_RAW_PAGES}
