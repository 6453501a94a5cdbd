"""`newsmon demo`: the whole pipeline, offline, against the bundled news site."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newsmon.console import print_summary
from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root
from newsmon.hints import command, quoted

FEEDS = (("Caspian Ledger (en)", "/feeds/en.xml"), ("Caspian Ledger (ru)", "/feeds/ru.xml"),
         ("Broken feed (on purpose)", "/feeds/broken.xml"))


def demo_config(base_url: str, alert_url: str) -> str:
    feeds = "".join(f'\n[[feeds]]\nname = "{name}"\nurl = "{base_url}{path}"\n' for name, path in FEEDS)
    return f"""# Written by `newsmon demo`: the bundled news site on 127.0.0.1 and a local alert inbox.
[warehouse]
path = "demo.duckdb"

[http]
allow_private_networks = true
contact_url = "mailto:newsmon-demo@localhost"  # only the bundled site on this machine sees it
per_host_delay_s = 0.02  # the bundled site runs on this machine
jitter_s = 0

[alerts]
urls = ["{alert_url}"]
{feeds}"""


def run_demo(folder: Path, run_once: Callable[[Path], dict[str, Any]]) -> int:
    """Serve the site, run one poll into a fresh demo warehouse, show matches and delivered alerts."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("demo.duckdb", "demo.duckdb.wal", "demo.ducklake", "demo.ducklake-wal", "demo.ducklake-shm",
                  "demo.state.sqlite", "demo.state.sqlite-wal", "demo.state.sqlite-shm", "alerts.jsonl"):
        (folder / stale).unlink(missing_ok=True)
    shutil.rmtree(folder / "demo.files", ignore_errors=True)
    inbox = folder / "alerts.jsonl"
    with SiteServer(demo_site_root()) as site, WebhookReceiver(log_path=inbox) as receiver:
        config = folder / "newsmon.toml"
        config.write_text(demo_config(site.base_url, receiver.apprise_url()), encoding="utf-8")
        print(f"demo news site at {site.base_url}, alert inbox at {receiver.apprise_url()}")
        summary = run_once(config)
    print_summary(summary)
    print(f"\n{len(receiver.received)} alert(s) delivered to the local inbox ({inbox}):")
    for payload in receiver.received:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    query = quoted("SELECT title, score, tags FROM matches")
    print(f"\nQuery the demo warehouse: {command()} sql --config {quoted(config)} {query}")
    return 0 if summary.get("matches") and receiver.received else 1
