"""Tagging stage: multilingual watchlists (rules as TOML data) applied to article title and text.

`default_watchlist()` is the shipped Azerbaijan-Russia watchlist (``data/az_ru.toml``);
`load_watchlists()` adds the analyst's own rule files after it. The rule format is documented in
`newsmon.tagging.rules` and at the top of ``data/az_ru.toml``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from newsmon.errors import RulesError
from newsmon.records import Evidence
from newsmon.tagging.tagger import TagResult, Watchlist, parse_watchlist

__all__ = ["Evidence", "TagResult", "Watchlist", "default_watchlist", "load_watchlists", "parse_watchlist"]

_DEFAULT = "az_ru.toml"


@lru_cache(maxsize=1)
def default_watchlist() -> Watchlist:
    """The shipped Azerbaijan-Russia watchlist."""
    text = resources.files("newsmon.tagging").joinpath("data", _DEFAULT).read_text(encoding="utf-8")
    return parse_watchlist(text, _DEFAULT)


def load_watchlists(extra: Sequence[pathlib.Path] = ()) -> tuple[Watchlist, ...]:
    """The default watchlist first, then one per extra rules file, in order."""
    return (default_watchlist(), *(_load(pathlib.Path(p)) for p in extra))


def _load(path: pathlib.Path) -> Watchlist:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read rules file ({exc}); fix the path in [tagging] rules",
                         url=str(path)) from exc
    return parse_watchlist(text, str(path))
