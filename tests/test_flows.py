"""Every deployed flow: importable from prefect.yaml, documented, and one smoke run each."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

from newsmon.demo.receiver import WebhookReceiver
from newsmon.demo.server import SiteServer, demo_site_root
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]


def entrypoints() -> list[tuple[str, str, str]]:
    """(deployment, module, flow function): prefect.yaml names each flow by module path (newsmon installed)."""
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return [(d["name"], *d["entrypoint"].rsplit(".", 1)) for d in spec["deployments"]]


def load_flow(module: str, name: str) -> object:
    assert ":" not in module and "/" not in module, f"{module}: an entrypoint by module path, not by file"
    return getattr(importlib.import_module(module), name)


def test_prefect_yaml_has_the_three_deployments_and_every_entrypoint_imports() -> None:
    names = {name for name, _, _ in entrypoints()}
    assert names == {"newsmon-poll", "newsmon-digest", "newsmon-maintenance"}
    readme = (ROOT / "README.md").read_text()
    for _, path, func in entrypoints():
        fl = load_flow(path, func)
        assert fl.__doc__ and len(fl.__doc__) > 40, f"{func} needs a docstring"
        assert fl.name in readme, f"flow {fl.name} is not named in the README"  # type: ignore[attr-defined]


@pytest.mark.usefixtures("prefect_harness")
def test_digest_and_maintenance_flows_run(tmp_path: Path) -> None:
    from flows.digest import daily_digest
    from flows.maintenance import maintenance
    from flows.poll import poll_feeds

    with SiteServer(demo_site_root()) as site, WebhookReceiver() as rx:
        cfg = write_config(tmp_path, [("en", site.url("/feeds/en.xml")), ("ru", site.url("/feeds/ru.xml"))],
                           [rx.apprise_url()])
        poll_feeds(config=str(cfg))
        alerts = len(rx.received)
        digest = daily_digest(config=str(cfg))
        again = daily_digest(config=str(cfg))
        result = maintenance(config=str(cfg))
    assert digest["stories"] >= 2 and digest["sent"] == 1 and again["sent"] == 0
    assert len(rx.received) == alerts + 1
    assert "Azerbaijan invites Russian companies" in json.dumps(rx.received[-1], ensure_ascii=False)
    report = Path(result["report"])
    assert report.exists() and report.parent == tmp_path / "wh"
    assert "azerbaijan-invites-russian-companies-green-energy" in report.read_text()
    assert result["exported"]["articles"] == 13
    assert result["signatures_dropped"] == 0  # every cluster is within the lookback
    assert list((tmp_path / "wh" / "export" / "articles").glob("day=*/*.parquet"))
