"""Progress of the current run, for a terminal to show (the CLI installs a reporter; serve does not)."""

from __future__ import annotations

from collections.abc import Callable

Reporter = Callable[[str, int, int], None]  # (stage, done, total)
_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter


def report(stage: str, done: int, total: int) -> None:
    if _reporter is not None:
        _reporter(stage, done, total)


def counter(stage: str, total: int) -> Callable[[], None]:
    """A callable that advances `stage` by one each call (for per-page progress)."""
    done = 0
    report(stage, 0, total)

    def tick() -> None:
        nonlocal done
        done += 1
        report(stage, done, total)
    return tick
