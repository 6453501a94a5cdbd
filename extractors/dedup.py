"""One story, one article (pure): pages whose canonical URL names an article already kept become aliases.

Two feed entries with different links can lead to one story (a tracking link and the clean one, a mobile
and a desktop URL). Feed-level dedup cannot see it; the page's canonical URL can. An alias is recorded so
the entry is not fetched again, and since it is never stored as an article it is never tagged or alerted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from newsmon.records import Alias, Article, url_key


def lookup_keys(articles: Iterable[Article]) -> set[str]:
    """Every key an article can collide on: its canonical key and its own link's key."""
    return {k for a in articles for k in (a.url_key, url_key(a.url))}


def drop_duplicates(articles: Sequence[Article], known: dict[str, str]) -> tuple[list[Article], list[Alias]]:
    """Articles to store (first of each key wins) and aliases for the rest.

    `known` maps url keys to article ids already stored or kept earlier in the run; it is updated with
    the keys of the articles kept here, so batches of one run can share it.
    """
    kept: list[Article] = []
    aliases: list[Alias] = []
    for art in articles:
        key, own = art.url_key, url_key(art.url)
        owner = known.get(key) or known.get(own)
        if owner is not None and owner != art.article_id:
            aliases.append(Alias(art.article_id, owner, art.url, key))
            continue
        known.setdefault(key, art.article_id)
        known.setdefault(own, art.article_id)
        kept.append(art)
    return kept, aliases


def point_at_kept(identities: Iterable[tuple[str, str]], aliases: Sequence[Alias]) -> list[tuple[str, str]]:
    """Entry identities (alias, article_id) with each dropped duplicate's id replaced by the article it
    duplicates: the entry is then known as that story on the next poll and is not fetched again."""
    owner = {a.alias_id: a.article_id for a in aliases}
    return [(alias, owner.get(article_id, article_id)) for alias, article_id in identities]
