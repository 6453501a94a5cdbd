"""Link pruning (pure): headline lists, menus and "Latest news" columns leave the tree before extraction, and
"Read more: <headline>" lines leave the extracted text, so other stories' headlines never reach the tagger."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree
from lxml.html import HtmlElement

LINK_BLOCK_MIN_LINKS = 3
LINK_BLOCK_MAX_PLAIN_WORDS = 25
# A link line has at most this many words outside its links, and its links hold at least
# LINK_LINE_MIN_LINK_WORDS words unless the line is nothing but its links.
LINK_LINE_MAX_PLAIN_WORDS = 6
LINK_LINE_MIN_LINK_WORDS = 3
# A list whose items all hold a link, none longer than this, is a list of headlines.
HEADLINE_MAX_WORDS = 20
# A link longer than this (a headline and its teaser fit) is broken markup, not a link.
LINK_MAX_WORDS = 80
_LINK_BLOCK_TAGS = ("ul", "ol", "div", "section", "aside", "nav", "header", "footer", "p", "dl")
_LINK_LINE_TAGS = ("p", "li", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "div")
_SUBHEADINGS = frozenset({"h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure", "footer", "form",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td",
    "th", "tr", "ul",
})
_NO_TEXT_TAGS = frozenset({"script", "style", "svg"})
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD_CHAR = re.compile(r"\w")


class LinkStats:
    """(words, words inside links, links) of every element and whether it holds a block, counted once.

    Taken before prune_link_blocks runs and read by it and by link_lines afterwards: counts of elements
    that held a pruned block are then stale, never those of a line (a line holds no block).
    """

    def __init__(self, tree: HtmlElement) -> None:
        self.counts: dict[HtmlElement, tuple[int, int, int]] = {}
        self.holds_block: set[HtmlElement] = set()
        blockish: set[HtmlElement] = set()  # blocks and elements holding one
        for element in reversed(list(tree.iter(etree.Element))):  # children before parents, no recursion
            tag = element.tag
            if tag in _NO_TEXT_TAGS and _holds_no_text(element):
                self.counts[element] = (0, 0, 0)
                continue
            words, link_words, links, holds = len((element.text or "").split()), 0, 0, False
            for child in element:
                child_words, child_links, child_count = self.counts.get(child, (0, 0, 0))
                words += child_words + len((child.tail or "").split())
                link_words += child_links
                links += child_count
                holds = holds or child in blockish
            if holds:
                self.holds_block.add(element)
                blockish.add(element)
            elif tag in _BLOCKS:
                blockish.add(element)
            if tag == "a":
                link_words, links = words, links + 1
            self.counts[element] = (words, link_words, links)


def prune_link_blocks(tree: HtmlElement, stats: LinkStats | None = None) -> int:
    """Remove headline lists, menus and other blocks made of links (and the heading above them).

    trafilatura drops <aside> and blocks with telling class names, but a "Latest news" column built from
    plain <div>s can end up in the text, and its headlines then read as if the article said them. A block
    goes when it holds at least LINK_BLOCK_MIN_LINKS links, most of its words are link text and it has
    fewer than LINK_BLOCK_MAX_PLAIN_WORDS words outside links, so article paragraphs are never touched.
    Returns how many blocks were removed.
    """
    counts = (stats or LinkStats(tree)).counts
    marked = [el for el in tree.iter(*_LINK_BLOCK_TAGS) if _is_link_block(counts.get(el))]
    marked_set = set(marked)
    outermost = [el for el in marked if not any(a in marked_set for a in el.iterancestors())]
    for element in outermost:
        heading = _heading_above(element)
        if heading is not None:
            heading.drop_tree()
        element.drop_tree()
    return len(outermost)


@dataclass(frozen=True)
class LinkLines:
    """The page's link lines (whitespace squeezed) and the headings of boxes made only of them."""

    texts: frozenset[str]
    headings: frozenset[str]

    def drop_from(self, text: str) -> str:
        """`text` (a block a line, list items as "- item", quotes as "> quote") without the link lines and
        those headings."""
        if not self.texts:
            return text
        lines = text.split("\n")
        keys = [_squeeze(line.removeprefix("- ").removeprefix("> ")) for line in lines]
        drop = [key in self.texts for key in keys]
        for i, key in enumerate(keys):  # a heading goes only when a link line follows it
            if key in self.headings and any(drop[i + 1 : i + 2]):
                drop[i] = True
        return "\n".join(line for line, gone in zip(lines, drop, strict=True) if not gone)


def link_lines(tree: HtmlElement, stats: LinkStats) -> LinkLines:
    """The lines of the page that are links, perhaps behind a short label, to be dropped from the text.

    A line is a paragraph, list item, subheading or <div> holding no other block, or a link on its own. It
    is a link line when
    - it sits inside a link of at most LINK_MAX_WORDS words (a teaser card: <a><img><h3>headline</h3>
      <p>teaser</p></a>; a longer "link" is an unclosed <a> that swallowed the article), or
    - it is an item of a headline list (every item a link-bearing line of at most HEADLINE_MAX_WORDS
      words, a third of the list's words link text: "More must-reads"), or
    - nothing but punctuation follows its last link, at most LINK_LINE_MAX_PLAIN_WORDS words precede its
      links (one at most between them), and a label before the first link is set apart (its own element,
      or ending in ":", "|", ">", ...): "Read more: <headline>", "Les også: ...", "[Related: ...]", a
      lone menu entry.
    An article sentence with a link in it has words after the link ("... <a>said on Monday</a> in Baku.")
    or runs into it ("Assange faces <a>a charge of</a>...") and stays. A subheading without a link is never
    dropped, even when a table of contents links to it. When a list or box holds nothing but link lines,
    the short subheading above it ("Related", "More from ...") is noted too.

    The lines leave trafilatura's output, not the tree: taking the links out of a "Related" box first
    lowers its link density, and trafilatura then keeps the teasers left in it.
    """
    texts: set[str] = set()
    headings: set[str] = set()
    subheadings: set[str] = set()
    left: dict[HtmlElement, int] = {}  # words of an element not yet accounted for by its link lines
    # Links of teaser size only: an unclosed <a> swallows the rest of the page (the parser keeps it open).
    links = [link for link in tree.iter("a") if stats.counts.get(link, (0, 0, 0))[0] <= LINK_MAX_WORDS]
    inside_links = {inner for link in links for inner in link.iter() if inner is not link}
    listed = {item for block in tree.iter("ul", "ol") for item in _headline_list(block, stats)}
    for element in tree.iter(*_LINK_LINE_TAGS):
        stat = stats.counts.get(element)
        if stat is None or not stat[0]:
            continue
        teaser = element in listed or element in inside_links  # a headline list's item, <a><h3>headline</h3></a>
        if not teaser and not stat[2]:
            if element.tag in _SUBHEADINGS:
                subheadings.add(_squeeze(element.text_content()))
            continue
        if (not teaser and stat[0] - stat[1] > LINK_LINE_MAX_PLAIN_WORDS) or element in stats.holds_block:
            continue
        if teaser:
            text: str | None = _squeeze(element.text_content())
        elif stat[0] == stat[1]:  # nothing but link text; one link: its text comes in with the links below
            text = "" if stat[2] == 1 else _squeeze(element.text_content())
        else:
            text = _link_line_text(element)
        if text is None:
            continue
        texts.add(text)
        emptied, parent = element, element.getparent()
        while parent is not None and parent.getparent() is not None:
            left[parent] = left.get(parent, stats.counts.get(parent, (0, 0, 0))[0]) - stats.counts[emptied][0]
            if left[parent] > 0:
                break
            emptied, parent = parent, parent.getparent()
        heading = _heading_above(emptied) if emptied is not element else None
        if heading is not None:
            headings.add(_squeeze(heading.text_content()))
    # A link holding a whole line itself (<a><span>Also on ...</span><span>headline</span></a>).
    texts.update(_squeeze(link.text_content()) for link in links)
    texts.discard("")
    texts -= subheadings
    return LinkLines(frozenset(texts), frozenset(headings))


def _headline_list(block: HtmlElement, stats: LinkStats) -> list[HtmlElement]:
    """The items of a list of headlines ("More must-reads": every item a short line holding a link, a third
    of the list's words link text), else nothing."""
    words, link_words, links = stats.counts.get(block, (0, 0, 0))
    if links < 2 or 3 * link_words < words:
        return []
    items = [item for item in block if item.tag == "li" and stats.counts.get(item, (0, 0, 0))[0]]
    if len(items) < 2 or not all(
        stats.counts[item][2] and stats.counts[item][0] <= HEADLINE_MAX_WORDS and item not in stats.holds_block
        for item in items
    ):
        return []
    return items


def _link_line_text(element: HtmlElement) -> str | None:
    """The squeezed text of `element` if it is a link line, else None."""
    parts = list(_segments(element, in_link=False, nested=False))
    linked = [i for i, (text, in_link, _) in enumerate(parts) if in_link and _WORD_CHAR.search(text)]
    if not linked or _WORD_CHAR.search("".join(t for t, _, _ in parts[linked[-1] + 1 :])):
        return None
    link_words = _words("".join(t for t, in_link, _ in parts if in_link))
    plain_words = _words("".join(t for t, in_link, _ in parts if not in_link))
    if plain_words > LINK_LINE_MAX_PLAIN_WORDS or (plain_words and link_words < LINK_LINE_MIN_LINK_WORDS):
        return None
    if _words("".join(t for t, in_link, _ in parts[linked[0] : linked[-1]] if not in_link)) > 1:
        return None  # "<a>Jane Doe</a> has been eliminated from <a>the show</a>.": a sentence between links
    label = parts[: linked[0]]
    if any(_WORD_CHAR.search(t) for t, _, _ in label):
        first = next((c for c in parts[linked[0]][0] if c.isalpha()), "")
        if first.islower():
            return None  # a sentence running into its link
        direct = "".join(t for t, _, nested in label if not nested).strip()
        if direct and (_WORD_CHAR.match(direct[-1]) or direct[-1] in ".!?,;"):
            return None  # "The minister said <a>...</a>": no label, a sentence
    return _squeeze("".join(t for t, _, _ in parts)) or None


def _segments(element: HtmlElement, *, in_link: bool, nested: bool) -> Iterator[tuple[str, bool, bool]]:
    """The element's text in document order: (piece, inside a link, inside a child element)."""
    if _holds_no_text(element) or not isinstance(element.tag, str):
        return
    in_link = in_link or element.tag == "a"
    if element.text:
        yield element.text, in_link, nested
    for child in element:
        yield from _segments(child, in_link=in_link, nested=True)
        if child.tail:
            yield child.tail, in_link, nested


def _heading_above(element: HtmlElement) -> HtmlElement | None:
    heading = element.getprevious()
    if heading is not None and heading.tag in _SUBHEADINGS and len(heading.text_content().split()) <= 8:
        return heading
    return None


def _is_link_block(stat: tuple[int, int, int] | None) -> bool:
    if stat is None:
        return False
    words, link_words, links = stat
    plain = words - link_words
    return links >= LINK_BLOCK_MIN_LINKS and plain < LINK_BLOCK_MAX_PLAIN_WORDS and link_words >= 0.7 * words


def _words(text: str) -> int:
    """Words of `text`; Chinese and Japanese, written without spaces, count two characters a word."""
    return len(text.split()) + (0 if text.isascii() else len(_CJK.findall(text)) // 2)


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _holds_no_text(element: HtmlElement) -> bool:
    """Styles and executable scripts; JSON-LD, templates and script-held markup count as text."""
    if element.tag == "script":
        kind = (element.get("type") or "javascript").lower()
        return any(code in kind for code in ("javascript", "module", "ecmascript"))
    return element.tag in {"style", "svg"}
