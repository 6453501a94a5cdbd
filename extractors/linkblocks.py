"""Link-block pruning (pure): headline lists, menus and "Latest news" columns leave the tree before extraction."""

from __future__ import annotations

from lxml import etree
from lxml.html import HtmlElement

LINK_BLOCK_MIN_LINKS = 3
LINK_BLOCK_MAX_PLAIN_WORDS = 25
_LINK_BLOCK_TAGS = ("ul", "ol", "div", "section", "aside", "nav", "header", "footer", "p", "dl")
_SUBHEADINGS = frozenset({"h2", "h3", "h4", "h5", "h6"})


def prune_link_blocks(tree: HtmlElement) -> int:
    """Remove headline lists, menus and other blocks made of links (and the heading above them).

    trafilatura drops <aside> and blocks with telling class names, but a "Latest news" column built from
    plain <div>s can end up in the text, and its headlines then read as if the article said them. A block
    goes when it holds at least LINK_BLOCK_MIN_LINKS links, most of its words are link text and it has
    fewer than LINK_BLOCK_MAX_PLAIN_WORDS words outside links, so article paragraphs are never touched.
    Returns how many blocks were removed.
    """
    stats = _link_stats(tree)
    marked = [el for el in tree.iter(*_LINK_BLOCK_TAGS) if _is_link_block(stats.get(el))]
    marked_set = set(marked)
    outermost = [el for el in marked if not any(a in marked_set for a in el.iterancestors())]
    for element in outermost:
        heading = element.getprevious()
        if heading is not None and heading.tag in _SUBHEADINGS and len(heading.text_content().split()) <= 8:
            heading.drop_tree()
        element.drop_tree()
    return len(outermost)


def _is_link_block(stat: tuple[int, int, int] | None) -> bool:
    if stat is None:
        return False
    words, link_words, links = stat
    plain = words - link_words
    return links >= LINK_BLOCK_MIN_LINKS and plain < LINK_BLOCK_MAX_PLAIN_WORDS and link_words >= 0.7 * words


def _link_stats(tree: HtmlElement) -> dict[HtmlElement, tuple[int, int, int]]:
    """(words, words inside links, links) for every element, children before parents, no recursion."""
    stats: dict[HtmlElement, tuple[int, int, int]] = {}
    for element in reversed(list(tree.iter(etree.Element))):
        if _holds_no_text(element):
            stats[element] = (0, 0, 0)
            continue
        words, link_words, links = len((element.text or "").split()), 0, 0
        for child in element:
            child_words, child_links, child_count = stats.get(child, (0, 0, 0))
            words += child_words + len((child.tail or "").split())
            link_words += child_links
            links += child_count
        if element.tag == "a":
            link_words, links = words, links + 1
        stats[element] = (words, link_words, links)
    return stats


def _holds_no_text(element: HtmlElement) -> bool:
    """Styles and executable scripts; JSON-LD, templates and script-held markup count as text."""
    if element.tag == "script":
        kind = (element.get("type") or "javascript").lower()
        return any(code in kind for code in ("javascript", "module", "ecmascript"))
    return element.tag in {"style", "svg"}


