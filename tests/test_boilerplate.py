"""Boilerplate reaching the tagger (issue 20): "Read more: <headline>" lines, related and latest-news lists
and teaser cards stay out of the extracted text, while the story's sentences (links in them included) stay in.

Real pages come from the shared corpus beside the checkout (tests.conftest.CORPUS; see each folder's
SOURCE.md): the Zyte article-extraction benchmark with its ground-truth bodies, fundus and newspaper4k
test pages. The edge cases of the rule are small pages built here.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import cache

import pytest

from extractors.articles import extract_article
from tests.conftest import CORPUS

AEB = CORPUS / "article-extraction-benchmark"
FUNDUS = CORPUS / "fundus-news" / "test_data"
NEWSPAPER = CORPUS / "newspaper4k-tests" / "data"

needs_corpus = pytest.mark.skipif(not AEB.is_dir() or not FUNDUS.is_dir() or not NEWSPAPER.is_dir(),
                                  reason="the shared page corpus is not beside the checkout")


def words(text: str) -> str:
    """Text as its words, lower case, one space apart: ground truth and output differ in quotes and spacing."""
    return " ".join(re.findall(r"\w+", text.casefold()))


@cache
def aeb_truth() -> dict[str, dict[str, str]]:
    truth: dict[str, dict[str, str]] = json.loads((AEB / "ground-truth.json").read_text(encoding="utf-8"))
    return truth


def aeb_page(prefix: str) -> tuple[str, str, bytes]:
    """(ground-truth body, url, page bytes) of the benchmark page whose id starts with `prefix`."""
    (key,) = [k for k in aeb_truth() if k.startswith(prefix)]
    item = aeb_truth()[key]
    return item["articleBody"], item["url"], gzip.open(AEB / "html" / f"{key}.html.gz").read()


@dataclass(frozen=True)
class AebCase:
    page: str
    gone: list[str]
    kept: list[str] = field(default_factory=list)
    # Ground-truth paragraphs trafilatura leaves out with or without the link-line filter (a lead set in
    # the page header, linked "Profile: ..." teasers, video titles); the filter must not add to them.
    missed: int = 0


AEB_CASES = [
    AebCase("360c732d", gone=["Read more: Alibaba poised to launch record-breaking $13.4bn Hong Kong listing",
                              "Tencent profit falls as Alibaba threat and economic woes weigh"]),
    AebCase("3c5bf8db", gone=["Related: From Big Bang to Present", "The 15 Weirdest Galaxies in Our Universe"]),
    AebCase("4a44ab3e", gone=["Also on rt.com", "threatened with sedition arrests as Bolivia purges"], missed=1),
    AebCase("ba4dfe2d", gone=["READ MORE: China plague outbreak confirmed"]),
    AebCase("c7e39ac4", gone=[], missed=3, kept=[
        # the sentence is mostly one link, but it runs into it in lower case: an article sentence
        "Australian-born Assange faces a charge of conspiracy to commit computer intrusion in the US."]),
    AebCase("7dfc3e35", gone=[], missed=2, kept=[
        # links at both ends, a sentence between them
        "James Van Der Beek has been eliminated from “Dancing with the Stars.”"]),
]


@needs_corpus
@pytest.mark.parametrize("case", AEB_CASES, ids=[c.page for c in AEB_CASES])
def test_benchmark_pages_lose_their_link_lines_and_keep_the_body(case: AebCase) -> None:
    truth, url, body = aeb_page(case.page)
    text = extract_article(body, url).text

    for line in case.gone:
        assert line not in text
    for sentence in case.kept:
        assert words(sentence) in words(text)
    paragraphs = [words(p) for p in truth.split("\n") if p.strip()]
    missing = [p for p in paragraphs if p not in words(text)]
    assert len(missing) <= case.missed, missing


@dataclass(frozen=True)
class PageCase:
    path: str
    url: str
    gone: list[str]
    kept: list[str]


PAGE_CASES = [
    PageCase("no/Nettavisen_2024_10_16.html.gz",
             "https://www.nettavisen.no/kjendis/david-eriksen-dukket-opp-da-tone-damli-fodte-darlig-timing/s/5-95-2070077",
             gone=["Les også", "Tone Damli ofret musikkarrieren for barna", "Selda Ekiz åpner opp om dramatisk fødsel"],
             kept=["I flere år har kjendismanager David Eriksen (57) vært manager for artist Tone Damli (36).",
                   "Men et taktskifte gjorde underverker, og 36-åringen forteller at mer hjelp fra familien og "
                   "oppfølgning fra helsestasjonen gjorde at hun kom ut av det."]),
    PageCase("de/BerlinerZeitung_2026_05_18.html.gz",  # teaser cards: <a><img><h3>headline</h3></a>
             "https://www.berliner-zeitung.de/article/es-geht-nicht-darum-ob-wir-kinder-wollen-oder-nicht-es-geht-um-unser-leben-10035612",
             gone=["Berliner Geburtenrate auf Rekordtief", "SPD-Nachwuchs will die Ehe abschaffen",
                   "Wie die GenZ in Berlin mit Zukunftsangst lebt"],
             kept=["Es ist Freitagabend, 17 Uhr. Die Cafeteria der Marienfelder Gemeinde",
                   "Zwischen diesen Sichtweisen entscheidet sich mehr als nur die Zukunft der Familie."]),
    PageCase("za/DailyMaverick_2025_05_22.html.gz",
             "https://www.dailymaverick.co.za/article/2025-05-03-icj-concludes-hearings-on-israel-aid-obligations-in-gaza/",
             gone=["Read more:", "GNU MPs’ ‘fact-finding’ trip to Israel likely to deepen political tensions"],
             kept=["The United Nations’ (UN) top court on Friday, 2 May, heard a final day of arguments on Israel’s "
                   "obligations as an occupying power"]),
    PageCase("za/EyethuNews_2025_11_25.html.gz",  # a label in capitals, then "|", then the headline
             "https://eyethunews.co.za/119166/isihluku-kubulawa-isaguga-embali/",
             gone=["FUNDA OLUNYE UDABA LAPHA", "Kuboshwe abahlanu besolwa ngokugwaza umfundi"],
             kept=["Okhulumela amaphoyisa KwaZulu Natal, uColonel Robert Netshiunda uqinisekisile ukuboshwa "
                   "komsolwa."]),
]


@needs_corpus
@pytest.mark.parametrize("case", PAGE_CASES, ids=[c.path.split("/")[1].split("_")[0] for c in PAGE_CASES])
def test_fundus_pages_lose_read_more_lines_and_teasers(case: PageCase) -> None:
    text = extract_article(gzip.open(FUNDUS / case.path).read(), case.url).text

    for line in case.gone:
        assert line not in text
    for sentence in case.kept:
        assert words(sentence) in words(text)


@needs_corpus
def test_a_headline_list_at_the_end_goes_with_its_items() -> None:
    """TIME's "More Must-Reads": list items that are headlines split over links and plain spans."""
    text = extract_article((NEWSPAPER / "html" / "time_001.html").read_bytes(), "https://time.com/6330957/").text

    for line in ("Volodymyr Zelensky’s Struggle to Keep Ukraine in the Fight", "Is Using the Snooze Button",
                 "Read more: A Controversial Technology Is Creating an Unprecedented Rift"):
        assert line not in text
    for sentence in ("According to the report, earth will pass 1.5°C of cumulative warming this decade",
                     "“Much of Jim’s analysis is credible,” writes Michael Oppenheimer"):
        assert words(sentence) in words(text)


@needs_corpus
def test_related_links_between_line_breaks_go_in_thai() -> None:
    """<p><strong>Related</strong><br><a>headline</a><br><a>headline</a></p> in a script without spaces."""
    text = extract_article((NEWSPAPER / "html" / "thai_article.html").read_bytes(), "https://prachatai.com/x").text

    assert "ลืออุ้ม อ.สุรชัย ผู้ลี้ภัยหายจากที่พัก 12 วันแล้ว" not in text
    assert words("ภูชนะ (นามแฝง) เป็นคนใกล้ชิดของนายสุรชัย ด่านวัฒนานุสรณ์") in words(text)


# --- the rule's edges, on pages built here ---

STORY = [
    "The deputy energy minister of Azerbaijan met a delegation of the Russian energy ministry in Baku on "
    "Tuesday to discuss electricity trade and the synchronisation of the two power grids.",
    "Officials said the sides agreed to prepare a list of joint projects in solar and wind power before a "
    "business forum of energy companies from both countries planned for the autumn.",
    "The minister invited Russian companies to invest in green hydrogen production and said the government "
    "would offer land and grid connections to the first investors on favourable terms.",
]


def page(article: str, aside: str = "") -> bytes:
    return f"""<!DOCTYPE html><html><head><title>Energy talks in Baku</title></head><body>
<header><a href="/">Home</a> <a href="/energy">Energy</a></header>
<article><h1>Energy talks in Baku</h1>{article}</article>{aside}
<footer><p>All rights reserved.</p></footer></body></html>""".encode()


def test_read_more_lines_go_and_sentences_with_links_stay() -> None:
    article = f"""
<p>{STORY[0]}</p>
<p><strong>Read more:</strong> <a href="/a">Lukoil raises its stake in the Shah Deniz gas field</a></p>
<p>{STORY[1]}</p>
<p>The minister told <a href="/b">Russian reporters on the sidelines of the meeting</a> that talks would go on.</p>
<p>The statement said <a href="/c">Russia Will Build The Plant Near Sumgait</a>.</p>
<p>Also read: <a href="/d">Rosatom and Azerbaijan sign nuclear medicine memorandum</a></p>
<p>{STORY[2]}</p>"""
    text = extract_article(page(article), "https://news.example/energy/talks").text

    assert "Lukoil" not in text and "Read more" not in text
    assert "Rosatom" not in text and "Also read" not in text
    for paragraph in STORY:
        assert paragraph in text
    # words after the link, and a sentence (no label) leading into it: both stay
    assert "The minister told Russian reporters on the sidelines of the meeting that talks would go on." in text
    assert "The statement said Russia Will Build The Plant Near Sumgait." in text


def test_teaser_cards_go_with_their_heading_while_a_contents_list_leaves_subheadings() -> None:
    article = f"""
<ul class="toc"><li><a href="#grid">Grid links</a></li><li><a href="#hydrogen">Hydrogen</a></li></ul>
<h2 id="grid">Grid links</h2>
<p>{STORY[0]}</p>
<p>{STORY[1]}</p>
<h3>Related</h3>
<div class="more"><a href="/x"><img src="x.jpg"><h4>Gazprom seeks new gas transit route across the Caspian</h4>
<p>The company is studying a pipeline under the sea to Turkmenistan and expects a decision next year.</p></a>
<a href="/y"><img src="y.jpg"><h4>Baku and Moscow expand trade settlements in manat and rouble</h4>
<p>Banks of both countries will clear payments directly from the first of the month on.</p></a></div>
<h2 id="hydrogen">Hydrogen</h2>
<p>{STORY[2]}</p>"""
    text = extract_article(page(article), "https://news.example/energy/talks").text

    for gone in ("Gazprom", "Turkmenistan", "manat and rouble", "clear payments", "Related"):
        assert gone not in text
    lines = text.split("\n")
    assert "Grid links" in lines and "Hydrogen" in lines  # the contents list links them; they stay as subheadings
    for paragraph in STORY:
        assert paragraph in lines


def test_an_unclosed_link_does_not_take_the_article_with_it() -> None:
    """The parser keeps an unclosed <a> open over the paragraphs after it: they are not link text."""
    article = 'By <a href="/authors/jane">Jane Doe ' + "".join(f"<p>{p}</p>" for p in STORY)
    text = extract_article(page(article), "https://news.example/energy/talks").text

    for paragraph in STORY:
        assert paragraph in text
