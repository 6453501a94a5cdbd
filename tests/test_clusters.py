from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

from newsmon.alerts.clusters import (
    NUM_PERM,
    SCHEME,
    _Index,
    assign_clusters,
    bands,
    hash_values,
    jaccard,
    shingles,
    similarity,
)
from newsmon.records import Article, ClusterRecord, FeedResult, FeedSpec, RunBatch
from tests.conftest import make_warehouse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEVSET = [json.loads(line) for line in (Path(__file__).parent / "data" / "tagger_devset.jsonl").open()]
WIRE = ("Azerbaijan and Russia signed a road map on energy cooperation in Baku on Tuesday, covering gas "
        "transit, electricity trade and joint investment in renewable projects. Deputy Prime Minister Shahin "
        "Mustafayev and Russian Deputy Prime Minister Alexei Overchuk chaired the intergovernmental commission, "
        "which also discussed the North-South transport corridor and customs procedures at the border. The sides "
        "agreed to meet again in Moscow in the spring to review progress on the projects listed in the document.")


def art(aid: str, title: str, text: str, feed: str = "Wire", age_h: float = 1) -> Article:
    return Article(aid, f"https://{feed.lower()}.example/rss", feed, aid, f"https://{feed.lower()}.example/{aid}",
                   title, "", text, NOW, published_at=NOW - timedelta(hours=age_h))


def copies() -> list[Article]:
    """The same wire story as four outlets carry it: verbatim, credited, re-headlined, lightly edited."""
    words = WIRE.split()
    edited = " ".join("on Wednesday" if w == "Tuesday," else w for w in words[:-6]) + " in the spring."
    return [
        art("orig", "Azerbaijan, Russia sign energy road map", WIRE, "Wire", 3),
        art("c1", "Azerbaijan, Russia sign energy road map", f"BAKU (Trend) - {WIRE} Follow Trend on Telegram.",
            "Trend", 2),
        art("c2", "Baku and Moscow agree energy road map", WIRE, "Report", 2),
        art("c3", "Azerbaijan, Russia sign road map", edited, "Interfax", 1),
    ]


def test_syndicated_copies_form_one_cluster_named_after_the_earliest() -> None:
    out, clusters = assign_clusters(copies(), [], threshold=0.45, now=NOW)
    assert len({a.cluster_id for a in out}) == 1 and len(clusters) == 1
    assert clusters[0].seed_article_id == "orig" and clusters[0].first_published_at == NOW - timedelta(hours=3)
    assert [a.article_id for a in out] == ["orig", "c1", "c2", "c3"]  # input order kept


def test_distinct_stories_on_the_same_topic_stay_apart() -> None:
    arts = [art(d["id"], d["title"], d["text"]) for d in DEVSET]
    out, clusters = assign_clusters(arts, [], threshold=0.45, now=NOW)
    assert len({a.cluster_id for a in out}) == len(arts) == len(clusters) >= 104
    # the closest pair of different dev-set stories is far below the threshold
    assert max(similarity(a, b) for a, b in combinations(arts[:30], 2)) < 0.2


def test_headlines_alone_are_never_merged() -> None:
    out, _ = assign_clusters([art("a", "Oil prices rise", ""), art("b", "Oil prices rise", "")], [],
                             threshold=0.45, now=NOW)
    assert out[0].cluster_id != out[1].cluster_id


def test_a_later_copy_joins_the_stored_cluster_and_old_clusters_are_not_compared(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    first, clusters = assign_clusters(copies()[:1], [], threshold=0.45, now=NOW)
    feed = FeedResult(FeedSpec("Wire", "https://wire.example/rss"), NOW, status=200)
    wh.runs.store_run(RunBatch("r1", "t", NOW, (feed,), tuple(first), (), (), clusters=tuple(clusters)),
                      finished_at=NOW)
    recent = wh.runs.recent_clusters(since=NOW - timedelta(days=3))
    assert [c.cluster_id for c in recent] == [first[0].cluster_id] and len(recent[0].signature) == 128
    assert list(recent[0].signature) == list(clusters[0].signature)  # read back compact (an array), value for value
    later, touched = assign_clusters(copies()[3:], recent, threshold=0.45, now=NOW + timedelta(hours=5))
    assert later[0].cluster_id == first[0].cluster_id and touched[0].cluster_id == first[0].cluster_id
    assert wh.runs.recent_clusters(since=NOW + timedelta(days=1)) == []  # outside the lookback: never compared
    wh.runs.store_run(RunBatch("r2", "t", NOW, (feed,), tuple(later), (), (), clusters=tuple(touched)),
                      finished_at=NOW)
    _, rows = wh.lake.query("SELECT articles, outlets FROM story_clusters")
    assert rows == [(2, ["Interfax", "Wire"])]
    assert wh.lake.query("SELECT DISTINCT cluster_id FROM articles")[1] == [(first[0].cluster_id,)]
    # maintenance drops signatures older than the lookback (the bulk of the state's cluster rows): the cluster stays
    assert wh.runs.forget_signatures(before=NOW - timedelta(days=3)) == 0
    assert wh.runs.forget_signatures(before=NOW + timedelta(days=1)) == 1
    assert wh.runs.recent_clusters(since=NOW - timedelta(days=3)) == []
    assert wh.runs.forget_signatures(before=NOW + timedelta(days=1)) == 0
    assert wh.lake.query("SELECT articles FROM story_clusters")[1] == [(2,)]


def test_signatures_worked_out_in_the_pool_give_the_same_clusters_and_verdicts_as_the_flow_process() -> None:
    from extractors.pages import extraction_pool
    from flows.derive import tag_and_sign
    from flows.jobs import tag_articles
    from newsmon.tagging import load_watchlists

    stories = copies() + [art(f"d{i}", d["title"], d["text"], "Dev", 4) for i, d in enumerate(DEVSET[:60])]
    with extraction_pool(100, 2, preload=("flows.derive",)) as pool:
        verdicts, signatures = tag_and_sign(stories, [], pool)
    assert verdicts == tag_articles(stories, load_watchlists())
    assert len(signatures) == len(stories) and all(s is not None and len(s) == 128 for s in signatures.values())
    here = assign_clusters(stories, [], threshold=0.45, now=NOW)
    there = assign_clusters(stories, [], threshold=0.45, now=NOW, signatures=signatures)
    assert here == there
    assert len({a.cluster_id for a in there[0][:4]}) == 1  # the four copies still make one story


def test_signatures_index_and_similarity_are_datasketchs_value_for_value() -> None:
    """newsmon signs, compares and indexes stories without datasketch (which imports scipy); datasketch, which
    made the signatures warehouses already hold, is the reference for every hash value, the band layout, which
    seeds an article is compared with, and the estimated similarity."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    for t in range(2, 99):
        reference = MinHashLSH(threshold=t / 100, num_perm=NUM_PERM)
        assert bands(t / 100) == (reference.b, reference.r), t / 100
    texts = [(d.get("title", ""), d["text"]) for d in DEVSET]
    signed = [(f"a{i}", hv) for i, (title, text) in enumerate(texts) if (hv := hash_values(title, text))]
    base = {aid: hv for aid, hv in signed}
    # near copies: every tenth article again with its words changed here and there
    for i, (title, text) in enumerate(texts[::10]):
        words = text.split()
        edited = " ".join("X" if j % (4 + i % 5) == 0 else w for j, w in enumerate(words))
        if (hv := hash_values(title, edited)) is not None:
            signed.append((f"copy{i}", hv))
    assert len(signed) > 50
    texts += [("", " ".join(f"w{(i * 7919 + j * 104729) % 5000}" for j in range(40 + i % 900))) for i in range(60)]
    for title, text in texts:
        grams = shingles(title, text)
        ref = MinHash(num_perm=NUM_PERM, scheme=SCHEME, seed=1)
        ref.update_batch(list(grams))
        assert hash_values(title, text) == (tuple(int(x) for x in ref.hashvalues) if len(grams) >= 8 else None)
    for threshold in (0.3, 0.45, 0.7):
        ours = _Index([], threshold)
        theirs = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        for aid, hv in base.items():
            ours.add(ClusterRecord(aid, aid, "", NOW, NOW, hv), hv)
            theirs.insert(aid, LeanMinHash(seed=1, hashvalues=list(hv), scheme=SCHEME))
        for aid, hv in signed:
            found = ours.candidates(hv)
            assert found == set(theirs.query(LeanMinHash(seed=1, hashvalues=list(hv), scheme=SCHEME))), aid
        for (_, a), (_, b) in list(combinations(signed, 2))[:2000]:
            la, lb = (LeanMinHash(seed=1, hashvalues=list(x), scheme=SCHEME) for x in (a, b))
            assert jaccard(a, b) == float(la.jaccard(lb))


def test_signing_and_clustering_never_import_datasketch(tmp_path: Path) -> None:
    """Neither the flow process nor the workers import datasketch, and scipy with it (~0.6 s, ~60 MB)."""
    sigs = {a.article_id: hash_values(a.title, a.text) for a in copies()}
    out = run_script(
        tmp_path,
        "import sys, json\n"
        "from datetime import datetime\n"
        "import flows.poll, flows.tasks\n"
        "from newsmon.alerts.clusters import assign_clusters\n"
        "from tests.test_clusters import copies, NOW\n"
        f"sigs = json.loads({json.dumps(sigs)!r})\n"
        "out, clusters = assign_clusters(copies(), [], threshold=0.45, now=NOW, signatures=sigs)\n"
        "print('numpy' in sys.modules)\n"  # the flow process clusters signatures the pool made: no numpy
        "out, again = assign_clusters(copies(), [], threshold=0.45, now=NOW)\n"  # signed here
        "assert again == clusters\n"
        "print(len(clusters), sorted(m for m in sys.modules if m.split('.')[0] in ('datasketch', 'scipy')))\n")
    assert out.split() == ["False", "1", "[]"]


def test_the_flow_process_imports_numpy_and_the_language_model_only_when_used(tmp_path: Path) -> None:
    """Importing what `newsmon run` imports loads neither numpy nor py3langid nor htmldate (~17 MB, ~0.06 s of an
    unchanged run); detecting a language and signing a story load them on first use and work."""
    out = run_script(
        tmp_path,
        "import sys\n"
        "import newsmon.cli, flows.poll, flows.serve, flows.tasks\n"
        "heavy = ('numpy', 'py3langid', 'htmldate')\n"
        "print(','.join(m for m in heavy if m in sys.modules) or '-')\n"
        "from extractors.language import detect_language\n"
        "print(detect_language('Это предложение достаточно длинное, чтобы определить язык текста.'))\n"
        "from tests.test_clusters import copies\n"
        "from newsmon.alerts.clusters import hash_values\n"
        "a = copies()[0]\n"
        "print(len(hash_values(a.title, a.text) or ()), ','.join(m for m in heavy if m in sys.modules))\n")
    assert out.split() == ["-", "ru", str(NUM_PERM), "numpy,py3langid"]


def run_script(tmp_path: Path, code: str) -> str:
    """Run `code` in a fresh interpreter from the checkout (a process that has imported nothing yet): its output."""
    script = tmp_path / "script.py"
    script.write_text(code)
    root = str(Path(__file__).parent.parent)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=root,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 0, done.stderr
    return done.stdout
