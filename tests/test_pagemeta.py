"""extractors.pagemeta (title, authors, site name) and extractors.metadata dates, on small real-style pages."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml.html import HtmlElement
from trafilatura import load_html

from extractors.language import LANGUAGES
from extractors.metadata import published_at
from extractors.pagemeta import PageMeta, json_ld_objects, page_meta

URL = "https://caspiandaily.example/energy/2024/05/14/socar-gazprom-deal"


def page(head: str = "", body: str = "", *json_ld: object) -> HtmlElement:
    scripts = "".join(f'<script type="application/ld+json">{json.dumps(item)}</script>' for item in json_ld)
    tree = load_html(f"<!DOCTYPE html><html><head>{head}{scripts}</head><body>{body}</body></html>")
    assert tree is not None
    return tree


def meta(tree: HtmlElement) -> PageMeta:
    return page_meta(tree, json_ld_objects(tree))


# --- JSON-LD ---

GRAPH = {
    "@context": "https://schema.org",
    "@graph": [
        {"@type": "WebSite", "@id": "https://caspiandaily.example/#website", "name": "Caspian Daily"},
        {
            "@type": "NewsArticle",
            "headline": "SOCAR and Gazprom sign gas supply deal",
            "datePublished": "2024-05-14T11:20:00+04:00",
            "author": [
                {"@id": "https://caspiandaily.example/#/person/leyla"},
                {"@type": "Person", "givenName": "Rauf", "familyName": "Mammadov"},
                "Leyla Aliyeva",
            ],
            "publisher": {"@type": "NewsMediaOrganization", "name": "Caspian Daily"},
        },
        {"@type": "Person", "@id": "https://caspiandaily.example/#/person/leyla", "name": "Leyla Aliyeva"},
    ],
}


def test_json_ld_graph_gives_headline_authors_and_publisher() -> None:
    tree = page("<title>SOCAR, Gazprom sign deal | Caspian Daily</title>", "", GRAPH)

    # the @id reference resolves into the graph; the repeated name is kept once
    assert meta(tree) == PageMeta(
        title="SOCAR and Gazprom sign gas supply deal",
        author="Leyla Aliyeva; Rauf Mammadov",
        site_name="Caspian Daily",
    )


def test_json_ld_entities_are_decoded_and_broken_blocks_skipped() -> None:
    article = {
        "@type": "Article",
        "headline": "Baku &amp; Moscow: &quot;new&quot; gas talks",
        "author": "Ilham Q&#601;s&#601;nov",
    }
    tree = page('<script type="application/ld+json">{"@type": "NewsArticle", "headline": </script>', "", article)

    assert meta(tree).title == 'Baku & Moscow: "new" gas talks'
    assert meta(tree).author == "Ilham Qəsənov"


def test_headline_of_a_non_article_object_is_not_the_title() -> None:
    site = {"@type": "WebSite", "headline": "Caspian Daily - news from Baku"}
    tree = page('<meta property="og:title" content="SOCAR and Gazprom sign gas supply deal">', "", site)

    assert meta(tree).title == "SOCAR and Gazprom sign gas supply deal"


# --- title order ---


@pytest.mark.parametrize(
    ("head", "body", "title"),
    [
        (
            '<meta name="twitter:title" content="SOCAR, Gazprom sign deal">'
            '<meta property="og:title" content="SOCAR and Gazprom sign a gas supply deal">',
            "<h1>Gas deal signed</h1>",
            "SOCAR, Gazprom sign deal",
        ),
        ('<meta property="og:title" content="SOCAR and Gazprom sign a gas supply deal">', "<h1>Gas deal signed</h1>",
         "SOCAR and Gazprom sign a gas supply deal"),
        ("<title>Gas deal | Caspian Daily</title>", "<h1> </h1><h1>Gas deal\n signed</h1>", "Gas deal signed"),
        ("<title>Gas deal signed | Caspian Daily</title>", "", "Gas deal signed | Caspian Daily"),
    ],
)
def test_title_order_json_ld_twitter_og_h1_then_title(head: str, body: str, title: str) -> None:
    assert meta(page(head, body)).title == title


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Gas deal signed | Caspian Daily", "Gas deal signed"),
        ("Gas deal signed - caspian daily", "Gas deal signed"),
        ("Caspian Daily | Gas deal signed", "Gas deal signed"),
        ("Gas deal - what it means | Energy", "Gas deal - what it means | Energy"),  # not the site's name
    ],
)
def test_site_name_is_cut_from_the_title(title: str, expected: str) -> None:
    tree = page(f'<meta property="og:site_name" content="Caspian Daily"><title>{title}</title>')

    assert meta(tree).title == expected


# --- authors ---


def test_url_valued_article_author_is_rejected() -> None:
    head = (
        '<meta property="article:author" content="https://www.facebook.com/caspiandaily">'
        '<meta property="article:author" content="Rauf Mammadov">'
    )

    assert meta(page(head)).author == "Rauf Mammadov"


def test_urls_emails_and_slugs_are_not_names_and_the_next_source_is_tried() -> None:
    head = (
        '<meta name="author" content="r.mammadov@caspiandaily.example">'
        '<meta name="parsely-author" content="rauf-mammadov">'
    )
    body = '<p class="byline">By <a rel="author" href="/authors/rauf">Rauf Mammadov</a></p>'

    assert meta(page(head, body)).author == "Rauf Mammadov"


@pytest.mark.parametrize(
    ("body", "author"),
    [
        ('<div class="article-author">By Leyla Aliyeva, 14 May 2024, 11:20</div>', "Leyla Aliyeva"),
        ('<span class="byline">Автор: Лейла Алиева</span>', "Лейла Алиева"),
        ('<div itemprop="author" itemscope><meta itemprop="name" content="Leyla Aliyeva"></div>', "Leyla Aliyeva"),
        # the photographer of an image is not the article's author; a comment form's name field neither
        ('<figure itemscope itemtype="https://schema.org/ImageObject"><span itemprop="author">Aziz Karimov'
         '</span></figure><form><label class="comment-author">Name (required)</label></form>', None),
    ],
)
def test_author_elements(body: str, author: str | None) -> None:
    assert meta(page("", body)).author == author


def test_dublin_core_family_name_first_is_turned_round() -> None:
    head = '<meta name="dc.creator" content="Aliyeva, Leyla"><meta name="dc.creator" content="Mammadov, Rauf">'

    assert meta(page(head)).author == "Leyla Aliyeva; Rauf Mammadov"


def test_json_ld_authors_win_over_meta_authors() -> None:
    article = {"@type": "NewsArticle", "author": {"@type": "Person", "name": "Leyla Aliyeva"}}

    assert meta(page('<meta name="author" content="Caspian Daily">', "", article)).author == "Leyla Aliyeva"


# --- site name ---


@pytest.mark.parametrize(
    ("head", "json_ld", "site"),
    [
        ('<meta property="og:site_name" content="Caspian Daily">', {"publisher": {"name": "CD"}}, "Caspian Daily"),
        ('<meta property="og:site_name" content="https://caspiandaily.example">', {"publisher": {"name": "CD"}}, "CD"),
        ('<meta name="application-name" content="Caspian Daily">', {}, "Caspian Daily"),
        ("", {}, None),
    ],
)
def test_site_name(head: str, json_ld: dict[str, object], site: str | None) -> None:
    assert meta(page(head, "", json_ld)).site_name == site


# --- publication time ---


def test_page_date_in_a_json_ld_graph_wins_over_the_url_date() -> None:
    tree = page("", "", GRAPH)

    published, note = published_at(tree, json_ld_objects(tree), URL.replace("2024/05/14", "2024/05/01"), None)

    assert (published, note) == (datetime(2024, 5, 14, 7, 20, tzinfo=UTC), None)


def test_without_a_page_date_htmldate_reads_the_url() -> None:
    tree = page("<title>Gas deal</title>", "<p>SOCAR and Gazprom signed a gas supply deal.</p>")

    published, note = published_at(tree, json_ld_objects(tree), URL, None)

    assert (published, note) == (datetime(2024, 5, 14, tzinfo=UTC), None)


@pytest.mark.parametrize(("line", "day"), [
    ("14 мая 2024", datetime(2024, 5, 14, tzinfo=UTC)),
    ("Dərc olunub: 14 may 2024", datetime(2024, 5, 14, tzinfo=UTC)),
    ("Veröffentlicht am 3. März 2023", datetime(2023, 3, 3, tzinfo=UTC)),
])
def test_a_date_written_in_words_in_the_page_text_is_read(line: str, day: datetime) -> None:
    tree = page("<title>Gas deal</title>", f"<p>{line}</p><p>SOCAR and Gazprom signed a gas supply deal.</p>")

    assert published_at(tree, [], "https://caspiandaily.example/energy/socar-gazprom-deal", None) == (day, None)


def test_dates_are_read_in_newsmon_s_languages_only_so_an_unreadable_one_loads_no_other_locale() -> None:
    # htmldate's own parser would load and compile all of dateparser's 205 locales for such a string (in a
    # fresh process: ~3.7 s and ~40 MB), in every extraction worker
    code = (
        "from extractors.metadata import published_at\n"
        "from trafilatura import load_html\n"
        "from dateparser import DateDataParser\n"
        "tree = load_html('<html><body><p>Posted 31 Zzyzx 2021, 10 Qwrt 2020</p><p>Gas deal.</p></body></html>')\n"
        "published_at(tree, [], 'https://example.org/a/gas-deal', None)\n"
        "print(' '.join(sorted({name.split('-')[0] for name in DateDataParser.locale_loader._loaded_locales})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout

    loaded = set(out.split())  # dateparser was asked (it loaded locales), in newsmon's languages only
    assert {"ru", "az", "en"} <= loaded <= set(LANGUAGES)
