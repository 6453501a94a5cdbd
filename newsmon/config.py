"""Settings: read once from one TOML file plus environment overrides, then passed down frozen.

This is the only module that reads the environment or the configuration file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsmon.errors import ConfigError
from newsmon.hints import command, quoted
from newsmon.records import FeedSpec

ENV_CONFIG = "NEWSMON_CONFIG"
ENV_ALERT_URLS = "NEWSMON_ALERT_URLS"
ENV_WAREHOUSE = "NEWSMON_WAREHOUSE"
ENV_CATALOG = "NEWSMON_CATALOG"  # replaces [warehouse] catalog (e.g. a postgres: conninfo with its password)
ENV_DATA_PATH = "NEWSMON_DATA_PATH"
ENV_STATE = "NEWSMON_STATE"  # replaces [warehouse] state (e.g. a postgresql:// URL with its password)
DEFAULT_CONFIG_NAME = "newsmon.toml"
MAX_FEED_NAME = 200  # characters of a feed title written into the config by `feeds add` / `feeds import`
# The contact `newsmon init` writes when it is given none: newsmon's own page, which names no operator. Every
# run warns while a config has it (or an address at a reserved example domain, or none).
PLACEHOLDER_CONTACT = "https://github.com/newsmon/newsmon"
_EXAMPLE_DOMAINS = ("example", "invalid", "test", "example.com", "example.net", "example.org")

# A check of one alert URL (after ${VAR} expansion): None when usable, else why not, without its secrets.
# Injected by the commands that send (newsmon.alerts.notify.url_problem: Apprise decides), so this module
# needs no Apprise and the commands that only read the warehouse do not depend on the alert channels.
UrlCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class WarehouseSettings:
    """Where the records (a DuckLake: catalog + data folder) and the pipeline's state database live.

    `path` names the warehouse; the catalog, data folder and state database default to files beside it
    (`<stem>.ducklake`, `<stem>.files/`, `<stem>.state.sqlite`). A `path` that is a single-file DuckDB
    warehouse of an earlier release is migrated into them on first use.
    """

    path: Path
    catalog: str = ""  # a SQLite file path, or `postgres:<libpq conninfo>`
    data_path: Path | None = None
    state: str = ""  # a SQLite file path, or a `postgresql://` URL

    @property
    def catalog_target(self) -> str:
        return self.catalog or str(self.path.with_suffix(".ducklake"))

    @property
    def data_folder(self) -> Path:
        return self.data_path or self.path.with_suffix(".files")

    @property
    def state_target(self) -> str:
        return self.state or str(self.path.with_suffix(".state.sqlite"))

    @property
    def state_shown(self) -> str:
        """The state database for messages: a path, or a PostgreSQL URL without its password."""
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", self.state_target)

    @property
    def catalog_shown(self) -> str:
        """The catalog for messages: a path, or a conninfo without its password."""
        return re.sub(r"password=\S+", "password=***", self.catalog_target)

    @property
    def state_path(self) -> Path:
        """The local state database file (meaningless for a PostgreSQL state database)."""
        return Path(self.state_target)


@dataclass(frozen=True)
class HttpSettings:
    allow_private_networks: bool = False
    allow_hosts: tuple[str, ...] = ()  # host names, IP addresses or networks fetched although not public
    contact_url: str = PLACEHOLDER_CONTACT  # where site operators reach the operator: sent in the User-Agent
    robots: bool = True  # honour robots.txt for article pages (extractors.robots); feeds are always fetched
    timeout_s: float = 20.0
    max_concurrency: int = 64  # all hosts together; politeness is per host (max_per_host, per_host_delay_s)
    max_per_host: int = 2
    max_feed_bytes: int = 10_000_000
    max_page_bytes: int = 5_000_000
    per_host_delay_s: float = 0.1
    jitter_s: float = 0.1
    max_entries_per_feed: int = 500
    backoff_base_minutes: float = 5.0
    backoff_cap_hours: float = 6.0
    host_budget_s: float = 60.0  # seconds one host's article pages may keep a run waiting (extractors.budget)
    run_budget_s: float = 600.0  # seconds a run's article pages may take in all; the rest waits for the next run


@dataclass(frozen=True)
class ScheduleSettings:
    interval_minutes: float = 15.0
    cron: str | None = None               # replaces interval_minutes when set
    digest_time: str = "08:00"            # daily digest, local time in `timezone`
    timezone: str = "UTC"
    maintenance_cron: str = "30 3 * * *"  # export, checkpoint, report, feed-health alerts
    outage_hours: float = 6.0             # no feed worked this long, all down: an outage (`newsmon run` exits 1)

    @property
    def digest_cron(self) -> str:
        hour, minute = self.digest_time.split(":")
        return f"{int(minute)} {int(hour)} * * *"


EVENTS = ("story", "spike", "feed", "digest")


@dataclass(frozen=True)
class Route:
    """Which alerts go to which Apprise URLs. Empty filters mean 'any'."""

    name: str
    urls: tuple[str, ...]
    watchlists: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # a story passes when it has any of these labels
    min_score: float = 0.0
    events: tuple[str, ...] = EVENTS


@dataclass(frozen=True)
class AlertSettings:
    urls: tuple[str, ...] = ()  # everything goes to these
    window_hours: float = 48.0
    routes: tuple[Route, ...] = ()  # filtered routes, on top of `urls`
    max_per_run: int = 10  # more alerts than this for one channel in one run go as one digest
    retry_minutes: float = 5.0  # first retry delay after a failed send; doubles each attempt
    max_attempts: int = 5
    send_attempts: int = 3  # tries of one message within a run before it is left to a later run
    send_backoff_s: float = 1.0  # wait before a message's second try in a run; each later wait is 3x longer
    cluster_similarity: float = 0.45
    cluster_days: float = 3.0
    spike_hours: float = 6.0
    spike_baseline_days: float = 7.0
    spike_factor: float = 3.0
    spike_min_stories: int = 5
    feed_failing_hours: float = 24.0

    @property
    def all_routes(self) -> tuple[Route, ...]:
        """`urls` as a catch-all route, then the configured routes."""
        default = (Route("all", self.urls),) if self.urls else ()
        return default + self.routes


@dataclass(frozen=True)
class ExtractionSettings:
    keep_raw_pages: bool = False  # compressed pages in the raw_pages table, for `newsmon reextract`
    batch_pages: int = 500  # a run extracts, tags and stores its new pages this many at a time


@dataclass(frozen=True)
class TaggingSettings:
    rules: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Settings:
    source: Path
    warehouse: WarehouseSettings
    http: HttpSettings = field(default_factory=HttpSettings)
    feeds: tuple[FeedSpec, ...] = ()
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    tagging: TaggingSettings = field(default_factory=TaggingSettings)
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)

    @property
    def name(self) -> str:
        return self.source.stem


def default_config_text() -> str:
    """The commented default configuration that `newsmon init` writes."""
    return resources.files("newsmon").joinpath("default.toml").read_text(encoding="utf-8")


def placeholder_contact(contact: str) -> bool:
    """Whether a User-Agent contact names no one: empty, the placeholder, or at a reserved example domain."""
    text = contact.strip()
    if not text or text.rstrip("/") == PLACEHOLDER_CONTACT:
        return True
    at = text.removeprefix("mailto:").rpartition("@")[2] if "@" in text and "://" not in text else None
    try:
        host = (at if at is not None else urlsplit(text).hostname or "").lower().rstrip(".")
    except ValueError:
        return True
    return not host or any(host == d or host.endswith("." + d) for d in _EXAMPLE_DOMAINS)


def contact_value(text: str, where: str = "--contact") -> str:
    """The User-Agent contact for what an operator gave: an http(s) URL as it is, an email address as a mailto:
    URL. ConfigError (naming `where`) for anything else, or for text a header cannot carry."""
    given = text.strip()
    email = given.removeprefix("mailto:")
    if given and given.isascii() and given.isprintable() and " " not in given:
        if re.fullmatch(r"[^@:/]+@[^@:/]+\.[^@:/]+", email):
            return "mailto:" + email
        try:
            parts = urlsplit(given)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if ok:
            return given
    raise ConfigError(f"{where} {text!r}: expected a web page (https://...) or an email address where site "
                      "operators can reach you")


def with_contact(config_text: str, contact: str) -> str:
    """A configuration's text with its first `contact_url = ...` line set to `contact`."""
    return re.sub(r"(?m)^contact_url = .*$", lambda _: f"contact_url = {toml_string(contact)}", config_text, count=1)


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config PATH, else $NEWSMON_CONFIG, else ./newsmon.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else Path(DEFAULT_CONFIG_NAME)


def load_settings(path: str | os.PathLike[str] | None = None, *, check_url: UrlCheck | None = None,
                  alert_secrets: bool = True) -> Settings:
    """Read and validate the configuration file, then apply environment overrides; with `check_url`, every
    alert URL is checked too (a ConfigError names the first unusable one, redacted by the check).

    `alert_secrets=False` is for commands that send nothing (sql, feeds, report, digest without --send,
    export): a ${VAR} in an alert URL that is not set leaves that URL as written instead of failing, so
    they run without the channels' secrets. Every command that sends loads with the default."""
    src = resolve_config_path(path)
    try:
        raw = src.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{src}: no such configuration file; run `{command()} init"
            f"{'' if str(src) == DEFAULT_CONFIG_NAME else ' ' + quoted(src)}` to write one, "
            "or pass --config PATH (or set NEWSMON_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read the configuration file ({exc})") from exc
    return _settings_from_bytes(raw, src, check_url, alert_secrets=alert_secrets)


def _settings_from_bytes(raw: bytes, src: Path, check_url: UrlCheck | None = None, *,
                         alert_secrets: bool = True) -> Settings:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{src}: not valid TOML ({exc})") from exc
    return parse_settings(data, src.resolve(), dict(os.environ), check_url=check_url, alert_secrets=alert_secrets)


def parse_settings(data: dict[str, Any], source: Path, env: dict[str, str], *,
                   check_url: UrlCheck | None = None, alert_secrets: bool = True) -> Settings:
    """Validate a parsed TOML document (pure: the environment is passed in)."""
    v = _Validator(source)
    v.only_keys(data, "", {"warehouse", "http", "feeds", "schedule", "alerts", "tagging",
                           "extraction"})
    base = source.parent
    wh = v.table(data, "warehouse")
    v.only_keys(wh, "warehouse", {"path", "catalog", "data_path", "state", "lock_timeout_s"})
    wh_path = env.get(ENV_WAREHOUSE) or v.get(wh, "warehouse", "path", str, "data/newsmon.duckdb")
    v.number(wh, "warehouse", "lock_timeout_s", 60.0, minimum=0)  # accepted from older configs; nothing waits now
    catalog = env.get(ENV_CATALOG) or v.get(wh, "warehouse", "catalog", str, "")
    data_path = env.get(ENV_DATA_PATH) or v.get(wh, "warehouse", "data_path", str, "")
    state = env.get(ENV_STATE) or v.get(wh, "warehouse", "state", str, "")
    warehouse = WarehouseSettings(
        path=_resolve(base, wh_path),
        catalog=_location(base, catalog, env, source, ("postgres:",), "warehouse.catalog"),
        data_path=_resolve(base, data_path) if data_path else None,
        state=_location(base, state, env, source, ("postgresql://", "postgres://"), "warehouse.state"),
    )
    http = _parse_http(v, v.table(data, "http"))
    schedule = _parse_schedule(v, v.table(data, "schedule"))
    alerts = _parse_alerts(v, v.table(data, "alerts"), env, check_url, alert_secrets)
    tag = v.table(data, "tagging")
    v.only_keys(tag, "tagging", {"rules"})
    rules = tuple(_resolve(base, p) for p in v.str_list(tag, "tagging", "rules"))
    ext = v.table(data, "extraction")
    v.only_keys(ext, "extraction", {"keep_raw_pages", "batch_pages"})
    extraction = ExtractionSettings(keep_raw_pages=v.get(ext, "extraction", "keep_raw_pages", bool, False),
                                    batch_pages=int(v.number(ext, "extraction", "batch_pages",
                                                             ExtractionSettings.batch_pages, minimum=1)))
    return Settings(source=source, warehouse=warehouse, http=http, feeds=_parse_feeds(v, data),
                    schedule=schedule, alerts=alerts, tagging=TaggingSettings(rules), extraction=extraction)


def _parse_schedule(v: _Validator, sched: dict[str, Any]) -> ScheduleSettings:
    d = ScheduleSettings()
    v.only_keys(sched, "schedule", set(d.__dataclass_fields__))
    cron = v.get(sched, "schedule", "cron", str, None) or None
    maintenance = v.get(sched, "schedule", "maintenance_cron", str, d.maintenance_cron)
    for key, value in (("cron", cron), ("maintenance_cron", maintenance)):
        if value is not None and len(value.split()) != 5:
            v.fail(f"schedule.{key}", 'a cron expression of five fields, e.g. "*/15 * * * *"', value)
    digest_time = v.get(sched, "schedule", "digest_time", str, d.digest_time)
    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", digest_time):
        v.fail("schedule.digest_time", 'a time of day "HH:MM"', digest_time)
    tz = v.get(sched, "schedule", "timezone", str, d.timezone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        v.fail("schedule.timezone", 'an IANA time zone such as "Asia/Baku" or "UTC"', tz)
    return ScheduleSettings(interval_minutes=v.number(sched, "schedule", "interval_minutes", 15.0, minimum=0.1),
                            cron=cron, digest_time=digest_time, timezone=tz, maintenance_cron=maintenance,
                            outage_hours=v.number(sched, "schedule", "outage_hours", d.outage_hours, minimum=0))


def _parse_http(v: _Validator, http: dict[str, Any]) -> HttpSettings:
    d = HttpSettings()
    v.only_keys(http, "http", set(d.__dataclass_fields__))
    return HttpSettings(
        allow_private_networks=v.get(http, "http", "allow_private_networks", bool, False),
        allow_hosts=_allow_hosts(v, http),
        contact_url=v.get(http, "http", "contact_url", str, d.contact_url),
        robots=v.get(http, "http", "robots", bool, d.robots),
        timeout_s=v.number(http, "http", "timeout_s", d.timeout_s, minimum=0.1),
        max_concurrency=int(v.number(http, "http", "max_concurrency", d.max_concurrency, minimum=1)),
        max_per_host=int(v.number(http, "http", "max_per_host", d.max_per_host, minimum=1)),
        max_feed_bytes=int(v.number(http, "http", "max_feed_bytes", d.max_feed_bytes, minimum=1024)),
        max_page_bytes=int(v.number(http, "http", "max_page_bytes", d.max_page_bytes, minimum=1024)),
        per_host_delay_s=v.number(http, "http", "per_host_delay_s", d.per_host_delay_s, minimum=0),
        jitter_s=v.number(http, "http", "jitter_s", d.jitter_s, minimum=0),
        max_entries_per_feed=int(v.number(http, "http", "max_entries_per_feed", d.max_entries_per_feed, minimum=1)),
        backoff_base_minutes=v.number(http, "http", "backoff_base_minutes", d.backoff_base_minutes, minimum=0.1),
        backoff_cap_hours=v.number(http, "http", "backoff_cap_hours", d.backoff_cap_hours, minimum=0.1),
        host_budget_s=v.number(http, "http", "host_budget_s", d.host_budget_s, minimum=1),
        run_budget_s=v.number(http, "http", "run_budget_s", d.run_budget_s, minimum=1),
    )


_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?", re.IGNORECASE)


def _allow_hosts(v: _Validator, http: dict[str, Any]) -> tuple[str, ...]:
    """[http] allow_hosts: each entry a host name, an IP address or a network (CIDR)."""
    out = []
    for i, entry in enumerate(v.str_list(http, "http", "allow_hosts")):
        text = entry.strip()
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            try:
                ascii_name = text.encode("idna").decode("ascii")
            except UnicodeError:
                ascii_name = ""
            if not _HOST_NAME.fullmatch(ascii_name) or ascii_name.replace(".", "").isdigit():
                v.fail(f"http.allow_hosts[{i}]", 'a host name ("feeds.intranet"), an IP address ("10.0.0.5") '
                       'or a network ("10.0.0.0/8", "fd00::/8")', entry)
        out.append(text)
    return tuple(out)


def _parse_alerts(v: _Validator, alerts: dict[str, Any], env: dict[str, str],
                  check_url: UrlCheck | None = None, secrets: bool = True) -> AlertSettings:
    d = AlertSettings()
    numbers = {k for k, f in d.__dataclass_fields__.items() if f.type in ("float", "int")}
    v.only_keys(alerts, "alerts", {"urls", "routes"} | numbers)
    urls = v.str_list(alerts, "alerts", "urls", secret=True)
    if env.get(ENV_ALERT_URLS):
        urls = env[ENV_ALERT_URLS].split()
    where = ENV_ALERT_URLS if env.get(ENV_ALERT_URLS) else "alerts.urls"
    expanded = tuple(_expand_env(u, env, v.source, f"{where}[{i}]", strict=secrets) for i, u in enumerate(urls))
    _check_urls(v, where, expanded, check_url)
    nums: dict[str, Any] = {}
    for k in sorted(numbers):
        val = v.number(alerts, "alerts", k, getattr(d, k), minimum=0)
        nums[k] = int(val) if d.__dataclass_fields__[k].type == "int" else val
    if nums["cluster_similarity"] > 1 or nums["max_attempts"] < 1 or nums["send_attempts"] < 1:
        v.fail("alerts", "cluster_similarity <= 1, max_attempts >= 1 and send_attempts >= 1")
    return AlertSettings(urls=expanded, routes=_parse_routes(v, alerts.get("routes", []), env, check_url, secrets),
                         **nums)


def _check_urls(v: _Validator, where: str, urls: Sequence[str], check_url: UrlCheck | None) -> None:
    for i, url in enumerate(urls):
        problem = check_url(url) if check_url else None
        if problem:
            raise ConfigError(f"{v.source}: {where}[{i}]: {problem}")


def _parse_routes(v: _Validator, routes: Any, env: dict[str, str],
                  check_url: UrlCheck | None = None, secrets: bool = True) -> tuple[Route, ...]:
    if not isinstance(routes, list):
        v.fail("alerts.routes", "an array of tables: [[alerts.routes]] with name and urls")
    out = []
    for i, r in enumerate(routes):
        where = f"alerts.routes[{i}]"
        if not isinstance(r, dict):
            v.fail(where, "a table with name and urls")
        v.only_keys(r, where, {"name", "urls", "watchlists", "labels", "min_score", "events"})
        urls = v.str_list(r, where, "urls", secret=True)
        if not urls:
            v.fail(f"{where}.urls", "at least one Apprise URL")
        expanded = tuple(_expand_env(u, env, v.source, f"{where}.urls[{k}]", strict=secrets)
                         for k, u in enumerate(urls))
        _check_urls(v, f"{where}.urls", expanded, check_url)
        events = v.str_list(r, where, "events") or list(EVENTS)
        if not set(events) <= set(EVENTS):
            v.fail(f"{where}.events", "a list of " + ", ".join(EVENTS), events)
        out.append(Route(name=v.get(r, where, "name", str, f"route{i + 1}"),
                         urls=expanded,
                         watchlists=tuple(v.str_list(r, where, "watchlists")),
                         labels=tuple(v.str_list(r, where, "labels")),
                         min_score=v.number(r, where, "min_score", 0.0, minimum=0), events=tuple(events)))
    return tuple(out)


def _parse_feeds(v: _Validator, data: dict[str, Any]) -> tuple[FeedSpec, ...]:
    feeds = data.get("feeds", [])
    if not isinstance(feeds, list):
        v.fail("feeds", "an array of tables: [[feeds]] with name and url")
    out: list[FeedSpec] = []
    seen: set[str] = set()
    for i, f in enumerate(feeds):
        where = f"feeds[{i}]"
        if not isinstance(f, dict):
            v.fail(where, "a table with name and url")
        v.only_keys(f, where, {"name", "url"})
        url = v.get(f, where, "url", str, None)
        if not url or not re.fullmatch(r"https?://[^/\s\x00-\x1f\x7f]+[^\s\x00-\x1f\x7f]*", url):
            v.fail(f"{where}.url", "an http:// or https:// URL (no spaces or control characters)", url or None)
        name = v.get(f, where, "name", str, url)
        if url in seen:
            v.fail(f"{where}.url", f"a URL not already listed ({url} appears twice)")
        seen.add(url)
        out.append(FeedSpec(name=name, url=url))
    return tuple(out)


def append_feeds(path: Path, feeds: Sequence[FeedSpec]) -> list[FeedSpec]:
    """Append `[[feeds]]` tables for the feeds whose URL the config file does not list yet; returns those, with
    their names as written (`feed_name`).

    Titles come from strangers (OPML files, feed and page titles): each is cleaned and written as an escaped
    TOML string. The new file is written beside the old one, loaded with the same checks as every command,
    and only then renamed over it; on any failure the old file is untouched and ConfigError says why.
    """
    target = path.resolve()  # a symlinked config: replace the file it points at, keep the link
    known = {f.url for f in load_settings(target, alert_secrets=False).feeds}
    new: list[FeedSpec] = []
    for f in feeds:
        if f.url not in known:
            known.add(f.url)
            new.append(FeedSpec(name=feed_name(f.name, f.url), url=f.url))
    if new:
        text = target.read_text(encoding="utf-8")
        tables = "".join(f"\n[[feeds]]\nname = {toml_string(f.name)}\nurl = {toml_string(f.url)}\n" for f in new)
        _replace_checked(path, target, text + ("" if text.endswith("\n") else "\n") + tables)
    return new


_NOT_IN_NAMES = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]+")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def feed_name(name: str, url: str) -> str:
    """A feed title fit for the config and for display: control, format (zero-width, bidi), line-separator
    and unpaired surrogate characters become spaces, white space runs one space, at most MAX_FEED_NAME
    characters (cut with '…'); the URL when nothing is left."""
    clean = " ".join(_NOT_IN_NAMES.sub(" ", name).split())
    if len(clean) > MAX_FEED_NAME:
        clean = clean[:MAX_FEED_NAME - 1].rstrip() + "…"
    return clean or url


def toml_string(text: str) -> str:
    """`text` as a TOML basic string: quote, backslash and every control character (U+0000-U+001F, U+007F)
    escaped, other characters as they are; an unpaired surrogate (which UTF-8 cannot hold) becomes U+FFFD."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out) + '"'


def write_derived_config(source: Path, target: Path, feeds: Sequence[FeedSpec], header: Sequence[str]) -> None:
    """Write `target`: the configuration in `source` with `feeds` as its only feeds (a shard's config).

    Every table but [[feeds]] is copied as written: ${VAR} references stay references (no secret is expanded
    into the copy) and environment overrides apply wherever the copy runs. Relative paths ([warehouse] path,
    catalog, data_path, state; [tagging] rules) become absolute against `source`'s folder, so the copy names
    the same warehouse, state database and rules from any folder. `header` lines become comments on top. The
    text is loaded with the same checks as every command before it replaces `target`, which gets `source`'s
    permissions (alert URLs may hold secrets)."""
    source = source.resolve()
    try:
        raw = source.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the configuration ({exc})") from exc
    base = source.parent
    wh = dict(data.get("warehouse", {}))
    wh["path"] = str(_resolve(base, str(wh.get("path", "data/newsmon.duckdb"))))
    for key, servers in (("catalog", ("postgres:",)), ("data_path", ()), ("state", ("postgresql://", "postgres://"))):
        value = wh.get(key)
        if isinstance(value, str) and value and not (servers and value.startswith(servers)):
            wh[key] = str(_resolve(base, value))
    data["warehouse"] = wh
    if isinstance(data.get("tagging"), dict) and isinstance(data["tagging"].get("rules"), list):
        data["tagging"] = {**data["tagging"], "rules": [str(_resolve(base, str(p))) for p in data["tagging"]["rules"]]}
    data["feeds"] = [{"name": f.name, "url": f.url} for f in feeds]
    text = "".join(f"# {line}\n" for line in header) + "\n".join(_toml_lines(data, "")) + "\n"
    _settings_from_bytes(text.encode("utf-8"), target, alert_secrets=False)  # it must load as the original does
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".new")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
        os.chmod(tmp, source.stat().st_mode & 0o7777)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the configuration ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return toml_string(value.isoformat()) if hasattr(value, "isoformat") else toml_string(str(value))


def _toml_lines(table: dict[str, Any], prefix: str) -> list[str]:
    """A parsed TOML table as TOML text: its plain values, then its sub-tables and arrays of tables."""
    def is_tables(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
             if not isinstance(v, dict) and not is_tables(v)]
    for k, v in table.items():
        name = f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k)
        if isinstance(v, dict):
            lines += ["", f"[{name}]", *_toml_lines(v, name)]
        elif is_tables(v):
            for item in v:
                lines += ["", f"[[{name}]]", *_toml_lines(item, name)]
    return lines


def _replace_checked(shown: Path, target: Path, text: str) -> None:
    """Write `text` beside `target` (same permissions), load it as the configuration, then rename it over
    `target`; on any failure remove it and raise ConfigError naming `shown`. The old file is never touched."""
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".new")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, target.stat().st_mode & 0o7777)
        _settings_from_bytes(tmp.read_bytes(), target, alert_secrets=False)  # the real loader, on the new bytes
        os.replace(tmp, target)
        tmp = None
    except ConfigError as exc:
        raise ConfigError(f"{' '.join(str(exc).split())}; {shown} was left unchanged") from None
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"{shown}: cannot write the new configuration beside it "
                          f"({getattr(exc, 'strerror', None) or exc}); {shown} was left unchanged") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _resolve(base: Path, p: str) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else base / path


def _location(base: Path, value: str, env: dict[str, str], source: Path, servers: tuple[str, ...],
              where: str) -> str:
    """A server address (with ${VAR} secrets read from the environment), or a path resolved against `base`."""
    if not value:
        return ""
    return _expand_env(value, env, source, where) if value.startswith(servers) else str(_resolve(base, value))


def _expand_env(url: str, env: dict[str, str], source: Path, where: str, *, strict: bool = True) -> str:
    """`url` with each ${VAR} replaced from `env`; a VAR that is not set is a ConfigError naming it and `where`,
    or (not `strict`: a command that sends nothing) leaves the reference as written."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            if not strict:
                return m.group(0)
            raise ConfigError(f"{source}: {where} refers to ${{{name}}}, which is not set in the environment; "
                              "export it or remove it from the URL")
        return env[name]
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, url)


class _Validator:
    """Small helpers that turn a type mismatch into 'file: key: expected X, got Y'."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, key: str, expected: str, got: object = None) -> NoReturn:
        tail = f", got {got!r}" if got is not None else ""
        raise ConfigError(f"{self.source}: {key}: expected {expected}{tail}")

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        t = data.get(key, {})
        if not isinstance(t, dict):
            self.fail(key, f"a table [{key}]", t)
        return t

    def only_keys(self, data: dict[str, Any], where: str, allowed: set[str]) -> None:
        for k in data:
            if k not in allowed:
                name = f"{where}.{k}" if where else k
                self.fail(name, "one of " + ", ".join(sorted(allowed)) + " (unknown key)")

    def get(self, data: dict[str, Any], where: str, key: str, typ: type, default: Any) -> Any:
        val = data.get(key, default)
        if val is not None and not isinstance(val, typ):
            self.fail(f"{where}.{key}", f"a {typ.__name__}", val)
        return val

    def number(self, data: dict[str, Any], where: str, key: str, default: float,
               minimum: float) -> float:
        val = data.get(key, default)
        if isinstance(val, bool) or not isinstance(val, int | float) or val < minimum:
            self.fail(f"{where}.{key}", f"a number >= {minimum}", val)
        return float(val)

    def str_list(self, data: dict[str, Any], where: str, key: str, *, secret: bool = False) -> list[str]:
        val = data.get(key, [])
        if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
            self.fail(f"{where}.{key}", "a list of strings", None if secret else val)  # alert URLs hold secrets
        return list(val)
