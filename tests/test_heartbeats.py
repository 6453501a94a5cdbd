"""`newsmon run` sends no flow-run heartbeats unless the user asks for them (flows.ephemeral.run_api): Prefect's
synchronous engine otherwise waits up to a second at the end of every run for its heartbeat thread."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.test_deploy import ROOT

PROBE = """
from prefect.settings import get_current_settings
from flows.ephemeral import run_api
before = get_current_settings().flows.heartbeat_frequency
with run_api():
    inside = get_current_settings().flows.heartbeat_frequency
    api = get_current_settings().api.url
print(before, inside, api, get_current_settings().flows.heartbeat_frequency)
"""


@pytest.mark.parametrize(("variable", "value", "expected"), [
    (None, None, "180 None http://127.0.0.1:9/api 180"),
    ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60", "60 60 http://127.0.0.1:9/api 60"),
    ("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", "45", "45 45 http://127.0.0.1:9/api 45"),
])
def test_runs_send_heartbeats_only_when_the_user_sets_their_frequency(variable: str | None, value: str | None,
                                                                      expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if "HEARTBEAT" not in k}
    env |= {"PREFECT_API_URL": "http://127.0.0.1:9/api", "PYTHONPATH": str(ROOT)}  # a configured API: no server
    if variable:
        env[variable] = value or ""
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected  # and the setting is back to the user's once the block ends
