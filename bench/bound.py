"""The extraction bound: `trafilatura.extract` alone over the site's pages on every core, no I/O at all.

No pipeline that extracts these pages with trafilatura on this machine can finish faster than this (short
of skipping pages); newsmon's efficiency is this time divided by its cycle time. The pool is started and
warm before the clock starts (a floor, not a fair race), and pages go to workers as bytes, in chunks.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import trafilatura

from flows.usage import tree_cpu_seconds


def _extract(body: bytes) -> int:
    return len(trafilatura.extract(body) or "")


def extraction_bound(pages: list[bytes], workers: int | None = None) -> dict[str, float]:
    """Wall and CPU seconds of extracting every page once on `workers` processes (default: all cores)."""
    workers = workers or os.cpu_count() or 1
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        list(pool.map(_extract, pages[:workers * 2]))  # every worker up, trafilatura imported
        cpu0, start = tree_cpu_seconds(), time.perf_counter()
        list(pool.map(_extract, pages, chunksize=4))
        wall = time.perf_counter() - start
        cpu = tree_cpu_seconds() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "pages": len(pages), "workers": workers}
