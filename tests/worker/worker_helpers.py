"""Shared pieces of the worker-process tests: a configuration with schedules for the harness's
simulators, ``streamx worker`` subprocesses, and record-for-record checks of what they
published."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from streamx.config import Config
from streamx.state.base import ExportState
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START, SimHarness

CONFIG = """
[engine]
poll_interval = 0.01
poll_interval_max = 0.05
backoff_base = 0.01
backoff_cap = 0.05
retry_after_cap = 3.0
deadline = 60.0
read_timeout = 2.0
connect_timeout = 2.0

[output]
dir = "{out}"
records_per_part = 400

[state]
{state}
checkpoint_seconds = 0.05
lease_seconds = {lease}

[accounts.sym]
vendor = "symplify"
base_url = "{symplify}/rest/5004"
token_env = "TEST_SYMPLIFY_TOKEN"

[accounts.cor]
vendor = "cordial"
base_url = "{cordial}"
api_key_env = "TEST_CORDIAL_KEY"
records_per_file = 100
[accounts.cor.landing]
type = "local"
dir = "{landing}"

[exports.opens]
account = "sym"
stream = "opens"
period = "LAST_DAY"

[exports.clicks]
account = "sym"
stream = "clicks"
period = "LAST_DAY"

[exports.activity]
account = "cor"
stream = "contact_activity"
start = "{activity_start}"
end = "{activity_end}"

[worker]
host = "127.0.0.1"
port = 0
max_exports = {max_exports}
heartbeat = {heartbeat}
tick = 0.2
grace = {grace}
max_tick_age = 30
"""


def daily_at_past_minutes(minutes: int = 10) -> str:
    """A UTC daily time ``minutes`` ago: today's occurrence is due, the next one is a day
    away (no occurrence boundary falls inside a test)."""
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    return moment.strftime("%H:%M:%S")


def write_config(
    sims: SimHarness,
    directory: Path,
    *,
    exports: Sequence[str] = ("opens", "clicks", "activity"),
    catch_up: int = 1,
    state: str = 'path = "state/streamx-state.sqlite"',
    lease: float = 30.0,
    heartbeat: float = 1.0,
    grace: float = 30.0,
    max_exports: int = 8,
) -> Path:
    """A streamx.toml with a daily schedule (due now) for each of ``exports``."""
    text = CONFIG.format(
        out=sims.out,
        state=state,
        lease=lease,
        symplify=sims.symplify.base_url,
        cordial=sims.cordial.base_url,
        landing=sims.landing,
        activity_start=ACTIVITY_START,
        activity_end=ACTIVITY_END,
        max_exports=max_exports,
        heartbeat=heartbeat,
        grace=grace,
    )
    at = daily_at_past_minutes()
    for name in exports:
        text += f'\n[worker.schedules.{name}]\ndaily = "{at}"\ncatch_up = {catch_up}\n'
    path = directory / "streamx.toml"
    path.write_text(text)
    return path


def child_env(sims: SimHarness, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TEST_SYMPLIFY_TOKEN": sims.symplify.token,
        "TEST_CORDIAL_KEY": sims.cordial.api_key,
        **extra,
    }


async def start_worker(
    sims: SimHarness,
    config: Path,
    *args: str,
    log: IO[bytes],
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """``python -m streamx worker --config CONFIG ARGS``, its output into ``log``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamx",
        "worker",
        "--config",
        str(config),
        *args,
        env=env or child_env(sims),
        stdout=log,
        stderr=log,
    )


async def wait_for_text(path: Path, pattern: str, *, timeout: float = 30.0) -> re.Match[str]:
    """Poll ``path`` until ``pattern`` (a regex) matches its text; returns the match."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = re.search(pattern, path.read_text(errors="replace"))
        if found is not None:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"{pattern!r} never appeared in {path}:\n{path.read_text()}")
        await asyncio.sleep(0.05)


def assert_row_exact(sims: SimHarness, config: Config, row: ExportState) -> int:
    """See :meth:`SimHarness.assert_row_exact`."""
    return sims.assert_row_exact(config, row)


def manifests(sims: SimHarness) -> list[Path]:
    """Every manifest under the output directory."""
    return sorted(sims.out.rglob("*.manifest.json"))


def vendor_starts(sims: SimHarness) -> list[tuple[str, float]]:
    """Every vendor job the simulators were asked to start: ``(remote id, wall time)``."""
    return [*sims.symplify.starts, *sims.cordial.starts]
