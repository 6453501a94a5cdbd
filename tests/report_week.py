"""A generated week of stories, stored through the real warehouse, for report tests and size checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from newsmon.config import WarehouseSettings
from newsmon.records import Article, Evidence, FeedResult, FeedSpec, RunBatch, Verdict, stable_id
from warehouse import open_warehouse

SOURCES = [f"Outlet {i:02d}" for i in range(12)]
LANGS = ["en", "ru", "az", "tr"]
TERMS = ("Azerbaijan", "Russia", "gas", "agreement", "SOCAR", "Gazprom")
BODY = ("Officials in Baku said on {day} that talks went on through the week. {lead} The ministry added that "
        "the Azerbaijan side and Russia discussed gas transit, an intergovernmental agreement and a new "
        "investment fund for joint projects, with SOCAR and Gazprom named as partners in story {i}. "
        "Analysts expect more detail after the next commission meeting.")


def fill_week(path: Path, *, n: int, now: datetime, match_every: int = 1, title: str = "") -> None:
    """`n` articles spread over the 7 days before `now`, from 12 outlets in 4 languages; every
    `match_every`-th one matches the watchlist, with evidence pointing into its title and text."""
    wh = open_warehouse(WarehouseSettings(path=path))
    feeds = [FeedSpec(name, f"https://{i}.example.org/rss") for i, name in enumerate(SOURCES)]
    articles, verdicts = [], []
    for i in range(n):
        feed = feeds[i % len(feeds)]
        when = now - timedelta(seconds=(i * 7 * 86400 // n) + 60)
        head = title or f"Azerbaijan and Russia discuss gas agreement, round {i}"
        text = BODY.format(day=f"{when:%A}", lead="Ministers met again." if i % 2 else "", i=i)
        aid = stable_id("gen", str(i))
        articles.append(Article(aid, feed.url, feed.name, f"gen:{i}", f"https://{i % 12}.example.org/a/{i}",
                                head, "", text, when, language=LANGS[i % 4], published_at=when,
                                word_count=len(text.split())))
        match = i % match_every == 0
        verdicts.append(Verdict(aid, "az_ru", "2025.06.1", match, 2.0 + (i % 40) / 10,
                                ("az_ru", "energy", "cooperation") if match else (),
                                (("az_ru", 2.0), ("energy", 1.5), ("cooperation", 1.0)),
                                tuple(_evidence(head, text)) if match else ()))
    results = tuple(FeedResult(f, now, status=200) for f in feeds)
    try:
        wh.runs.store_run(RunBatch("gen", "gen", now, results, tuple(articles), tuple(verdicts), ()),
                          finished_at=now)
    finally:
        wh.close()


def _evidence(title: str, text: str) -> list[dict[str, object]]:
    out: list[Evidence] = []
    for label, term in (("az_ru", "Azerbaijan"), ("az_ru", "Russia"), ("energy", "gas"),
                        ("energy", "SOCAR"), ("cooperation", "agreement")):
        for where, field in (("title", title), ("body", text)):
            start = field.find(term)
            if start < 0:
                continue
            lo, hi = max(0, start - 60), min(len(field), start + len(term) + 60)
            snippet = ("…" if lo else "") + " ".join(field[lo:hi].split()) + ("…" if hi < len(field) else "")
            out.append(Evidence(label, term.lower(), term.lower(), where, start, start + len(term), snippet,
                                2.0 if where == "title" else 1.0))
    return out
