"""Page metadata quality and cost: trafilatura's metadata pass vs newsmon's lean one (extractors.pagemeta).

    python -m bench.metadata_quality [--fundus DIR] [--corpus DIR] [--skip-speed]

1. Quality on the fundus test pages (``fundus-news/test_data``, see its SOURCE.md): each publisher's
   ``<Publisher>.json`` holds one expected extraction per parser version (V1, V1_1, V2, ...), checked by the
   fundus maintainers; sorted in natural order they pair with the publisher's pages sorted by date. All
   258 versions are scored, then the 181 first versions (V1) alone. Per extractor:
   - title: share of pages whose title equals the expected one after whitespace normalisation (runs of
     white space collapsed, invisible format characters such as soft hyphens and zero-width spaces dropped);
   - author recall: share of the expected author names found (case-insensitive) in the author string;
   - author precision: share of the "; "-separated names given that contain, or are contained in, an
     expected name;
   - date: share of pages whose publication day equals the expected one (its local or its UTC day);
   - site name: share of pages with a site name at all (fundus has no expected site name).
2. Cost: CPU ms per page of each metadata pass alone (time.process_time, one process) over the same pages
   and over every corpus page the end-to-end bench serves (bench.site.corpus_pages).

Both passes see the tree extract_article builds (decoded, parsed, link blocks pruned) and no feed date.
"trafilatura" is what extract_article did before: trafilatura's ``extract_metadata`` (as run by
``bare_extraction(with_metadata=True)``) for title, author and site name, and for the date the page's
meta tags or JSON-LD, else htmldate's day as trafilatura found it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from lxml.html import HtmlElement
from trafilatura.metadata import extract_metadata

from bench.site import corpus_pages, find_corpus
from extractors.articles import _parse
from extractors.encoding import decode_html
from extractors.linkblocks import prune_link_blocks
from extractors.metadata import date_params, page_published, published_at
from extractors.pagemeta import json_ld_objects, page_meta
from newsmon.errors import ExtractionError

FUNDUS_DIR = Path("/work/shared/corpus/fundus-news/test_data")
SPEED_URL = "https://news.example/world/story"


@dataclass(frozen=True)
class Case:
    name: str
    version: str
    url: str
    title: str
    authors: list[str]
    published: str
    body: bytes


@dataclass(frozen=True)
class Meta:
    title: str | None
    author: str | None
    site_name: str | None
    published: datetime | None


# --- the two metadata passes (same tree, no feed date) ---


def trafilatura_meta(tree: HtmlElement, url: str) -> Meta:
    document = extract_metadata(tree, url, date_params(None))
    day = datetime.fromisoformat(document.date).replace(tzinfo=UTC) if document.date else None
    return Meta(_squeeze(document.title), _squeeze(document.author), _squeeze(document.sitename),
                page_published(tree, json_ld_objects(tree)) or day)


def newsmon_meta(tree: HtmlElement, url: str) -> Meta:
    json_ld = json_ld_objects(tree)
    meta = page_meta(tree, json_ld)
    return Meta(meta.title, meta.author, meta.site_name, published_at(tree, json_ld, url, None)[0])


RUNNERS: dict[str, Callable[[HtmlElement, str], Meta]] = {
    "trafilatura extract_metadata (before)": trafilatura_meta,
    "newsmon extractors.pagemeta": newsmon_meta,
}


def prepared_tree(body: bytes, url: str) -> HtmlElement:
    """The tree extract_article hands to its metadata pass."""
    tree = _parse(decode_html(body, None).text, url)
    prune_link_blocks(tree)
    return tree


# --- fundus ground truth ---


def load_fundus(folder: Path) -> list[Case]:
    cases = []
    for expected in sorted(folder.glob("*/*.json")):
        info = json.loads((expected.parent / "meta.info").read_text(encoding="utf-8"))
        versions = json.loads(expected.read_text(encoding="utf-8"))
        pattern = re.compile(rf"^{re.escape(expected.stem)}_\d{{4}}_\d{{2}}_\d{{2}}\.html\.gz$")
        pages = sorted(p for p in expected.parent.iterdir() if pattern.match(p.name))
        keys = sorted(versions, key=lambda key: [int(n) for n in re.findall(r"\d+", key)])
        if len(keys) != len(pages):
            raise SystemExit(f"{expected}: {len(keys)} versions for {len(pages)} pages")
        for key, path in zip(keys, pages, strict=True):
            truth = versions[key]
            cases.append(Case(f"{expected.parent.name}/{path.name}", key, info[path.name]["url"], truth["title"],
                              truth.get("authors") or [], truth["publishing_date"], gzip.open(path).read()))
    return cases


# --- scoring ---


@dataclass
class Tally:
    pages: int = 0
    titles: int = 0
    names_expected: int = 0
    names_found: int = 0
    names_given: int = 0
    names_right: int = 0
    dates: int = 0
    sites: int = 0

    def add(self, case: Case, meta: Meta) -> None:
        self.pages += 1
        self.titles += _normal(meta.title) == _normal(case.title)
        author = _normal(meta.author).casefold()
        expected = [_normal(name).casefold() for name in case.authors if _normal(name)]
        given = [_normal(name).casefold() for name in (meta.author or "").split("; ") if _normal(name)]
        self.names_expected += len(expected)
        self.names_found += sum(name in author for name in expected)
        self.names_given += len(given)
        self.names_right += sum(any(g in e or e in g for e in expected) for g in given)
        self.dates += meta.published is not None and meta.published.date() in expected_days(case.published)
        self.sites += meta.site_name is not None

    def row(self) -> tuple[float, ...]:
        return (self.titles / self.pages, _ratio(self.names_found, self.names_expected),
                _ratio(self.names_right, self.names_given), self.dates / self.pages, self.sites / self.pages)


def expected_days(published: str) -> set[date]:
    moment = datetime.fromisoformat(published)
    return {moment.date(), moment.astimezone(UTC).date()} if moment.tzinfo else {moment.date()}


def _normal(text: str | None) -> str:
    """White space collapsed; invisible format characters (soft hyphen, zero-width space) dropped."""
    return " ".join("".join(c for c in text or "" if unicodedata.category(c) != "Cf").split())


def _squeeze(text: str | None) -> str | None:
    return " ".join(text.split()) or None if text else None


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# --- running ---


def score_fundus(cases: list[Case]) -> tuple[dict[str, Tally], dict[str, Tally], dict[str, float]]:
    """Tallies over all versions and over V1 alone, and CPU ms per page of each pass."""
    every = {name: Tally() for name in RUNNERS}
    first = {name: Tally() for name in RUNNERS}
    seconds = dict.fromkeys(RUNNERS, 0.0)
    for case in cases:
        tree = prepared_tree(case.body, case.url)
        for name, runner in RUNNERS.items():
            start = time.process_time()
            meta = runner(tree, case.url)
            seconds[name] += time.process_time() - start
            every[name].add(case, meta)
            if case.version == "V1":
                first[name].add(case, meta)
    return every, first, {name: 1000 * s / len(cases) for name, s in seconds.items()}


def corpus_speed(pages: Sequence[bytes]) -> dict[str, float]:
    """CPU ms per page of each metadata pass over the end-to-end bench's corpus pages."""
    seconds = dict.fromkeys(RUNNERS, 0.0)
    for body in pages:
        try:
            tree = prepared_tree(body, SPEED_URL)
        except ExtractionError:  # not parseable as HTML: extract_article stops before metadata too
            continue
        for name, runner in RUNNERS.items():
            start = time.process_time()
            runner(tree, SPEED_URL)
            seconds[name] += time.process_time() - start
    return {name: 1000 * s / len(pages) for name, s in seconds.items()}


def print_table(title: str, tallies: dict[str, Tally], ms: dict[str, float] | None = None) -> None:
    print(f"\n{title}")
    print(f"{'metadata pass':<40} {'title':>6} {'au.R':>6} {'au.P':>6} {'date':>6} {'site':>6}"
          + (f" {'ms/page':>8}" if ms else ""))
    for name, tally in tallies.items():
        cells = " ".join(f"{value:6.3f}" for value in tally.row())
        print(f"{name:<40} {cells}" + (f" {ms[name]:8.2f}" if ms else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fundus", type=Path, default=FUNDUS_DIR)
    parser.add_argument("--corpus", type=Path, default=None, help="the shared corpus (default: found as bench.site)")
    parser.add_argument("--skip-speed", action="store_true", help="skip the timing over all corpus pages")
    args = parser.parse_args(argv)

    cases = load_fundus(args.fundus)
    every, first, ms = score_fundus(cases)
    versions = sum(case.version == "V1" for case in cases)
    print_table(f"fundus: {len(cases)} pages (every parser version); share of pages / names", every, ms)
    print_table(f"fundus: {versions} pages (first parser version, V1, only)", first)
    if not args.skip_speed:
        pages = corpus_pages(args.corpus or find_corpus())
        speed = corpus_speed(pages)
        print(f"\nCPU ms per page over the end-to-end bench's {len(pages)} corpus pages (one process):")
        for name, value in speed.items():
            print(f"{name:<40} {value:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
