from __future__ import annotations

from pathlib import Path

import pytest

from newsmon.config import default_config_text, load_settings, parse_settings
from newsmon.errors import ConfigError


def test_minimal_config_resolves_paths_against_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg" / "a.toml"
    cfg.parent.mkdir()
    cfg.write_text('[warehouse]\npath = "data/x.duckdb"\n[[feeds]]\nname = "A"\nurl = "https://a.example/rss"\n')
    s = load_settings(cfg)
    assert s.warehouse.path == cfg.parent.resolve() / "data/x.duckdb"
    assert [f.url for f in s.feeds] == ["https://a.example/rss"]
    assert s.http.allow_private_networks is False
    assert s.schedule.interval_minutes == 15
    assert s.alerts.window_hours == 48


@pytest.mark.parametrize("text, key, expected", [
    ('[http]\nallow_private_networks = "yes"\n', "http.allow_private_networks", "a bool"),
    ('[[feeds]]\nname = "A"\nurl = "ftp://x"\n', "feeds[0].url", "http:// or https://"),
    ('[alerts]\nurls = "json://x"\n', "alerts.urls", "a list of strings"),
    ('[warehouse]\npth = "x"\n', "warehouse.pth", "unknown key"),
    ('[schedule]\ninterval_minutes = 0\n', "schedule.interval_minutes", "a number >= 0.1"),
    ('[[feeds]]\nurl = "https://a/x"\n[[feeds]]\nurl = "https://a/x"\n', "feeds[1].url", "appears twice"),
])
def test_validation_errors_name_file_key_and_expectation(tmp_path: Path, text: str, key: str,
                                                          expected: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    msg = str(err.value)
    assert str(cfg.resolve()) in msg and key in msg and expected in msg


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="newsmon init"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[warehouse\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_settings(cfg)


def test_secrets_come_from_the_environment() -> None:
    data = {"alerts": {"urls": ["mailtos://user:${SMTP_PASS}@smtp.example.com"]}}
    s = parse_settings(data, Path("/etc/newsmon.toml"), {"SMTP_PASS": "s3cret"})
    assert s.alerts.urls == ("mailtos://user:s3cret@smtp.example.com",)
    with pytest.raises(ConfigError, match=r"\$\{SMTP_PASS\}, which is not set"):
        parse_settings(data, Path("/etc/newsmon.toml"), {})


def test_environment_overrides_alert_urls_and_warehouse() -> None:
    s = parse_settings({"alerts": {"urls": ["json://a/b"]}}, Path("/srv/n.toml"),
                       {"NEWSMON_ALERT_URLS": "json://c/d  mailto://e", "NEWSMON_WAREHOUSE": "/tmp/w.duckdb"})
    assert s.alerts.urls == ("json://c/d", "mailto://e")
    assert s.warehouse.path == Path("/tmp/w.duckdb")


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "env.toml"
    cfg.write_text('[warehouse]\npath = "w.duckdb"\n')
    monkeypatch.setenv("NEWSMON_CONFIG", str(cfg))
    assert load_settings().source == cfg.resolve()


def test_default_config_is_valid_and_lists_real_feeds(tmp_path: Path) -> None:
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text(default_config_text())
    s = load_settings(cfg)
    assert len(s.feeds) >= 15
    hosts = " ".join(f.url for f in s.feeds)
    for outlet in ("trend.az", "azertag.az", "tass.ru", "interfax.ru", "report.az"):
        assert outlet in hosts
    assert all(f.url.startswith("https://") for f in s.feeds)


def test_alert_routes_with_filters_and_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text("""
[alerts]
urls = ["json://127.0.0.1:9/all"]
max_per_run = 3
cluster_similarity = 0.5

[[alerts.routes]]
name = "energy desk"
urls = ["slack://${SLACK_TOKEN}/#energy"]
watchlists = ["az_ru"]
labels = ["energy"]
min_score = 4.5

[[alerts.routes]]
urls = ["mailto://ops.example.com"]
events = ["feed", "digest"]
""")
    s = parse_settings(__import__("tomllib").loads(cfg.read_text()), cfg, {"SLACK_TOKEN": "T/B/C"})
    a = s.alerts
    assert a.max_per_run == 3 and a.cluster_similarity == 0.5 and a.window_hours == 48
    assert [(r.name, r.urls, r.watchlists, r.labels, r.min_score) for r in a.all_routes[:2]] == [
        ("all", ("json://127.0.0.1:9/all",), (), (), 0.0),
        ("energy desk", ("slack://T/B/C/#energy",), ("az_ru",), ("energy",), 4.5)]
    assert a.all_routes[0].events == ("story", "spike", "feed", "digest") and a.all_routes[2].name == "route2"
    assert a.all_routes[2].events == ("feed", "digest")


@pytest.mark.parametrize("alerts, key", [
    ({"routes": [{"name": "x"}]}, "alerts.routes[0].urls"),
    ({"routes": [{"urls": ["json://h"], "events": ["sms"]}]}, "alerts.routes[0].events"),
    ({"routes": [{"urls": ["json://h"], "colour": "red"}]}, "alerts.routes[0].colour"),
    ({"max_per_run": -1}, "alerts.max_per_run"),
    ({"cluster_similarity": 2}, "cluster_similarity <= 1"),
])
def test_bad_alert_settings_are_named(alerts: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_settings({"alerts": alerts}, Path("/x.toml"), {})
