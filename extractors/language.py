"""Language of a page: its own declaration when it fits the text, else detection with py3langid (pure)."""

from __future__ import annotations

import re
from array import array
from functools import lru_cache
from typing import TYPE_CHECKING

from lxml.html import HtmlElement

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

# Detection is limited to the languages our sources publish in and their neighbours, so that short
# Azerbaijani text is not labelled Crimean Tatar or Uzbek and Russian is not labelled Bulgarian.
LANGUAGES = (
    "en", "ru", "az", "tr", "uk", "be", "kk", "ky", "uz", "tg", "tk", "ka", "hy", "fa", "ar", "he",
    "de", "fr", "es", "it", "pt", "nl", "pl", "zh", "ja", "ko",
)  # fmt: skip
MIN_LETTERS = 20
SAMPLE_CHARS = 3000
# A declaration that contradicts the script of the text (a Russian page whose template says lang="en",
# an English page that says "ru") is replaced by detection. Some languages are written in both scripts.
_ONLY_CYRILLIC = frozenset({"ru", "uk", "be", "bg", "mk", "ky", "tg", "mn"})
_ALSO_CYRILLIC = frozenset({"sr", "kk", "uz", "az", "tk", "tt", "ba"})
_NAMESPACES = {"xml": "http://www.w3.org/XML/1998/namespace"}
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LETTER = re.compile(r"[^\W\d_]")
_THREE_LETTER = {"eng": "en", "rus": "ru", "aze": "az", "tur": "tr", "ukr": "uk", "geo": "ka", "kat": "ka"}
_DECLARATIONS = (
    "/html/@lang",
    "/html/@xml:lang",
    "//meta[translate(@http-equiv, 'CONTENTLANGUAGE', 'contentlanguage')='content-language']/@content",
    "//meta[@property='og:locale']/@content",
    "//meta[@name='language' or @name='dc.language' or @name='DC.language']/@content",
)


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    """The py3langid model (loaded once per process, ~0.5 s), restricted to LANGUAGES.

    set_languages keeps the full model beside the restricted one (to allow widening again, which newsmon
    never does): rebuilt from the restricted arrays, the identifier drops it (142 -> 27 columns, ~27 MB).

    The tokenizer's per-state tables (row offsets and feature numbers, 104,583 entries each) are lists of int
    objects: every lookup in a forked extraction worker writes the looked-up int's reference count, so each
    worker copied the pages of the ones it met (~5 MB a worker over the corpus). As arrays they hold plain
    numbers that lookups only read, and stay shared; the DFA walk indexes them the same way.

    py3langid (and numpy with it, ~17 MB and ~0.06 s) is imported here, on first use: the flow process imports
    this module but detects a language only for a page that fell back to its feed summary.
    """
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    full = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    full.set_languages(list(LANGUAGES))
    identifier = LanguageIdentifier(full.nb_ptc, full.nb_pc, full.nb_classes, full.tk_nextmove,
                                    array("i", full.tk_output), norm_probs=True, tk_row=full.tk_row)
    identifier._rowbase = array("q", identifier._rowbase)
    return identifier


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when the text has too few letters to tell."""
    sample = text[:SAMPLE_CHARS]
    if len(_LETTER.findall(sample)) < MIN_LETTERS:
        return None
    language, _probability = _identifier().classify(sample)
    return str(language)


def normalise_language(label: str | None) -> str | None:
    """'en-US', 'ru_RU', 'az-Latn-AZ', 'aze' -> 'en', 'ru', 'az', 'az'; None if not a language code."""
    if not label:
        return None
    primary = re.split(r"[-_\s,;]", label.strip().lower(), maxsplit=1)[0]
    primary = _THREE_LETTER.get(primary, primary)
    return primary if len(primary) == 2 and primary.isascii() and primary.isalpha() else None


def declared_language(tree: HtmlElement) -> str | None:
    """The language a page declares: <html lang>, Content-Language, og:locale or a language meta tag."""
    for xpath in _DECLARATIONS:
        for value in tree.xpath(xpath, namespaces=_NAMESPACES):
            language = normalise_language(str(value))
            if language:
                return language
    return None


def choose_language(declared: str | None, text: str) -> str | None:
    """The declared language if it is plausible for the text's script, else the detected one."""
    if declared and _script_fits(declared, text):
        return declared
    return detect_language(text) or declared


def _script_fits(language: str, text: str) -> bool:
    sample = text[:SAMPLE_CHARS]
    letters = len(_LETTER.findall(sample))
    if letters < MIN_LETTERS:
        return True
    cyrillic_share = len(_CYRILLIC.findall(sample)) / letters
    if cyrillic_share > 0.5:
        return language in _ONLY_CYRILLIC or language in _ALSO_CYRILLIC
    return cyrillic_share > 0.05 or language not in _ONLY_CYRILLIC
