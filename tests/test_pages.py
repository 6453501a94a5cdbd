"""Page fetching order (pure): the run's bounded slots are spread over hosts, not spent on one feed's host."""

from __future__ import annotations

from extractors.pages import host_round_robin
from newsmon.records import Entry


def entry(link: str) -> Entry:
    return Entry(feed_url="http://feeds.example/x.xml", key=link, link=link, title="t", summary="", guid=None,
                 author=None, published_at=None, updated_at=None, language=None)


def test_entries_are_taken_one_host_at_a_time_and_each_exactly_once() -> None:
    links = [f"https://a.example/{i}" for i in range(3)] + [f"https://b.example/{i}" for i in range(2)] + [
        "https://c.example/0", ""]
    order = host_round_robin([entry(u) for u in links])
    assert sorted(order) == list(range(len(links)))
    assert [links[i].split("/")[2] if links[i] else "" for i in order[:4]] == ["a.example", "b.example",
                                                                               "c.example", ""]
    assert order == [0, 3, 5, 6, 1, 4, 2]
