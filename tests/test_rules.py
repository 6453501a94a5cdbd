"""Rules files: the shipped watchlist, a second generic one, and errors that name file and key."""

from __future__ import annotations

import pathlib

import pytest

from newsmon.errors import RulesError
from newsmon.tagging import default_watchlist, load_watchlists, parse_watchlist
from newsmon.tagging.expr import parse_expr

DATA = pathlib.Path(__file__).parent / "data"
FIXTURE = DATA / "az_tr_energy.toml"

MINIMAL = """
name = "mini"
version = "7"
match = "topic"

[concepts.thing]
en = ["widget*"]

[labels.topic]
threshold = 1.0
any = ["thing"]
"""


def test_default_watchlist_is_the_shipped_az_ru_rules() -> None:
    w = default_watchlist()
    assert (w.name, w.labels) == ("az_ru", ("az_ru", "energy", "cooperation"))
    assert w.version and w.version == w.rules.version
    assert w.rules.match_text == "az_ru and (energy or cooperation)"
    assert {c.name for c in w.rules.concepts} >= {"azerbaijan", "russia", "bilateral", "energy_core"}


def test_shipped_rules_cover_four_languages_per_country() -> None:
    concepts = {c.name: c for c in default_watchlist().rules.concepts}
    for name in ("azerbaijan", "russia", "bilateral", "energy_core", "cooperation_core"):
        assert {lang for lang, _ in concepts[name].terms} >= {"en", "ru", "az", "tr"}, name


def test_minimal_rules_parse_with_defaults() -> None:
    w = parse_watchlist(MINIMAL, "mini.toml")
    assert (w.name, w.version, w.labels) == ("mini", "7", ("topic",))
    assert w.rules.zones.title == 2.0 and w.rules.proximity.sentence == 2.0
    assert w.tag("Widgets", "").tags == ("topic",)


def test_load_watchlists_puts_default_first_then_extra_files() -> None:
    watchlists = load_watchlists([FIXTURE])
    assert [w.name for w in watchlists] == ["az_ru", "az_tr_energy"]
    assert watchlists[1].labels == ("az_tr", "tr_energy") and watchlists[1].version == "fixture-3"
    assert load_watchlists() == (default_watchlist(),)


def test_second_watchlist_tags_with_its_own_label() -> None:
    w = load_watchlists([FIXTURE])[1]
    hit = w.tag("Azerbaijan and Türkiye sign gas deal",
                "SOCAR and BOTAS signed a contract for gas supplies through the TANAP pipeline.")
    assert hit.match and hit.tags == ("az_tr", "tr_energy") and hit.watchlist == "az_tr_energy"
    assert {e.label for e in hit.evidence} == {"az_tr", "tr_energy"}
    assert [name for name, _ in hit.scores] == ["az_tr", "tr_energy"]
    miss = w.tag("Gazprom and CNPC agree on gas", "Russia and China signed a gas pipeline deal.")
    assert not miss.match and miss.tags == ("tr_energy",)


def test_missing_rules_file_is_a_rules_error_naming_the_path(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(RulesError, match="nope.toml"):
        load_watchlists([path])


def _broken(replace: str, by: str) -> str:
    assert replace in MINIMAL
    return MINIMAL.replace(replace, by)


@pytest.mark.parametrize(("text", "key", "expected"), [
    (_broken("threshold = 1.0", 'threshold = "high"'), "labels.topic.threshold", "a number > 0"),
    (_broken("threshold = 1.0", "threshold = 0"), "labels.topic.threshold", "a number > 0"),
    (_broken('any = ["thing"]', 'any = ["thingy"]'), "labels.topic.any", "defined concepts"),
    (_broken('match = "topic"', 'match = "topic and"'), "match", "an expression over labels"),
    (_broken('match = "topic"', 'match = "topic or other"'), "match", "only defined labels"),
    (_broken('en = ["widget*"]', 'en = ["wid*get"]'), "concepts.thing.en", "trailing '*'"),
    (_broken('en = ["widget*"]', 'en = ["w*"]'), "concepts.thing.en", "2+ letters"),
    (_broken('en = ["widget*"]', 'en = "widget"'), "concepts.thing.en", "a list of strings"),
    (_broken('en = ["widget*"]', 'implies = ["ghost"]\nen = ["widget*"]'), "concepts.thing.implies",
     "names of other concepts"),
    (_broken("threshold = 1.0", 'threshold = 1.0\nnot_mode = "maybe"'), "labels.topic.not_mode",
     "'subtract' or 'veto'"),
    (_broken("threshold = 1.0", "threshold = 1.0\ntreshold = 2"), "labels.topic.treshold", "one of"),
    (_broken('name = "mini"', ""), "name", "a non-empty string"),
    (_broken("[labels.topic]", "[labels.and]"), "labels.and", "not and/or/not"),
    (_broken("any = [\"thing\"]", 'pairs = [["thing"]]'), "labels.topic.pairs", "[concept, concept]"),
    (MINIMAL + "\n[zones]\ntitel = 3\n", "zones.titel", "one of"),
])
def test_rules_errors_name_file_key_and_expectation(text: str, key: str, expected: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_watchlist(text, "analyst/mine.toml")
    message = str(info.value)
    assert message.startswith("analyst/mine.toml: ")
    assert f"{key}: expected" in message and expected in message
    assert info.value.url == "analyst/mine.toml"


def test_invalid_toml_is_a_rules_error_with_the_line() -> None:
    with pytest.raises(RulesError, match=r"^bad\.toml: not valid TOML: .*line 2"):
        parse_watchlist('name = "x"\nversion = = 1\n', "bad.toml")


def test_extra_file_errors_name_that_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "extra.toml"
    path.write_text(_broken("threshold = 1.0", "threshold = -1"), encoding="utf-8")
    with pytest.raises(RulesError, match=r"extra\.toml: labels\.topic\.threshold: expected"):
        load_watchlists([path])


@pytest.mark.parametrize(("text", "ratios", "value"), [
    ("a and (b or c)", {"a": 1.5, "b": 0.2, "c": 1.1}, 1.1),
    ("a and (b or c)", {"a": 0.5, "b": 2.0, "c": 2.0}, 0.5),
    ("a and not b", {"a": 1.2, "b": 0.9}, 1.0),
    ("a and not b", {"a": 1.2, "b": 1.0}, 0.0),
    ("NOT a OR b", {"a": 0.0, "b": 0.0}, 1.0),
])
def test_match_expression_strength(text: str, ratios: dict[str, float], value: float) -> None:
    assert parse_expr(text).strength(ratios) == pytest.approx(value)
