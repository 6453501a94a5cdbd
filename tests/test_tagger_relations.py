"""az_ru from a relation between the two sides, not from two names on one page: each error class of real
pages (Russia as mediator or venue, Russia as the thing avoided, rows without energy or cooperation, a Russian
company as a brand, missed energy disputes and company expansions) in en, ru, az and tr, names in uk, de and fr,
page boilerplate around the story, and the evidence that shows the deciding relation."""

from __future__ import annotations

import json
import pathlib

import pytest

from newsmon.errors import RulesError
from newsmon.records import Evidence
from newsmon.tagging import TagResult, default_watchlist, parse_watchlist
from newsmon.tagging.normalize import fold

W = default_watchlist()
PAGES = pathlib.Path(__file__).parent / "data" / "tagger_pages_devset.jsonl"


def relations(r: TagResult) -> list[Evidence]:
    return [e for e in r.evidence if e.label == "az_ru" and e.concept == "relation"]


def set_aside(r: TagResult) -> list[Evidence]:
    return [e for e in r.evidence if e.label == "az_ru" and e.weight < 0 and e.sides]


# ---------------------------------------------------------------- Russia as mediator, venue or backdrop

MEDIATOR = {
    "en-venue": ("Baku and Yerevan negotiators meet in Sochi",
                 "Negotiators from Azerbaijan and Armenia met in Sochi on Monday to discuss the demarcation of "
                 "their border, with Russian Deputy Prime Minister Alexei Overchuk acting as host."),
    "en-backdrop": ("Putin and Pashinyan discuss Zangezur route",
                    "Vladimir Putin and Nikol Pashinyan discussed Azerbaijan's plans for a transport route "
                    "through southern Armenia in a phone call on Friday, the Kremlin said."),
    "ru-mediator": ("Лавров принял в Москве делегации Баку и Еревана",
                    "Делегации Азербайджана и Армении провели в Москве переговоры о подготовке мирного "
                    "договора при посредничестве российского МИД."),
    "az-venue": ("Bayramov Mirzoyanla Moskvada görüşüb",
                 "Azərbaycan və Ermənistanın xarici işlər nazirləri Moskvada sülh sazişinin mətnini müzakirə "
                 "ediblər. Görüşə Rusiya tərəfi ev sahibliyi edib."),
    "tr-mediator": ("Aliyev ile Paşinyan Kazan'da görüştü",
                    "Azerbaycan Cumhurbaşkanı İlham Aliyev ile Ermenistan Başbakanı Nikol Paşinyan, Rusya'nın "
                    "arabuluculuğunda Kazan'da bir araya gelerek sınır meselesini ele aldı."),
}


@pytest.mark.parametrize("case", sorted(MEDIATOR))
def test_russia_as_mediator_venue_or_backdrop_is_not_az_ru(case: str) -> None:
    r = W.tag(*MEDIATOR[case])
    assert "az_ru" not in r.tags and not r.match, (case, r.scores)


def test_a_mediated_clause_is_negative_evidence_naming_why() -> None:
    r = W.tag(*MEDIATOR["ru-mediator"])
    against = set_aside(r)
    assert against and not relations(r)
    assert {e.concept for e in against} <= {"mediation", "venue", "third_countries"}


# ---------------------------------------------------------------- Russia as the thing avoided

AVOIDED = {
    "en": ("Azerbaijan and Italy agree gas deal to cut reliance on Russia",
           "Azerbaijan agreed to sell Italy three billion cubic metres of gas a year, helping Rome replace Russian "
           "supplies. The gas will arrive through the Trans-Adriatic Pipeline."),
    "ru": ("Казахстан отправит нефть через Баку в обход России",
           "Казахстан и Азербайджан договорились о транзите казахстанской нефти через порт Баку в обход России. "
           "Поставки по нефтепроводу Баку — Тбилиси — Джейхан вырастут вдвое."),
    "az": ("Avropa Rusiya qazını Azərbaycan qazı ilə əvəz edir",
           "Azərbaycan Bolqarıstana qaz tədarükünü artırmaq barədə saziş imzalayıb. Bolqarıstan Rusiya qazından "
           "imtina etdikdən sonra Azərbaycan qazı əsas mənbəyə çevrilib."),
    "tr": ("Orta Koridor Rusya'yı devre dışı bırakıyor",
           "Azerbaycan ve Kazakistan, Rusya'yı devre dışı bırakan demiryolu güzergahında ortak tarife konusunda "
           "anlaştı. Hat üzerinden petrol ve yük taşınacak."),
}


@pytest.mark.parametrize("lang", sorted(AVOIDED))
def test_russia_as_the_thing_avoided_is_not_az_ru(lang: str) -> None:
    r = W.tag(*AVOIDED[lang])
    assert "az_ru" not in r.tags and not r.match, (lang, r.scores)


def test_an_avoided_side_is_negative_evidence_with_its_clause() -> None:
    r = W.tag(*AVOIDED["en"])
    against = set_aside(r)
    assert against and all(e.concept == "avoidance" for e in against)
    assert {e.sides[0] for e in against} == {"Russia", "Russian"}
    assert any("reliance on Russia" in e.text for e in against) and any("replace" in e.text for e in against)


# ---------------------------------------------------------------- rows without energy or cooperation

ROWS = {
    "en": ("Moscow protests detention of Russian bloggers in Baku",
           "Russia's foreign ministry protested on Tuesday after Azerbaijani police detained three Russian "
           "bloggers in Baku. Maria Zakharova accused Azerbaijan of an unfriendly campaign against Russian media.\n"
           "Trade between the two countries rose by 5% last year."),
    "ru": ("Баку вызвал российского посла из-за гибели мигрантов",
           "МИД Азербайджана вызвал посла России в связи с гибелью двух азербайджанцев после задержания в "
           "Екатеринбурге. Баку потребовал наказать виновных.\nТоварооборот двух стран в прошлом году вырос."),
    "az": ("AZAL təyyarəsinin vurulması: Bakı Moskvadan üzr istəməyi tələb edir",
           "Azərbaycan Rusiyadan AZAL təyyarəsinin vurulmasına görə rəsmi üzr istəməyi və təqsirkarların "
           "cəzalandırılmasını tələb edib. Rusiya XİN Bakının ittihamlarını rədd edib.\n"
           "Ötən il iki ölkə arasında ticarət dövriyyəsi artıb."),
    "tr": ("Rusya, Azerbaycan büyükelçisini Dışişleri'ne çağırdı",
           "Rusya Dışişleri Bakanlığı, Bakü'de iki Rus gazetecinin tutuklanmasının ardından Azerbaycan'ın "
           "Moskova Büyükelçisi'ni bakanlığa çağırdı ve tutuklamaları protesto etti.\n"
           "İki ülke arasındaki ticaret geçen yıl arttı."),
}


@pytest.mark.parametrize("lang", sorted(ROWS))
def test_a_row_is_az_ru_but_not_a_match_even_with_one_trade_sentence(lang: str) -> None:
    r = W.tag(*ROWS[lang])
    assert "az_ru" in r.tags, (lang, r.scores)
    assert "cooperation" not in r.tags and "energy" not in r.tags and not r.match, (lang, r.scores)


# ---------------------------------------------------------------- a Russian company as a brand

BRANDS = {
    "en": ("Baku drivers face petrol queues",
           "Motorists queued at Azpetrol and Lukoil filling stations across Baku on Sunday after deliveries of "
           "AI-92 petrol from the refinery were delayed."),
    "ru": ("В Баку не хватает бензина",
           "На заправках Azpetrol и «Лукойл» в Баку в воскресенье выстроились очереди: из-за задержки поставок с "
           "нефтеперерабатывающего завода бензина АИ-92 не хватает."),
    "az": ("Bakıda benzin növbələri",
           "Bazar günü Bakıda Azpetrol və Lukoil yanacaqdoldurma məntəqələrində Aİ-92 benzini qurtardığı üçün "
           "növbələr yaranıb, neft emalı zavodundan tədarük gecikib."),
    "tr": ("Bakü'de akaryakıt sıkıntısı",
           "Bakü'de pazar günü Azpetrol ve Lukoil istasyonlarında benzin bitti, rafineriden gelen sevkiyat "
           "gecikince sürücüler uzun kuyruklar oluşturdu."),
}


@pytest.mark.parametrize("lang", sorted(BRANDS))
def test_a_russian_company_as_a_brand_is_not_az_ru(lang: str) -> None:
    r = W.tag(*BRANDS[lang])
    assert "az_ru" not in r.tags and not r.match, (lang, r.scores)
    assert "energy" in r.tags


# ---------------------------------------------------------------- missed positives: energy disputes, expansions

POSITIVES = {
    "en-transit-dispute": ("Azerbaijan and Russia fail to agree on oil transit tariff",
                           "Talks between SOCAR and Transneft on the tariff for pumping Azerbaijani oil to "
                           "Novorossiysk ended without agreement on Thursday, the companies said.",
                           ("SOCAR", "Transneft")),
    "en-gas-price": ("Gazprom and SOCAR at impasse over winter gas price",
                     "Gazprom refused to cut the price of gas it supplies to Azerbaijan this winter, and SOCAR "
                     "said the talks had reached an impasse.", ("SOCAR", "Gazprom")),
    "en-expansion": ("Lukoil opens ten new filling stations in Azerbaijan",
                     "Lukoil opened ten filling stations in Azerbaijan this year and plans to invest $25 million "
                     "in a fuel terminal near Baku.", ("Azerbaijan", "Lukoil")),
    "ru-transit-dispute": ("Азербайджан и Россия не договорились о тарифе на транзит нефти",
                           "Переговоры SOCAR и «Транснефти» о тарифе на прокачку азербайджанской нефти в "
                           "Новороссийск завершились безрезультатно.", ("Азербайджан", "Россия")),
    "ru-expansion": ("«Лукойл» откроет новые АЗС в Азербайджане",
                     "«Лукойл» откроет в Азербайджане десять автозаправочных станций и вложит 25 млн долларов в "
                     "топливный терминал под Баку.", ("Азербайджане", "Лукойл")),
    "az-gas-price": ("SOCAR və Qazprom qazın qiymətində razılaşa bilməyib",
                     "SOCAR ilə Qazprom arasında qış mövsümü üçün qaz tədarükünün qiyməti üzrə danışıqlar "
                     "nəticəsiz qalıb.", ("SOCAR", "Qazprom")),
    "az-expansion": ("Lukoil Azərbaycanda on yeni yanacaqdoldurma məntəqəsi açıb",
                     "Lukoil bu il Azərbaycanda on yanacaqdoldurma məntəqəsi açıb və Bakı yaxınlığında yanacaq "
                     "terminalına 25 milyon dollar investisiya qoyacaq.", ("Azərbaycanda", "Lukoil")),
    "tr-transit-dispute": ("Azerbaycan ile Rusya petrol transit tarifesinde anlaşamadı",
                           "SOCAR ile Transneft arasında Azerbaycan petrolünün Novorossiysk'e pompalanmasına "
                           "ilişkin tarife müzakereleri sonuçsuz kaldı.", ("Azerbaycan", "Rusya")),
    "tr-expansion": ("Lukoil Azerbaycan'da yeni akaryakıt istasyonları açtı",
                     "Lukoil bu yıl Azerbaycan'da on akaryakıt istasyonu açtı ve Bakü yakınlarında bir yakıt "
                     "terminaline 25 milyon dolar yatırım yapacak.", ("Azerbaycan", "Lukoil")),
    "uk-names": ("«Газпром» постачатиме газ до Азербайджану",
                 "«Газпром» і SOCAR підписали контракт на постачання російського газу до Азербайджану взимку.",
                 ("Азербайджану", "Газпром")),
    "de-names": ("Russland und Aserbaidschan vereinbaren Stromaustausch",
                 "Russland und Aserbaidschan haben in Baku eine Vereinbarung über den Austausch von Strom "
                 "zwischen ihren Netzen unterzeichnet.", ("Aserbaidschan", "Russland")),
    "fr-names": ("Gazprom livrera du gaz à l'Azerbaïdjan",
                 "Gazprom et SOCAR ont signé un contrat de livraison de gaz russe à l'Azerbaïdjan pour l'hiver.",
                 ("Azerbaïdjan", "Gazprom")),
}


@pytest.mark.parametrize("case", sorted(POSITIVES))
def test_relations_between_the_two_sides_match_and_their_evidence_names_them(case: str) -> None:
    title, text, (side_az, side_ru) = POSITIVES[case]
    r = W.tag(title, text)
    assert "az_ru" in r.tags and r.match, (case, r.scores)
    found = relations(r)
    assert found, r.evidence
    assert any({fold(side_az).text, fold(side_ru).text} == {fold(s).text for s in e.sides} for e in found), \
        [e.sides for e in found]
    for e in found:
        field = title if e.where == "title" else text
        assert e.text == field[e.start:e.end] and all(side in e.text for side in e.sides)
        assert " … " in e.term and e.text in e.snippet.replace("…", "")


@pytest.mark.parametrize("case", ["en-transit-dispute", "ru-transit-dispute", "tr-transit-dispute",
                                  "az-gas-price", "en-gas-price"])
def test_an_energy_dispute_counts_as_energy(case: str) -> None:
    title, text, _ = POSITIVES[case]
    assert "energy" in W.tag(title, text).tags


# ---------------------------------------------------------------- co-occurrence is not a relation

def test_two_names_without_a_relation_are_not_az_ru() -> None:
    text = ("Baku hosted a jazz festival this weekend. Musicians from Russia and Georgia played in the old city, "
            "and tickets sold out in Azerbaijan's capital within hours.")
    r = W.tag("Jazz festival ends", text)
    assert "az_ru" not in r.tags and not relations(r)


def test_the_same_names_with_a_relation_verb_are() -> None:
    r = W.tag("", "Russia will supply gas to Azerbaijan under a contract signed by Gazprom and SOCAR.")
    assert "az_ru" in r.tags and relations(r)


def test_a_relation_in_the_headline_counts_more_than_one_in_the_tail() -> None:
    story = ("The ministry published its annual report on Monday. It covers exports, customs and tariffs.\n"
             "Officials said the figures would be updated next quarter.\n")
    relation = "Azerbaijan and Russia signed a gas supply contract."
    in_title = dict(W.tag(relation, story).scores)["az_ru"]
    at_end = dict(W.tag("Annual report published", story + relation).scores)["az_ru"]
    assert in_title > at_end
    assert "az_ru" in W.tag(relation, story).tags
    assert "az_ru" not in W.tag("Annual report published", story + relation).tags


# ---------------------------------------------------------------- page boilerplate around the story

NAV = "\n".join(["Home", "World", "Politics", "Business", "Energy", "Moscow", "Kazan", "Baku", "Sport", "Video"])
LATEST = "\n".join(["Latest news", "Azerbaijan and Russia sign gas deal", "Lukoil agrees to buy stake in Baku field",
                    "Putin meets Aliyev in Sochi", "Weather: storms expected", "Most read",
                    "Share this article", "© 2025 Example News. All rights reserved."])


def test_boilerplate_around_an_unrelated_story_does_not_match() -> None:
    story = ("The city council approved a new budget for schools and parks on Tuesday. Residents asked for more "
             "bus routes and longer library hours during the public hearing.")
    r = W.tag("Council approves budget", NAV + "\n" + story + "\n" + LATEST)
    assert r.tags == () and not r.match


def test_the_lead_of_a_story_under_navigation_is_still_its_lead() -> None:
    lead = ("Azerbaijan and Russia signed a road map on electricity trade on Tuesday, raising cross-border power "
            "flows through the Yalama-Derbent line.")
    r = W.tag("Electricity deal", NAV + "\n" + lead + "\nThe ministries will meet again in the autumn.\n" + LATEST)
    assert r.match
    assert any(e.where == "lead" for e in relations(r))


# ---------------------------------------------------------------- evidence shape and rules format

def test_relation_evidence_serialises_with_its_sides_and_term_evidence_keeps_its_shape() -> None:
    r = W.tag("Gazprom and SOCAR sign gas contract", "")
    d = r.to_dict("x")
    json.dumps(d)
    evidence = d["evidence"]
    assert isinstance(evidence, list)
    rel = [e for e in evidence if e["concept"] == "relation"]
    assert rel and rel[0]["sides"] == ["SOCAR", "Gazprom"]
    plain = [e for e in evidence if e["concept"] != "relation"]
    assert plain and all("sides" not in e for e in plain)


RULES = """
name = "mini"
version = "1"
match = "pair"
[concepts.a]
en = ["alpha"]
[concepts.b]
en = ["beta"]
[concepts.cue]
en = ["signed"]
[labels.pair]
threshold = 1.0
pairs = [["a", "b"]]
cue = ["cue"]
loose = 0.1
"""


def test_a_cue_turns_a_pair_into_a_relation() -> None:
    w = parse_watchlist(RULES, "mini.toml")
    assert w.tag("", "Alpha and Beta signed a deal.").match
    assert not w.tag("", "Alpha and Beta went home.").match


@pytest.mark.parametrize(("extra", "message"), [
    ('[labels.other]\nthreshold = 1.0\nany = ["a"]\ncue = ["cue"]\n', "labels.other.cue"),
    ('[relations]\nwindow = -1\n', "relations.window"),
    ('[relations]\njoiners = [""]\n', "relations.joiners"),
    ('[relations]\nsomething = 1\n', "relations.something"),
    ('[labels.other]\nthreshold = 1.0\npairs = [["a", "b"]]\nloose = 2\n', "labels.other.loose"),
])
def test_relation_rule_mistakes_name_the_key(extra: str, message: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_watchlist(RULES + extra, "mini.toml")
    assert message in str(err.value) and "mini.toml" in str(err.value)


# ---------------------------------------------------------------- the page dev set

def _pages() -> list[dict[str, object]]:
    return [json.loads(line) for line in PAGES.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_page_devset_is_well_formed_and_covers_every_error_class_in_four_languages() -> None:
    rows = _pages()
    assert len(rows) >= 80 and len({r["id"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"dev", "heldout"}
    assert len({r["page"] for r in rows}) >= 30  # many outlets' page boilerplate
    for r in rows:
        labels = r["labels"]
        assert isinstance(labels, dict) and set(labels) == {"az_ru", "energy", "cooperation"}
        assert r["match"] == (labels["az_ru"] and (labels["energy"] or labels["cooperation"])), r["id"]
        assert str(r["text"]).count("\n") >= 5, r["id"]  # the story sits among the page's own lines
    classes = {(r["class"], r["lang"]) for r in rows}
    for cls in ("mediator", "avoided", "row", "brand", "energy_dispute", "company_expansion"):
        for lang in ("en", "ru", "az", "tr"):
            assert (cls, lang) in classes, (cls, lang)
    assert {"uk", "de", "fr"} <= {r["lang"] for r in rows}


def test_page_devset_match_precision_and_recall_at_least_0_9() -> None:
    tp = fp = fn = 0
    for r in _pages():
        got = W.tag(str(r["title"]), str(r["text"])).match
        tp += got and bool(r["match"])
        fp += got and not r["match"]
        fn += bool(r["match"]) and not got
    assert tp / (tp + fp) >= 0.9, (tp, fp)
    assert tp / (tp + fn) >= 0.9, (tp, fn)
