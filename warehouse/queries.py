"""The digest's query: matching stories of a period, one per cluster x watchlist, from the lake."""

STORY_MATCHES = """
WITH best AS (
    SELECT v.watchlist, a.cluster_id, a.article_id, a.title, a.url, a.feed_name, a.published_at, v.score, v.tags,
           row_number() OVER (PARTITION BY a.cluster_id, v.watchlist ORDER BY v.score DESC, a.fetched_at) AS rn
    FROM verdicts v JOIN articles a USING (article_id) JOIN clusters c USING (cluster_id)
    WHERE v.match AND c.first_published_at BETWEEN ? AND ?)
SELECT b.article_id, b.watchlist, b.title, b.url, b.feed_name, b.published_at, b.score, b.tags,
       (SELECT list(DISTINCT coalesce(e.text, e.term)) FROM tags t, unnest(t.evidence) AS u(e)
        WHERE t.article_id = b.article_id AND t.watchlist = b.watchlist),
       b.cluster_id,
       (SELECT list(o.feed_name ORDER BY o.first_at) FROM
           (SELECT m.feed_name, min(coalesce(m.published_at, m.fetched_at)) AS first_at FROM articles m
            WHERE m.cluster_id = b.cluster_id GROUP BY m.feed_name) o),
       (SELECT list(DISTINCT e.snippet) FROM tags t, unnest(t.evidence) AS u(e)
        WHERE t.article_id = b.article_id AND t.watchlist = b.watchlist AND t.passed AND e.snippet <> '')
FROM best b WHERE b.rn = 1
ORDER BY b.score DESC, b.published_at DESC"""
