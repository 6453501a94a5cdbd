"""Re-tag and re-extract over a real warehouse (plain functions, no Prefect), dedup and raw-page packing."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from extractors.dedup import drop_duplicates
from extractors.pages import extraction_pool
from extractors.rawpages import pack, unpack
from extractors.worker import heap_trim as worker_trim
from flows.jobs import reextract, retag
from newsmon.errors import ExtractionError
from newsmon.records import Article, RawPage, RunBatch, Verdict, url_key
from newsmon.tagging import load_watchlists
from tests.conftest import make_warehouse
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).parent / "data" / "pages"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POSITIVE = ("SOCAR and Gazprom sign gas supply contract",
            "SOCAR and Gazprom Export signed a contract for the supply of Russian gas to Azerbaijan this winter.")
NEGATIVE = ("Baku jazz festival announces programme", "The Baku Jazz Festival will open on Friday with a concert.")


def art(i: int, title: str, text: str, **kw: object) -> Article:
    return Article(article_id=f"a{i}", feed_url="https://f.example/rss", feed_name="F", entry_key=f"k{i}",
                   url=f"https://news.example/{i}", title=title, summary="", text=text, fetched_at=NOW,
                   published_at=NOW - timedelta(days=i), content_hash=Article.hash_content(title, text),
                   **kw)  # type: ignore[arg-type]


def stale(article_id: str, match: bool, score: float) -> Verdict:
    return Verdict(article_id, "az_ru", "2000.1", match, score, (), (("az_ru", 0.0),), ())


def warehouse_with(tmp_path: Path, articles: list[Article], verdicts: list[Verdict]) -> Warehouse:
    wh = make_warehouse(tmp_path / "w.duckdb")
    wh.runs.store_run(RunBatch("r1", "t", NOW, (), tuple(articles), tuple(verdicts), ()), finished_at=NOW)
    return wh


def test_retag_dry_run_lists_flips_and_writes_nothing_then_the_real_run_writes(tmp_path: Path) -> None:
    wh = warehouse_with(tmp_path, [art(0, *POSITIVE), art(1, *NEGATIVE)],
                        [stale("a0", False, 0.2), stale("a1", True, 1.4)])
    watchlists = load_watchlists()
    dry = retag(wh, watchlists, since=None, dry_run=True, now=NOW)
    assert dry.examined == 2 and dry.retagged == 0
    assert {(f.article_id, f.old_match, f.new_match, f.old_score) for f in dry.flips} == {
        ("a0", False, True, 0.2), ("a1", True, False, 1.4)}
    assert wh.archive.stored_verdicts(["a0", "a1"])[("a0", "az_ru")] == (False, 0.2, "2000.1")  # untouched

    done = retag(wh, watchlists, since=None, dry_run=False, now=NOW)
    assert done.retagged == 2 and len(done.flips) == 2
    stored = wh.archive.stored_verdicts(["a0", "a1"])
    assert stored[("a0", "az_ru")][0] is True and stored[("a0", "az_ru")][2] == watchlists[0].version
    surface = wh.lake.query("SELECT DISTINCT e.text FROM tags, unnest(evidence) AS u(e) WHERE article_id = 'a0'")[1]
    assert ("Gazprom",) in surface and all("*" not in t for (t,) in surface)
    assert retag(wh, watchlists, since=None, dry_run=True, now=NOW).flips == []


def test_retag_since_only_touches_recent_stories(tmp_path: Path) -> None:
    wh = warehouse_with(tmp_path, [art(0, *POSITIVE), art(5, *POSITIVE)], [])
    report = retag(wh, load_watchlists(), since=NOW - timedelta(days=2), dry_run=False, now=NOW)
    assert report.examined == 1 and [f.article_id for f in report.flips] == ["a0"]
    assert set(wh.archive.stored_verdicts(["a0", "a5"])) == {("a0", "az_ru")}


def test_reextract_updates_text_from_the_kept_page_and_retags_it(tmp_path: Path) -> None:
    page = (PAGES / "sidebar_unrelated.html").read_bytes()
    # stored text as an older extractor left it: the sidebar's energy headlines leaked in, and it matched
    leaked = art(0, "Baku hosts a carpet exhibition", "SOCAR and Gazprom sign gas deal\\nRussia, Azerbaijan energy")
    wh = warehouse_with(tmp_path, [leaked, art(1, *NEGATIVE)], [stale("a0", True, 2.0)])
    codec, data = pack(page)
    wh.archive.store_raw_pages([RawPage("a0", "https://news.example/0", "text/html", None, codec, data, len(page), NOW),
                        RawPage("a1", "https://news.example/1", "text/html", None, "gzip", b"broken", 6, NOW)])
    report = reextract(wh, load_watchlists(), since=None, now=NOW, workers=1)
    assert report.examined == 2 and report.changed_text == 1 and len(report.failed) == 1
    assert "corrupt" in report.failed[0][1]
    text, status = wh.lake.query("SELECT text, extraction_status FROM articles WHERE article_id = 'a0'")[1][0]
    assert "Gazprom" not in text and status in {"ok", "recall"}
    assert [(f.article_id, f.new_match) for f in report.flips] == [("a0", False)]


def test_pack_round_trips_and_broken_bytes_name_the_page() -> None:
    body = b"<html><body>" + "Азербайджан и Россия. ".encode() * 500 + b"</body></html>"
    codec, data = pack(body)
    assert codec in {"zstd", "gzip"} and len(data) < len(body) / 5
    assert unpack(codec, data) == body
    with pytest.raises(ExtractionError, match="https://x.example/p"):
        unpack("zstd", b"not zstd", url="https://x.example/p")
    with pytest.raises(ExtractionError, match="unknown codec"):
        unpack("brotli", data)


def test_two_urls_one_canonical_make_one_article() -> None:
    first = art(0, "T", "x", canonical_url="https://www.news.example/story/")
    tracking = replace(art(1, "T", "x"), url="https://news.example/story?utm_source=rss",
                       canonical_url="https://news.example/story")
    clean = replace(art(2, "T", "x"), url="http://news.example/story#comments")
    other = art(3, "U", "y")
    known: dict[str, str] = {}
    kept, aliases = drop_duplicates([first, tracking], known)
    kept2, aliases2 = drop_duplicates([clean, other], known)  # a later batch of the same run
    assert [a.article_id for a in kept + kept2] == ["a0", "a3"]
    assert [(a.alias_id, a.article_id) for a in aliases + aliases2] == [("a1", "a0"), ("a2", "a0")]
    stored, _ = drop_duplicates([tracking], {url_key("https://news.example/story"): "old"})
    assert stored == []


def _model_loaded() -> tuple[int, int]:
    from extractors.language import _identifier

    return os.getpid(), _identifier.cache_info().currsize


def test_the_pool_initializer_loads_the_language_model_once_per_worker() -> None:
    with extraction_pool(100, 2) as pool:
        assert isinstance(pool, ProcessPoolExecutor)
        seen = dict(pool.submit(_model_loaded).result() for _ in range(6))
    assert seen and all(size == 1 for size in seen.values())


def _justext_stoplist() -> tuple[int, int, int]:
    from justext.core import define_stoplist
    from trafilatura import external

    built = external.JT_STOPLIST
    return os.getpid(), 0 if built is None else id(built), define_stoplist.cache_info().currsize


def test_workers_start_with_justext_s_stoplist_built_once_before_the_fork() -> None:
    # built by each worker on its first fallback page, it cost ~0.5 s and ~30 MB a worker
    with extraction_pool(100, 2) as pool:
        answers = [pool.submit(_justext_stoplist).result() for _ in range(6)]
    seen = {pid: (stoplist, lowered) for pid, stoplist, lowered in answers}
    assert seen and all(stoplist and lowered == 1 for stoplist, lowered in seen.values())
    assert len({stoplist for stoplist, _ in seen.values()}) == 1  # one object, the forkserver's


def _main_module_run_again() -> bool:
    return hasattr(sys.modules["__main__"], "HEAVY")  # the heavy main module's (below)


_HEAVY_MAIN = """
import sys
HEAVY = bytearray(64 << 20)  # what a heavy main module costs each worker that runs it again
from extractors.pages import extraction_pool
from tests.test_jobs import _main_module_run_again
if __name__ == "__main__":
    with extraction_pool(100, 2) as pool:
        print([pool.submit(_main_module_run_again).result() for _ in range(4)])
"""


@pytest.mark.parametrize("how", ["script", "module"])
def test_extraction_workers_do_not_run_the_main_module_again(tmp_path: Path, how: str) -> None:
    """multiprocessing's forkserver children re-run the parent's main module before their first job; a scheduled
    run's is Prefect's engine (~50 MB a worker). The pool's workers skip it, whether the main module was run
    as a file or with -m, and the main module is whole again afterwards."""
    (tmp_path / "heavy_main.py").write_text(_HEAVY_MAIN)
    target = [str(tmp_path / "heavy_main.py")] if how == "script" else ["-m", "heavy_main"]
    done = subprocess.run([sys.executable, *target], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[False,", "False,", "False,", "False]"]


def test_the_main_module_is_whole_after_the_pool_starts() -> None:
    main = sys.modules["__main__"]
    before = (main.__dict__.get("__spec__"), main.__dict__.get("__file__"))
    with extraction_pool(100, 2) as pool:
        assert pool.submit(int, "7").result() == 7
    assert (main.__dict__.get("__spec__"), main.__dict__.get("__file__")) == before


def _date_tables() -> tuple[int, int, int, int]:
    from dateparser.languages.loader import default_loader
    from htmldate.extractors import month_words

    from extractors.metadata import date_parser

    return (os.getpid(), month_words.cache_info().currsize, len(default_loader._loaded_locales),
            id(date_parser()))


def test_workers_start_with_the_date_tables_built_before_the_fork() -> None:
    # built by each worker within its first pages, they were ~20 MB and ~0.4 s of CPU a worker
    with extraction_pool(100, 2) as pool:
        answers = [pool.submit(_date_tables).result() for _ in range(6)]
    seen = {pid: rest for pid, *rest in answers}
    assert seen and all(months == 1 and locales > 100 for months, locales, _ in seen.values())
    assert len({parser for _, _, parser in seen.values()}) == 1  # one object, the forkserver's


def test_the_shared_stoplist_holds_the_words_trafilatura_would_merge() -> None:
    """The forkserver keys justext's cache with AllStoplists (the files, read when iterated) instead of
    trafilatura's tuple of every word: the frozenset justext builds from it is the one it builds from that tuple."""
    from justext.core import define_stoplist
    from trafilatura import external

    from extractors.worker import AllStoplists

    saved = external.JT_STOPLIST
    try:
        external.JT_STOPLIST = None
        merged = external.jt_stoplist_init()
    finally:
        external.JT_STOPLIST = saved
    ours = define_stoplist(AllStoplists())
    assert len(ours) > 100_000 and ours == define_stoplist(merged)
    assert {"и", "the", "və", "bir"} <= ours  # Russian, English, Azerbaijani, Turkish


_BIG_PAGE_PROBE = """
import sys
import extractors.worker as worker
if sys.argv[1] == "untrimmed":
    worker.TRIM_AFTER_BYTES = 1 << 40
worker.warm_up()
item = "<div class=story><p>Baku and Moscow discussed energy and trade on day {}.</p><a href=/a/{}>more</a></div>"
body = ("<html><body><article>" + "".join(item.format(i, i) for i in range(14000)) + "</article></body></html>")
body = body.encode()
def own() -> int:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssAnon"))
before = own()
outcome = worker.extract_page(body, "https://example.com/big", "text/html", None, None, False)
assert outcome.extracted is not None and len(body) >= 1 << 20
print((own() - before) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or worker_trim() is None, reason="glibc on Linux only")
def test_a_worker_hands_back_the_heap_a_large_page_used() -> None:
    # a ~1.9 MB page's parse trees left ~100 MB of free heap in the worker for the rest of the run
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    grew = {how: int(subprocess.run([sys.executable, "-c", _BIG_PAGE_PROBE, how], cwd=ROOT, env=env, check=True,
                                    capture_output=True, text=True, timeout=120).stdout)
            for how in ("trimmed", "untrimmed")}
    assert grew["untrimmed"] > 40 and grew["trimmed"] < grew["untrimmed"] / 3, grew


def test_cli_retag_dry_run_prints_the_stories_that_would_flip(tmp_path: Path) -> None:
    warehouse_with(tmp_path, [art(0, *POSITIVE)], [stale("a0", False, 0.2)]).close()
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "newsmon.cli", "retag", "--dry-run", "--since", "2026-01-01",
                          "--config", str(cfg)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "would start matching [az_ru] score 0.20 ->" in out.stdout and POSITIVE[0] in out.stdout
    assert "nothing written" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "newsmon.cli", "retag", "--since", "yesterday", "--config",
                          str(cfg)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "expected a duration like 30m" in bad.stderr and "yesterday" in bad.stderr
