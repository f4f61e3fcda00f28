"""``streamx run --config`` as a subprocess against the simulators served by the test's loop."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from streamx.manifest import Manifest
from streamx.testing import Faults
from streamx.testing.faults import ROUTE_SYMPLIFY_START
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider

CONFIG = """
[engine]
poll_interval = 0.02
poll_interval_max = 0.1
backoff_base = 0.01
backoff_cap = 0.05

[output]
dir = "out"

[accounts.se]
vendor = "symplify"
base_url = "{symplify}/rest/5004"
token_env = "TEST_SYMPLIFY_TOKEN"

[accounts.us]
vendor = "cordial"
base_url = "{cordial}"
api_key_file = "cordial.key"
records_per_file = 40
[accounts.us.landing]
type = "local"
dir = "{landing}"

[[exports]]
name = "opens"
account = "se"
stream = "opens"
period = "LAST_DAY"

[[exports]]
name = "activity"
account = "us"
stream = "contact_activity"
start = "2026-10-31T00:00:00Z"
end = "2026-11-01T00:00:00Z"
"""


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=100), directory=tmp_path / "sims") as harness:
        yield harness


def _write_config(sims: SimHarness, directory: Path) -> Path:
    (directory / "cordial.key").write_text(sims.cordial.api_key + "\n")
    path = directory / "streamx.toml"
    path.write_text(
        CONFIG.format(
            symplify=sims.symplify.base_url, cordial=sims.cordial.base_url, landing=sims.landing
        )
    )
    return path


async def _streamx(*args: str, token: str) -> tuple[int, str, str]:
    env = {**os.environ, "TEST_SYMPLIFY_TOKEN": token}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamx", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.asyncio
async def test_run_publishes_every_configured_export(sims: SimHarness, tmp_path: Path) -> None:
    config = _write_config(sims, tmp_path)
    token = sims.symplify.token
    code, out, err = await _streamx("run", "--config", str(config), "--json", token=token)
    assert code == 0, err
    lines: list[dict[str, Any]] = [orjson.loads(line) for line in out.splitlines()]
    assert [(line["name"], line["status"], line["records"]) for line in lines] == [
        ("opens", "done", 100),
        ("activity", "done", 100),
    ]
    assert lines[1]["files"] == 3  # 100 rows in chunk files of 40
    for line in lines:
        manifest = Manifest.from_json(Path(line["manifest"]).read_bytes())
        assert str(tmp_path / "out") in line["manifest"] and manifest.records == 100
    assert token not in out + err and sims.cordial.api_key not in out + err


@pytest.mark.asyncio
async def test_run_selects_exports_and_reports_failures(sims: SimHarness, tmp_path: Path) -> None:
    config = _write_config(sims, tmp_path)
    sims.faults.push(ROUTE_SYMPLIFY_START, Faults(job_failed="x"))
    args = ("run", "--config", str(config), "--export", "opens", "--dt", "2026-11-01")
    code, out, _ = await _streamx(*args, token=sims.symplify.token)
    assert code == 1
    assert out.startswith("opens: FAILED (JobFailedError)") and "activity" not in out
    code, out, _ = await _streamx(*args, "--out", str(tmp_path / "o2"), token=sims.symplify.token)
    assert code == 0 and "opens: done, 100 records" in out
    assert "/o2/symplify/symplify.opens/dt=2026-11-01/" in out


@pytest.mark.asyncio
async def test_configuration_problems_exit_2_before_anything_runs(
    sims: SimHarness, tmp_path: Path
) -> None:
    config = _write_config(sims, tmp_path)
    code, _, err = await _streamx("run", "--config", str(config), token="")
    assert code == 2 and "TEST_SYMPLIFY_TOKEN is not set" in err
    code, _, err = await _streamx("run", "--config", str(config), "--export", "weekly", token="t")
    assert code == 2 and "no export named 'weekly'" in err
    assert sims.store.ranges == [] and not (tmp_path / "out").exists()
