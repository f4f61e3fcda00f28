"""Cordial jobs are started once even when a kill cuts off the start request.

streamx names each Cordial job and records the name before the POST; a rerun that finds a name
but no job id looks the job up (``GET jobs``) and adopts it. The crash window is recreated
exactly: the job is started through the client under the recorded name (the POST reached the
vendor), and the row is left as a process killed before the answer would leave it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from streamx.config import ExportSpec
from streamx.durable.tracker import DurableOptions, NamedJobs, spec_record
from streamx.engine.export import EngineEvent
from streamx.engine.runner import Engine
from streamx.landing import LocalLandingZone
from streamx.state.base import ExportState
from streamx.state.sqlite import SQLiteStore
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START, SimHarness
from streamx.testing.seeded import SeededProvider
from streamx.vendors import cordial
from streamx.vendors.base import ClientSettings
from streamx.vendors.cordial import CordialClient
from streamx.vendors.registry import make_client

ACTIVITY = ExportSpec("activity", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END)
STREAM = "cordial.contact_activity"


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=700), directory=tmp_path) as harness:
        yield harness


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "state.sqlite") as opened:
        yield opened


@pytest_asyncio.fixture
async def client(sims: SimHarness) -> AsyncIterator[CordialClient]:
    """The client the engine would build for account ``cor`` (same files, same landing)."""
    async with aiohttp.ClientSession() as session:
        built = make_client(
            sims.config().accounts["cor"],
            session,
            sims.clock,
            ClientSettings(),
            LocalLandingZone(sims.landing),
        )
        assert isinstance(built, CordialClient)
        yield built


def durable(tmp_path: Path) -> DurableOptions:
    return DurableOptions(spool_dir=tmp_path / "spool", checkpoint_seconds=0.0)


async def cut_off_row(store: SQLiteStore, handle: dict[str, str]) -> None:
    """The row as a process killed between recording the job's name and its id leaves it."""
    extra: dict[str, Any] = {"job": handle, "starting": 1.0, "starts": 1}
    await store.add([ExportState("activity", spec_record(ACTIVITY), extra=extra)], now=1.0)


async def run_durable(
    sims: SimHarness, store: SQLiteStore, tmp_path: Path
) -> tuple[Any, list[EngineEvent]]:
    events: list[EngineEvent] = []
    async with Engine(
        sims.config(), store=store, durable=durable(tmp_path), on_event=events.append
    ) as engine:
        (result,) = await engine.run([ACTIVITY])
    return result, events


def kinds(events: list[EngineEvent]) -> list[str]:
    return [event.kind for event in events if event.kind in ("started", "resumed", "gone")]


@pytest.mark.asyncio
async def test_a_job_whose_start_was_cut_off_is_found_by_name_and_adopted(
    sims: SimHarness, store: SQLiteStore, client: CordialClient, tmp_path: Path
) -> None:
    handle = client.plan_job()
    orphan = await client.start_job(ACTIVITY, STREAM, handle)  # the POST reached Cordial
    await cut_off_row(store, handle)

    result, events = await run_durable(sims, store, tmp_path)

    sims.assert_exact(result, sims.config())
    assert result.remote_id == orphan and result.resumed
    assert [job_id for job_id, _ in sims.cordial.starts] == [orphan]  # exactly one start
    assert kinds(events) == ["resumed"]
    row = await store.get("activity")
    assert row is not None and row.status == "done" and row.remote_id == orphan
    assert row.extra["job"] == handle and "starting" not in row.extra


@pytest.mark.asyncio
async def test_a_recorded_name_cordial_does_not_know_is_started_once_under_that_name(
    sims: SimHarness, store: SQLiteStore, client: CordialClient, tmp_path: Path
) -> None:
    handle = client.plan_job()  # recorded, but the process died before the POST
    await cut_off_row(store, handle)

    result, events = await run_durable(sims, store, tmp_path)

    sims.assert_exact(result, sims.config())
    assert not result.resumed and kinds(events) == ["started"]
    assert [job_id for job_id, _ in sims.cordial.starts] == [result.remote_id]
    assert result.remote_id is not None
    assert sims.cordial.job(result.remote_id)["metadata"]["name"] == handle["name"]


@pytest.mark.asyncio
async def test_a_fresh_durable_export_records_its_name_and_starts_once(
    sims: SimHarness, store: SQLiteStore, tmp_path: Path
) -> None:
    result, events = await run_durable(sims, store, tmp_path)
    sims.assert_exact(result, sims.config())
    assert kinds(events) == ["started"] and len(sims.cordial.starts) == 1
    row = await store.get("activity")
    assert row is not None and row.remote_id == result.remote_id
    assert row.extra["job"]["name"].startswith("streamx-")
    # A second run finds the export done: no lookup, no start.
    again, _ = await run_durable(sims, store, tmp_path)
    assert again.skipped and len(sims.cordial.starts) == 1


@pytest.mark.asyncio
async def test_find_job_reads_every_page_and_matches_the_exact_name(
    sims: SimHarness, client: CordialClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cordial, "FIND_PER_PAGE", 2)  # five jobs span three pages
    handles = [client.plan_job() for _ in range(5)]
    ids = [await client.start_job(ACTIVITY, STREAM, handle) for handle in handles]
    assert isinstance(client, NamedJobs)
    for handle, job_id in zip(handles, ids, strict=True):
        assert await client.find_job(handle["name"], STREAM) == job_id
        assert await client.find_job(handle["name"]) == job_id  # without the type filter
    assert await client.find_job(handles[0]["name"] + "0", STREAM) is None
    assert await client.find_job(handles[0]["name"], "cordial.contacts") is None  # other type
    assert client.job_handle(ids[0]) == handles[0]
    assert client.job_handle("unknown") is None
