"""prefect.yaml text for shard deployments (`newsmon shards N --deployments`): one `poll-feeds` deployment per
shard config, for the `newsmon` process work pool, deployed with `prefect deploy --all --prefect-file ...`.

The deployments follow the route of the project's prefect.yaml: newsmon is installed in the worker's
environment and the flow is imported by module path, so there is nothing to pull and no folder of the
deploying machine in them. Each has its own limit of one run at a time (a deployment's `concurrency_limit` is
its own, never shared), so every shard runs on schedule beside the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from newsmon.config import ScheduleSettings

POLL_ENTRYPOINT = "flows.poll.poll_feeds"
WORK_POOL = "newsmon"


def shard_deployment_name(number: int) -> str:
    return f"newsmon-poll-shard-{number}"


def _q(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one)."""
    return json.dumps(text, ensure_ascii=False)


def _schedule(schedule: ScheduleSettings) -> list[str]:
    if schedule.cron:
        return [f"      - cron: {_q(schedule.cron)}", f"        timezone: {_q(schedule.timezone)}"]
    return [f"      - interval: {round(schedule.interval_minutes * 60)}"]


def shard_deployments_yaml(configs: Sequence[tuple[int, Path]], schedule: ScheduleSettings, *,
                           source: Path, command: str) -> str:
    """A prefect.yaml with one deployment per (shard number, absolute config path), on `schedule`."""
    try:
        prefect_version = version("prefect")
    except PackageNotFoundError:  # pragma: no cover - Prefect is a dependency
        prefect_version = "3"
    out = [f"# Shard deployments written by `{command}` from {source}.",
           "# Deploy them (after the work pool exists):",
           f"#   prefect --no-prompt deploy --all --prefect-file {_q(str(configs[0][1].parent / 'prefect.yaml'))}"
           if configs else "#   prefect --no-prompt deploy --all --prefect-file PATH",
           "# Each shard is its own deployment with its own one-run-at-a-time limit: all shards run at once.",
           "# Route (docs/scaling.md): newsmon is installed (pip) on every worker and the flow is imported by",
           "# module path, so nothing is pulled; each shard config must exist at this path on every worker (a",
           "# shared folder, or the same path everywhere). The main prefect.yaml's newsmon-poll must not run beside",
           "# these (it polls every feed): deploy only its newsmon-digest and newsmon-maintenance.",
           "name: newsmon-shards",
           f"prefect-version: {_q(prefect_version)}",
           "",
           "build: null",
           "push: null",
           "pull: []",
           "",
           "deployments:"]
    total = len(configs)
    for number, config in configs:
        out += [f"  - name: {shard_deployment_name(number)}",
                f"    description: {_q(f'Poll the feeds of shard {number} of {total} ({config.name}).')}",
                f"    entrypoint: {POLL_ENTRYPOINT}",
                "    parameters:",
                f"      config: {_q(str(config))}",
                "    schedules:",
                *_schedule(schedule),
                "    concurrency_limit:",
                "      limit: 1",
                "      collision_strategy: CANCEL_NEW",
                "    tags: [newsmon, shard]",
                "    work_pool:",
                f"      name: {WORK_POOL}",
                ""]
    return "\n".join(out)
