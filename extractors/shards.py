"""Shards by site: which of N shards polls each feed (pure: feed URLs in, an assignment out).

Every feed of one site goes to one shard, so the per-host politeness a run enforces (`max_per_host`, the
per-host delay, Retry-After) holds for the whole system: no two shards ever poll one site at once. A site is a
feed URL's registrable domain from the Public Suffix List (`www.bbc.co.uk`, `feeds.bbc.co.uk` and `bbc.co.uk`
are one site; `a.github.io` and `b.github.io` are two); an IP address is its own site, and a name under no
known suffix (`feeds.intranet`, `x.localhost`) is its last two labels.

Placement is rendezvous hashing with bounded loads: each site ranks the shards by a hash of (site, shard) and
takes the first whose feed count stays within `SLACK` x the average; the sites are placed in the order of
their own hash (sites bigger than that share first, each to the emptiest shard), so neither the order of the
feed list nor another site's feed count changes where a site goes unless a shard is full. Sites already
placed by an earlier assignment (`previous`) stay where they are, so adding or removing feeds moves no other
site; only a new N (or `previous` left out) re-deals them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tld import get_fld

from newsmon.records import FeedSpec

SLACK = 1.25  # a shard takes a site while its feeds stay within 1.25 x the average (when sites allow)


@dataclass(frozen=True)
class Shard:
    number: int  # 1..N
    sites: tuple[str, ...]
    feeds: tuple[FeedSpec, ...]


def site_of(url: str) -> str:
    """The site (registrable domain, lower case, IDNA) whose feeds one shard polls."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        host = ""
    if not host:
        return url
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    fld = get_fld(host, fix_protocol=True, fail_silently=True)
    return str(fld) if fld else ".".join(host.split(".")[-2:])


def _rank(*parts: str) -> int:
    """A hash that is the same on every machine and Python run (unlike hash())."""
    return int.from_bytes(hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest(), "big")


def assign(feeds: Sequence[FeedSpec], n: int, previous: Mapping[str, int] | None = None) -> list[Shard]:
    """N shards (numbered 1..N, some possibly empty) holding every feed once, each site's feeds in one shard,
    in the config's order within a shard. `previous` maps sites to the shard an earlier assignment gave them."""
    if n < 1:
        raise ValueError("the number of shards must be at least 1")
    sites = [site_of(f.url) for f in feeds]
    by_site: dict[str, list[FeedSpec]] = {}
    for site, f in zip(sites, feeds, strict=True):
        by_site.setdefault(site, []).append(f)
    average = len(feeds) / n
    cap = max(1, math.ceil(average), math.floor(average * SLACK))  # feeds a shard takes while sites fit
    load = dict.fromkeys(range(1, n + 1), 0)
    placed: dict[str, int] = {}
    for site, shard in (previous or {}).items():
        if site in by_site and 1 <= shard <= n:
            placed[site] = shard
            load[shard] += len(by_site[site])
    # sites too big for any shard's share first (each then fills a shard as far as it must), then the rest
    for site in sorted(by_site.keys() - placed.keys(), key=lambda s: (len(by_site[s]) <= cap, _rank(s), s)):
        size = len(by_site[site])
        ranked = sorted(load, key=lambda k: _rank(site, str(k)), reverse=True)
        fits = [k for k in ranked if load[k] + size <= cap]
        # a site larger than the room left anywhere goes where the fewest feeds are (as far as sites allow)
        shard = fits[0] if fits else min(ranked, key=lambda k: load[k])
        placed[site] = shard
        load[shard] += size
    return [Shard(number=k,
                  sites=tuple(sorted(s for s, at in placed.items() if at == k)),
                  feeds=tuple(f for site, f in zip(sites, feeds, strict=True) if placed[site] == k))
            for k in range(1, n + 1)]


def sites_by_shard(shards: Sequence[Shard]) -> dict[str, int]:
    """The `previous` mapping of an assignment (or of shard configs read back)."""
    return {site: s.number for s in shards for site in s.sites}
