"""Shared pieces of the backfill tests: a configuration file for the harness's simulators,
running ``python -m streamx`` against them, and checking published exports record for record."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from typing import IO, Any

from streamx.config import Config
from streamx.state.base import ExportState
from streamx.testing.harness import SimHarness

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
records_per_part = {records_per_part}

[state]
path = "state/streamx-state.sqlite"
checkpoint_seconds = {checkpoint_seconds}
lease_seconds = 30.0

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
"""


def write_config(
    sims: SimHarness,
    directory: Path,
    *,
    records_per_part: int = 150,
    checkpoint_seconds: float = 0.0,
    extra: str = "",
) -> Path:
    """A streamx.toml for the harness's simulators (accounts ``sym`` and ``cor`` as in
    :meth:`SimHarness.config`, so :meth:`SimHarness.expected` applies)."""
    path = directory / "streamx.toml"
    text = CONFIG.format(
        out=sims.out,
        records_per_part=records_per_part,
        checkpoint_seconds=checkpoint_seconds,
        symplify=sims.symplify.base_url,
        cordial=sims.cordial.base_url,
        landing=sims.landing,
    )
    path.write_text(text + extra)
    return path


def child_env(sims: SimHarness) -> dict[str, str]:
    return {
        **os.environ,
        "TEST_SYMPLIFY_TOKEN": sims.symplify.token,
        "TEST_CORDIAL_KEY": sims.cordial.api_key,
    }


async def start_cli(
    sims: SimHarness, *args: str, log: IO[bytes] | None = None
) -> asyncio.subprocess.Process:
    """``python -m streamx ARGS`` as a child process (the simulators keep serving meanwhile);
    its output goes to ``log`` when given, else to pipes."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamx",
        *args,
        env=child_env(sims),
        stdout=log or asyncio.subprocess.PIPE,
        stderr=log or asyncio.subprocess.PIPE,
    )


async def run_cli(sims: SimHarness, *args: str) -> tuple[int, str, str]:
    """Run ``python -m streamx ARGS`` to its end: exit code, stdout, stderr."""
    proc = await start_cli(sims, *args)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def day(offset: int) -> str:
    """Today's UTC date plus ``offset`` days, as YYYY-MM-DD."""
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset)).isoformat()


def assert_row_exact(sims: SimHarness, config: Config, row: ExportState) -> int:
    """See :meth:`SimHarness.assert_row_exact`."""
    return sims.assert_row_exact(config, row)


def starts(sims: SimHarness) -> list[tuple[str, float]]:
    """Every vendor job the simulators were asked to start: ``(remote id, wall time)``."""
    return [*sims.symplify.starts, *sims.cordial.starts]


def result_keys(report: dict[str, Any]) -> list[str]:
    return [entry["key"] for entry in report["exports"]]
