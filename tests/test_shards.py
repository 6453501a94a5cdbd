"""Shards by site: `newsmon shards N` and the assignment behind it (extractors/shards.py).

Every feed of one site in one shard, each shard config naming the same warehouse and alert channels, stable
when feeds are added, and one poll deployment per shard with a limit of its own."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from extractors.shards import SLACK, assign, site_of, sites_by_shard
from newsmon.cli import main
from newsmon.config import load_settings
from newsmon.records import FeedSpec

ROOT = Path(__file__).resolve().parents[1]


def feeds_of(urls: list[str]) -> list[FeedSpec]:
    return [FeedSpec(name=u, url=u) for u in urls]


def test_a_site_is_its_registrable_domain() -> None:
    same = ["https://www.x.com/rss", "https://x.com/feed", "http://feeds.x.com:8080/a.xml", "https://WWW.X.COM./b"]
    assert {site_of(u) for u in same} == {"x.com"}
    assert {site_of(u) for u in ("https://news.bbc.co.uk/rss", "https://www.bbc.co.uk/x", "https://bbc.co.uk/")} \
        == {"bbc.co.uk"}
    assert site_of("https://az.trend.az/rss") == site_of("https://www.trend.az/feed") == "trend.az"
    assert site_of("https://a.github.io/feed") != site_of("https://b.github.io/feed")  # two sites on one suffix
    assert site_of("https://tass.com/rss") != site_of("https://tass.ru/rss")
    assert site_of("https://президент.рф/rss") == site_of("https://www.xn--d1abbgf6aiiy.xn--p1ai/feed")
    # no known suffix: an address is its own site, a name its last two labels
    assert site_of("http://127.0.0.2:8000/feeds/en.xml") == "127.0.0.2" != site_of("http://127.0.0.3/x")
    assert site_of("http://[::1]:9/x") == "::1"
    assert site_of("http://www.feeds.intranet/rss") == site_of("http://feeds.intranet/atom") == "feeds.intranet"
    assert site_of("http://a.localhost/x") != site_of("http://b.localhost/x")


SITES = [f"site{i}.example" for i in range(40)] + ["big.example"]


def corpus(seed: int = 7) -> list[FeedSpec]:
    rnd = random.Random(seed)
    urls = [f"https://{host}/feed/{k}.xml" for host in SITES for k in range(rnd.randint(1, 4))]
    urls += [f"https://www.big.example/section/{k}" for k in range(12)]
    rnd.shuffle(urls)
    return feeds_of(urls)


def test_every_feed_once_and_each_site_in_one_shard() -> None:
    feeds = corpus()
    shards = assign(feeds, 4)
    assert [s.number for s in shards] == [1, 2, 3, 4]
    assert sorted(f.url for s in shards for f in s.feeds) == sorted(f.url for f in feeds)
    owner: dict[str, int] = {}
    for s in shards:
        for f in s.feeds:
            assert owner.setdefault(site_of(f.url), s.number) == s.number
        assert [f for f in feeds if f in s.feeds] == list(s.feeds)  # the config's order within a shard
    assert sites_by_shard(shards) == owner


def test_the_assignment_depends_on_the_sites_not_on_the_order_of_the_list() -> None:
    feeds = corpus()
    shuffled = list(reversed(feeds))
    assert sites_by_shard(assign(feeds, 3)) == sites_by_shard(assign(shuffled, 3))
    assert sites_by_shard(assign(feeds, 3)) == sites_by_shard(assign(feeds, 3))  # a hash, not hash()


def test_balanced_by_feed_count_as_far_as_sites_allow() -> None:
    feeds = corpus()
    loads = [len(s.feeds) for s in assign(feeds, 4)]
    cap = -(-len(feeds) * SLACK // 4)
    assert max(loads) <= cap and sum(loads) == len(feeds)
    # one site bigger than an even share: it fills a shard by itself and the rest share the others
    feeds = feeds_of([f"https://huge.example/{k}" for k in range(30)] + [f"https://s{k}.example/" for k in range(10)])
    shards = assign(feeds, 2)
    huge = next(s for s in shards if "huge.example" in s.sites)
    assert len(huge.feeds) == 30 and huge.sites == ("huge.example",)
    assert [len(s.feeds) for s in shards if s is not huge] == [10]


def test_more_shards_than_sites_leaves_shards_empty_and_one_shard_takes_all() -> None:
    feeds = feeds_of(["https://a.example/1", "https://a.example/2", "https://b.example/"])
    assert sorted(len(s.feeds) for s in assign(feeds, 5)) == [0, 0, 0, 1, 2]
    assert [len(s.feeds) for s in assign(feeds, 1)] == [3]
    with pytest.raises(ValueError):
        assign(feeds, 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), min_size=1, max_size=80, unique=True),
       st.integers(1, 6), st.integers(0, 30))
def test_with_the_earlier_assignment_adding_feeds_moves_no_site(pairs: list[tuple[int, int]], n: int,
                                                               new_site: int) -> None:
    feeds = feeds_of([f"https://www.s{s}.example/feed{k}" for s, k in pairs])
    before = sites_by_shard(assign(feeds, n))
    more = feeds + feeds_of([f"https://s{new_site}.example/extra", "https://brand-new.example/rss"])
    after = sites_by_shard(assign(more, n, before))
    assert all(after[site] == shard for site, shard in before.items())
    assert set(after) == set(before) | {site_of(f.url) for f in more}


def test_without_it_one_new_feed_seldom_moves_a_site() -> None:
    """Rendezvous hashing: a site's shard depends on the site, and only a full shard sends it elsewhere."""
    feeds = corpus()
    base = sites_by_shard(assign(feeds, 4))
    moved = 0
    for k in range(30):
        again = sites_by_shard(assign(feeds + feeds_of([f"https://new{k}.example/rss"]), 4))
        moved += sum(1 for site, shard in base.items() if again[site] != shard)
    assert moved <= 0.05 * 30 * len(base)


CONFIG = """
[warehouse]
path = "data/newsmon.duckdb"
state = "postgresql://newsmon:${{PGPASS}}@db.internal:5432/state"
catalog = "postgres:dbname=lake host=db.internal user=newsmon password=${{PGPASS}}"
data_path = "lake-files"
[http]
max_per_host = 1
[schedule]
interval_minutes = 5
[alerts]
urls = ["json://127.0.0.1:9/hook?token=${{HOOK_TOKEN}}"]
max_per_run = 3
[[alerts.routes]]
name = "energy desk"
urls = ["mailto://127.0.0.1:2525?from=a@x.test&to=desk@x.test"]
watchlists = ["az_ru"]
[tagging]
rules = ["rules/extra.toml"]
{feeds}
"""


def write_main(folder: Path, urls: list[str]) -> Path:
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules/extra.toml").write_text("", encoding="utf-8")
    feeds = "".join(f'\n[[feeds]]\nname = "{u.split("/")[2]} {i}"\nurl = "{u}"\n' for i, u in enumerate(urls))
    path = folder / "newsmon.toml"
    path.write_text(CONFIG.format(feeds=feeds), encoding="utf-8")
    path.chmod(0o600)
    return path


URLS = [f"https://{host}/{k}.xml" for host in ("www.a.example", "a.example", "news.b.example", "c.example",
                                                "d.example", "e.example", "www.f.example") for k in range(2)]


def test_newsmon_shards_writes_n_configs_sharing_the_warehouse_and_alerts(tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:
    monkeypatch.setenv("PGPASS", "pg-secret-1")
    monkeypatch.setenv("HOOK_TOKEN", "hook-secret-2")
    main_cfg = write_main(tmp_path / "conf", URLS)
    out = tmp_path / "elsewhere" / "shards"
    assert main(["shards", "3", "--config", str(main_cfg), "--out", str(out), "--deployments"]) == 0
    printed = capsys.readouterr().out
    assert "shard" in printed and "hosts" in printed and "feeds" in printed
    assert "6 hosts, 14 feeds in 3 shards" in printed
    main_settings = load_settings(main_cfg)
    paths = [out / f"shard-{k}.toml" for k in (1, 2, 3)]
    shard_settings = [load_settings(p) for p in paths]
    for s, p in zip(shard_settings, paths, strict=True):
        # the same warehouse, state database, data path, alerts, rules, schedule and politeness, from any folder
        assert s.warehouse == main_settings.warehouse
        assert s.alerts == main_settings.alerts and s.tagging == main_settings.tagging
        assert s.schedule == main_settings.schedule and s.http == main_settings.http
        text = p.read_text(encoding="utf-8")
        assert "${PGPASS}" in text and "${HOOK_TOKEN}" in text  # references kept, never the secrets
        assert "pg-secret-1" not in text and "hook-secret-2" not in text
        assert p.stat().st_mode & 0o777 == 0o600  # as private as the main config
    assert sorted(f.url for s in shard_settings for f in s.feeds) == sorted(URLS)
    owners = {site_of(f.url): k for k, s in enumerate(shard_settings, 1) for f in s.feeds}
    assert len(owners) == 6  # www.a.example and a.example together: one site, one shard
    assert len({k for k, s in enumerate(shard_settings, 1) for f in s.feeds if "a.example" in f.url}) == 1
    assert {f.name for s in shard_settings for f in s.feeds} == {f.name for f in main_settings.feeds}

    doc = yaml.safe_load((out / "prefect.yaml").read_text(encoding="utf-8"))
    assert doc["pull"] == []  # nothing pulled: newsmon is installed on the worker
    deps = doc["deployments"]
    assert [d["name"] for d in deps] == ["newsmon-poll-shard-1", "newsmon-poll-shard-2", "newsmon-poll-shard-3"]
    for d, p in zip(deps, paths, strict=True):
        assert d["entrypoint"] == "flows.poll.poll_feeds" and d["work_pool"]["name"] == "newsmon"
        assert d["parameters"]["config"] == str(p) and Path(d["parameters"]["config"]).is_absolute()
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}  # each its own
        assert d["schedules"] == [{"interval": 300}]

    # more feeds, then the same command: no host changes shard, new hosts are placed
    main_cfg = write_main(tmp_path / "conf", URLS + ["https://www.c.example/more.xml", "https://g.example/rss"])
    assert main(["shards", "3", "--config", str(main_cfg), "--out", str(out)]) == 0
    assert "1 new hosts placed, 0 moved" in capsys.readouterr().out
    again = {site_of(f.url): k for k in (1, 2, 3) for f in load_settings(out / f"shard-{k}.toml").feeds}
    assert all(again[site] == k for site, k in owners.items()) and "g.example" in again

    # fewer shards: the extra config goes (its deployment must go too), hosts are dealt again
    assert main(["shards", "2", "--config", str(main_cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "removed" in printed and "newsmon-poll-shard-3" in printed
    assert not paths[2].exists()
    assert [d["name"] for d in yaml.safe_load((out / "prefect.yaml").read_text())["deployments"]] == [
        "newsmon-poll-shard-1", "newsmon-poll-shard-2"]


def test_shards_cli_errors() -> None:
    res = subprocess.run([sys.executable, "-m", "newsmon.cli", "shards", "0"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode == 2 and "1 or more" in res.stderr
