"""`newsmon doctor`: what a configuration points at, and whether each part answers.

One line per part: the state database, the lake's catalog, its data folder, the Prefect API and every alert
channel. Nothing is created, changed or sent: databases are only connected to (the lake attached read-only),
folders are tried with a temporary file, the Prefect API is asked for its health, and alert URLs are parsed
by Apprise. No line carries a password or an alert URL's secret parts.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from flows.deployments import WORK_POOL
from newsmon.alerts.notify import url_problem
from newsmon.alerts.policy import redact_url
from newsmon.config import Settings
from warehouse.attach import redact
from warehouse.probe import TIMEOUT_S, Probe, probe_catalog, probe_data_path, probe_state


@dataclass(frozen=True)
class Part:
    name: str    # state, catalog, data path, prefect api, alerts
    target: str  # what the config points at, without secrets
    probe: Probe

    @property
    def ok(self) -> bool:
        return self.probe.ok


def diagnose(settings: Settings) -> list[Part]:
    wh = settings.warehouse
    parts = [Part("state", wh.state_shown, probe_state(wh)),
             Part("catalog", wh.catalog_shown, probe_catalog(wh)),
             Part("data path", str(wh.data_folder), probe_data_path(wh)),
             prefect_part()]
    return parts + alert_parts(settings)


def alert_parts(settings: Settings) -> list[Part]:
    """Every distinct alert URL (the catch-all `urls` and each route's), parsed by Apprise; nothing is sent."""
    seen: dict[str, list[str]] = {}
    for route in settings.alerts.all_routes:
        for url in route.urls:
            seen.setdefault(url, []).append(route.name)
    if not seen:
        return [Part("alerts", "no channels", Probe(True, "no alert URL configured: matches are stored, nothing "
                                                          "is sent"))]
    out = []
    for url, routes in seen.items():
        problem = url_problem(url)
        target = f"{redact_url(url)} (route {', '.join(routes)})"
        out.append(Part("alerts", target, Probe(problem is None, problem or "Apprise accepts it (nothing sent)")))
    return out


def prefect_part() -> Part:
    """The Prefect API of PREFECT_API_URL (from the environment or the Prefect profile): its health, and the
    `newsmon` work pool's workers; without one, each run starts a temporary API of its own."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL

    api = (PREFECT_API_URL.value() or "").rstrip("/")
    if not api:
        return Part("prefect api", "embedded/temporary", Probe(True, "PREFECT_API_URL is not set: each run starts "
                    "a temporary local API (one machine; workers and schedules need a server)"))
    headers = {"Accept": "application/json"}
    if PREFECT_API_KEY.value():
        headers["Authorization"] = f"Bearer {PREFECT_API_KEY.value().get_secret_value()}"
    elif PREFECT_API_AUTH_STRING.value():
        token = base64.b64encode(PREFECT_API_AUTH_STRING.value().get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    target = redact(api)
    try:
        healthy = _get(f"{api}/health", headers)
    except (OSError, ValueError) as exc:
        return Part("prefect api", target, Probe(False, f"no answer from {target}/health ({_reason(exc)})"))
    if healthy is not True:
        return Part("prefect api", target, Probe(False, f"{target}/health answered {healthy!r}, not true"))
    return Part("prefect api", target, Probe(True, f"healthy; {_pool(api, headers)}"))


def _pool(api: str, headers: dict[str, str]) -> str:
    """The work pool's type and online workers, as information (a server without the pool is still usable)."""
    try:
        pool = _get(f"{api}/work_pools/{WORK_POOL}", headers)
        workers = _get(f"{api}/work_pools/{WORK_POOL}/workers/filter", headers, body={})
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return f"no work pool {WORK_POOL!r} (needed for prefect.yaml's deployments)"
        return f"work pool {WORK_POOL!r} not readable ({exc.code})"
    except (OSError, ValueError) as exc:
        return f"work pool {WORK_POOL!r} not readable ({_reason(exc)})"
    online = sum(1 for w in workers if isinstance(w, dict) and w.get("status") == "ONLINE")
    kind = pool.get("type") if isinstance(pool, dict) else "?"
    return f"work pool {WORK_POOL!r} ({kind}): {online} worker{'s' if online != 1 else ''} online"


def _get(url: str, headers: dict[str, str], body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={**headers, "Content-Type": "application/json"},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
        return json.loads(r.read() or b"null")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return redact(str(reason)) or type(exc).__name__
