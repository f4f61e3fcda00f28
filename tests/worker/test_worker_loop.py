"""The worker loop in-process: an export whose lease another worker took over is cancelled at
the next heartbeat and never written again; occurrence specs are frozen at planning time."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from worker_helpers import child_env, write_config

from streamx.config import load_config
from streamx.state.sqlite import SQLiteStore
from streamx.testing import Faults
from streamx.testing.faults import ROUTE_OBJECT_GET
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider
from streamx.worker.config import load_worker_config
from streamx.worker.main import Worker
from streamx.worker.schedule import Occurrence
from streamx.worker.specs import occurrence_row, occurrence_spec


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=600, padding=400), directory=tmp_path) as harness:
        harness.faults.set_account("5004", Faults(trickle_bps=30_000), route=ROUTE_OBJECT_GET)
        yield harness


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_export_whose_lease_was_taken_over_is_cancelled_and_left_alone(
    sims: SimHarness, tmp_path: Path
) -> None:
    path = write_config(sims, tmp_path, exports=("opens",), lease=1.0, heartbeat=0.2)
    config, worker_config = load_worker_config(path, env=child_env(sims))
    async with SQLiteStore(config.state.path) as store:
        worker = Worker(config, worker_config, store)
        running = asyncio.create_task(worker.run())
        try:
            (key,) = await _until(lambda: list(worker._running))
            await _until(lambda: store.list(["transferring"]))
            # Another worker takes the row over (as if this one had stalled past its lease).
            await store.release(worker.owner, [key])
            (taken,) = await store.claim("thief", now=_now(), lease_seconds=60, limit=1)
            assert taken.key == key
            await _until(lambda: worker.report.lost)
            assert worker.report.lost == [key]
            await _until(lambda: [] if key in worker._running else [key])
            before = await store.get(key)
            await asyncio.sleep(0.5)  # the cancelled export writes nothing more
            after = await store.get(key)
            assert before == after and after is not None
            assert after.lease_owner == "thief" and after.status == "transferring"
            assert worker.report.results == []
        finally:
            worker.shutdown.request()
            report = await asyncio.wait_for(running, timeout=20)
    assert report.lost == [key]


def test_a_relative_cordial_timeframe_is_fixed_at_the_occurrence(tmp_path: Path) -> None:
    text = """
[accounts.cor]
vendor = "cordial"
api_key_env = "KEY"
[accounts.cor.landing]
type = "local"
dir = "landing"
[exports.activity]
account = "cor"
stream = "contact_activity"
days = 1.5
[exports.trends]
account = "cor"
stream = "audience_trends"
days = 2
[exports.opens]
account = "cor"
stream = "contacts"
[worker.schedules.activity]
every = "1h"
"""
    path = tmp_path / "streamx.toml"
    path.write_text(text)
    config, _ = load_worker_config(path, env={"KEY": "k" * 12})
    # The other commands read the same file: they ignore [worker].
    assert load_config(path, env={"KEY": "k" * 12}).exports == config.exports
    at = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
    spec = occurrence_spec(config, Occurrence("activity", at))
    assert spec.name == "activity@2026-03-29T01:30:00Z"
    assert (spec.start, spec.end, spec.days) == (
        "2026-03-27T13:30:00.000Z",
        "2026-03-29T01:30:00.000Z",
        None,
    )
    assert spec.dt == "2026-03-29"
    trends = occurrence_spec(config, Occurrence("trends", at))
    assert (trends.start, trends.end) == ("2026-03-27", "2026-03-29")
    row = occurrence_row(config, Occurrence("opens", at))
    assert row.key == "opens@2026-03-29T01:30:00Z" and row.status == "planned"
    assert row.spec["name"] == row.key and row.spec["occurrence"] == "2026-03-29T01:30:00Z"
    assert row.spec["start"] is None and row.spec["account"] == "cor"


async def _until(probe: Callable[[], Any], timeout: float = 20.0) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return list(value)
        await asyncio.sleep(0.02)
    raise AssertionError("condition never held")


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()
