from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsmon.alerts.deliver import deliver_pending, queue_signals
from newsmon.alerts.notify import AppriseNotifier
from newsmon.alerts.signals import detect_spikes, failing_feeds, feed_alerts
from newsmon.config import AlertSettings, Route
from newsmon.demo.receiver import WebhookReceiver
from newsmon.records import Article, FeedResult, FeedSpec, FeedStatus, RunBatch, Verdict
from tests.conftest import make_warehouse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SPIKE = dict(hours=6.0, baseline_days=7.0, factor=3.0, min_stories=5, polling_since=NOW - timedelta(days=8))


def stories(*ages_h: float) -> list[tuple[datetime, str]]:
    return [(NOW - timedelta(hours=h), f"story {h}") for h in ages_h]


def test_a_spike_needs_enough_stories_above_the_rolling_baseline() -> None:
    usual = [6 * k + 1 for k in range(1, 28)]  # one story per 6 h window for a week: baseline 1
    quiet = detect_spikes({"az_ru": stories(1, 2, *usual)}, now=NOW, last_spike={}, **SPIKE)
    assert quiet == []
    spikes = detect_spikes({"az_ru": stories(0.5, 1, 2, 3, 4, *usual), "other": stories(1, 2)}, now=NOW,
                           last_spike={}, **SPIKE)
    assert [(s.watchlist, s.recent, round(s.baseline, 2)) for s in spikes] == [("az_ru", 5, 0.96)]
    assert spikes[0].titles[0] == "story 0.5"  # newest first
    busy = [h / 4 + 6 for h in range(7 * 24 * 4 - 30)]  # a busy watchlist: ~4 stories per hour usually
    assert detect_spikes({"az_ru": stories(*range(5), *busy)}, now=NOW, last_spike={}, **SPIKE) == []
    # no baseline, no spike: a warehouse that has not polled through the week before the window compares nothing
    young = {**SPIKE, "polling_since": NOW - timedelta(days=7)}
    assert detect_spikes({"az_ru": stories(0.5, 1, 2, 3, 4)}, now=NOW, last_spike={}, **young) == []
    assert detect_spikes({"az_ru": stories(0.5, 1, 2, 3, 4)}, now=NOW, last_spike={}, **SPIKE | {
        "polling_since": None}) == []
    # one alert per spike: quiet for a window after the last one
    assert detect_spikes({"az_ru": stories(0.5, 1, 2, 3, 4)}, now=NOW, **SPIKE,
                         last_spike={"az_ru": NOW - timedelta(hours=2)}) == []


def feed(failures: int, last_ok_h: float | None, first_h: float = 100) -> FeedStatus:
    ok = NOW - timedelta(hours=last_ok_h) if last_ok_h is not None else None
    return FeedStatus("https://f.example/rss", "F", failures, ok, NOW - timedelta(hours=first_h), "HTTP 500")


def test_feed_health_alerts_once_per_failure_episode() -> None:
    routes = [Route("ops", ("json://h/ops",))]
    limit = timedelta(hours=24)
    assert failing_feeds([feed(3, 2), feed(0, 50)], now=NOW, threshold=limit) == []
    episode1 = feed_alerts(failing_feeds([feed(30, 30)], now=NOW, threshold=limit), routes, now=NOW)
    later = feed_alerts([feed(40, 30)], routes, now=NOW + timedelta(hours=3))
    assert [a.alert_id for a in episode1] == [a.alert_id for a in later]  # same episode: same ledger row
    assert "failed 30 polls in a row for 30 h" in episode1[0].body and episode1[0].kind == "feed"
    recovered_then_failed = feed_alerts([feed(30, 26)], routes, now=NOW)
    assert recovered_then_failed[0].alert_id != episode1[0].alert_id
    never = failing_feeds([feed(5, None, first_h=25)], now=NOW, threshold=limit)
    assert "never polled successfully" in feed_alerts(never, routes, now=NOW)[0].body


def test_spike_and_feed_alerts_are_queued_once_and_delivered(tmp_path: Path) -> None:
    wh = make_warehouse(tmp_path / "w.duckdb")
    bad = FeedResult(FeedSpec("Broken", "https://broken.example/rss"), NOW - timedelta(hours=30), status=500,
                     error="HTTP 500")
    arts = [Article(f"a{i}", "https://n.example/rss", "N", f"k{i}", f"https://n.example/{i}", f"Story {i}", "",
                    f"text {i}", NOW, published_at=NOW - timedelta(hours=i / 2)) for i in range(6)]
    verdicts = [Verdict(a.article_id, "az_ru", "1", True, 5.0, ("az_ru",), (), ()) for a in arts]
    wh.runs.store_run(RunBatch("r1", "t", NOW, (bad,), tuple(arts), tuple(verdicts), ()), finished_at=NOW)
    wh.runs.store_run(RunBatch("r2", "t", NOW, (FeedResult(bad.feed, NOW, status=500, error="HTTP 500"),), (), (), ()),
                 finished_at=NOW)
    with WebhookReceiver() as rx:
        settings = AlertSettings(urls=(rx.apprise_url(),))
        assert queue_signals(wh, settings, now=NOW) == 1  # the failing feed; 30 h of polls are no spike baseline
        # a feed first polled 8 days ago: now the week before the window is history, and 6 stories against none
        polled = FeedResult(FeedSpec("N", "https://n.example/rss"), NOW - timedelta(days=8), status=200)
        wh.runs.store_run(RunBatch("r0", "t", NOW, (polled,), (), (), ()), finished_at=NOW)
        assert queue_signals(wh, settings, now=NOW) == 1
        assert queue_signals(wh, settings, now=NOW + timedelta(minutes=15)) == 0
        assert deliver_pending(wh, settings, AppriseNotifier(), now=NOW).sent == 2
    titles = sorted(p["title"] for p in rx.received)
    assert titles == ["newsmon: feed failing: Broken", "newsmon: spike: 6 az_ru stories in 6 h"]
    assert all(p["idempotency_key"] in p["message"] for p in rx.received)
    spike = next(p["message"] for p in rx.received if "spike" in p["title"])
    assert "against 0.0 per 6 h usually (0 in the 7 days before)" in spike


def test_a_silent_feed_alerts_once_per_silence() -> None:
    from newsmon.alerts.signals import silent_alerts

    routes = [Route("ops", ("json://h/ops",))]
    last_new = NOW - timedelta(days=5)
    silent = FeedStatus("https://f.example/rss", "F", 0, NOW, NOW - timedelta(days=60), None, silent=True,
                        last_new_at=last_new, usual_gap_hours=3.0)
    first = silent_alerts([silent], routes)
    assert len(first) == 1 and first[0].kind == "feed" and "usual gap between stories (3.0 h)" in first[0].body
    assert silent_alerts([silent], routes)[0].alert_id == first[0].alert_id  # still silent: same ledger row
    back_then_silent = FeedStatus(*[getattr(silent, f) for f in ("url", "name", "consecutive_failures",
                                                                 "last_success_at", "first_polled_at",
                                                                 "last_error", "silent")],
                                  last_new_at=NOW - timedelta(days=1), usual_gap_hours=3.0)
    assert silent_alerts([back_then_silent], routes)[0].alert_id != first[0].alert_id
    healthy = FeedStatus("https://g.example/rss", "G", 0, NOW, NOW, None, silent=False)
    assert silent_alerts([healthy], routes) == []
