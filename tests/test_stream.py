"""A run's pages stream batch by batch (extractors.pages.stream_articles): the next batch is fetched and extracted
while the caller works on the one it holds, no further batch starts until the caller is done with that one, and
closing the stream early stops it. Real pages on a 127.0.0.1 server, extracted in a real pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from extractors.pages import extraction_pool, stream_articles
from newsmon.records import Entry
from tests.conftest import RouteServer
from tests.test_robots import HTTP, NOW, site


def batches_on(routes: RouteServer, count: int, size: int) -> list[list[Entry]]:
    return [site(routes, None, [f"/b{k}/p{j}.html" for j in range(size)]) for k in range(count)]


def requested(routes: RouteServer, batch: list[Entry]) -> int:
    paths = {e.key for e in batch}
    return sum(hit in paths for hit in list(routes.hits))


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    ends = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > ends:
            return False
        time.sleep(0.02)
    return True


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "newsmon-pages"]


def test_the_next_batch_is_extracted_while_the_caller_holds_one_and_no_further_batch_starts(
        routes: RouteServer) -> None:
    batches = batches_on(routes, 4, 3)
    with extraction_pool(1, 1) as pool:
        stream = stream_articles(batches, {}, HTTP, now=NOW, pool=pool)
        got = [next(stream)]
        # the caller holds batch 0: batch 1 is fetched meanwhile, batch 2 waits for the caller
        assert wait_for(lambda: requested(routes, batches[1]) == 3)
        time.sleep(0.5)
        assert requested(routes, batches[2]) == 0
        got += list(stream)
    assert [[a.entry_key for a in b.articles] for b in got] == [[e.key for e in b] for b in batches]
    assert all(a.extraction_status == "ok" for b in got for a in b.articles)
    assert sorted(routes.hits).count("/b3/p0.html") == 1  # every page asked once
    assert not stream_threads()


def test_closing_the_stream_early_stops_it_and_leaves_later_batches_unasked(routes: RouteServer) -> None:
    batches = batches_on(routes, 4, 3)
    with extraction_pool(1, 1) as pool:
        stream = stream_articles(batches, {}, HTTP, now=NOW, pool=pool)
        first = next(stream)
        stream.close()
        assert not stream_threads()
    assert [a.entry_key for a in first.articles] == [e.key for e in batches[0]]
    assert requested(routes, batches[2]) == requested(routes, batches[3]) == 0


class Broken(dict[str, str]):
    """Feed names whose look-up fails: an unexpected error inside a batch, after its pages were fetched."""

    def get(self, key: str, default: object = None) -> str:
        raise RuntimeError("feed names unavailable")


def test_an_error_inside_a_batch_reaches_the_caller_and_the_stream_ends(routes: RouteServer) -> None:
    batches = batches_on(routes, 3, 2)
    with extraction_pool(1, 1) as pool:
        stream = stream_articles(batches, Broken(), HTTP, now=NOW, pool=pool)
        try:
            next(stream)
        except RuntimeError as exc:
            assert str(exc) == "feed names unavailable"
        else:
            raise AssertionError("the batch's error was not raised")
        stream.close()
        assert not stream_threads()
