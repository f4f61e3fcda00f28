"""The Cordial client against the Cordial simulator, with a local landing zone."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from streamx.config import ExportSpec
from streamx.engine.clock import SystemClock
from streamx.engine.errors import AuthError, RequestRejectedError
from streamx.engine.retry import RetryPolicy
from streamx.exceptions import ConfigError, PermanentError
from streamx.landing import LocalLandingZone
from streamx.testing import CordialSim, FaultPlan, Faults, ManualClock
from streamx.testing.faults import ROUTE_CORDIAL_EXPORT
from streamx.testing.seeded import SeededProvider
from streamx.vendors.base import CallOptions, JobStatus
from streamx.vendors.cordial import (
    CordialClient,
    FileChoices,
    base_url_of,
    basic_auth,
    column_labels,
    export_request,
)

START, END = "2026-10-31T00:00:00Z", "2026-11-01T00:00:00Z"
ACTIVITY = ExportSpec("a", "acme", "contact_activity", start=START, end=END)
CONTACTS = ExportSpec("c", "acme", "contacts", options={"lists": ["vip", 42]})
TRENDS = ExportSpec(
    "t", "acme", "audience_trends", start="2026-10-25", end="2026-10-27",
    options={"audiences": ["vip_members"]},
)  # fmt: skip


@pytest_asyncio.fixture
async def sim(tmp_path: Path) -> AsyncIterator[CordialSim]:
    provider = SeededProvider(rows=95)
    async with CordialSim(
        provider=provider, clock=ManualClock(), faults=FaultPlan(), local_root=tmp_path
    ) as running:
        yield running


@pytest_asyncio.fixture
async def client(sim: CordialSim, tmp_path: Path) -> AsyncIterator[CordialClient]:
    async with aiohttp.ClientSession() as session:
        yield CordialClient(
            session, account="acme", api_key=sim.api_key, landing=LocalLandingZone(tmp_path),
            clock=SystemClock(), base_url=sim.base_url, records_per_file=10,
        )  # fmt: skip


async def _finish(sim: CordialSim, client: CordialClient, job: str) -> JobStatus:
    assert isinstance(sim.clock, ManualClock)
    sim.clock.advance(60)
    for _ in range(500):
        status = await client.poll(job)
        if status.done or status.failed:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job} never ended")


def test_regions_and_base_urls() -> None:
    assert base_url_of(None, None) == "https://api.cordial.io/v2"
    assert base_url_of("usw2", None) == "https://api.usw2.cordial.io/v2"
    assert base_url_of("usw2", "http://127.0.0.1:9/") == "http://127.0.0.1:9/v2"
    assert base_url_of(None, "http://127.0.0.1:9/v2/") == "http://127.0.0.1:9/v2"
    with pytest.raises(ConfigError, match="unknown Cordial region"):
        base_url_of("eu", None)


def test_basic_auth_is_the_key_with_an_empty_password() -> None:
    scheme, encoded = basic_auth("k3y").split()
    assert scheme == "Basic" and base64.b64decode(encoded) == b"k3y:"


def test_requests_carry_streamx_choices_and_the_specs_options() -> None:
    choices = FileChoices(records_per_file=1000, compress=True)
    spec = dataclasses.replace(ACTIVITY, options={"exportType": "CSV"})
    body = export_request(
        spec, "cordial.contact_activity", name="streamx-1", destination={"type": "local"},
        choices=choices,
    )  # fmt: skip
    assert body == {
        "exportType": "csv",
        "name": "streamx-1",
        "destination": {"type": "local"},
        "limitRecordsPerFile": 1000,
        "compress": True,
        "showHeader": True,
        "selected_timeframe_start": START,
        "selected_timeframe_end": END,
    }
    days = ExportSpec("t", "acme", "audience_trends", days=2, options={"audiences": ["x"]})
    trends = export_request(
        days, "cordial.audience_trends", name="n", destination={}, choices=choices
    )
    assert trends["exportType"] == "csv" and len(trends["selected_timeframe_start"]) == 10
    contacts = export_request(
        CONTACTS, "cordial.contacts", name="n", destination={}, choices=choices
    )
    assert contacts["exportType"] == "json" and "selected_timeframe_start" not in contacts


def test_column_labels_map_renamed_columns_and_list_columns() -> None:
    spec = ExportSpec(
        "a", "acme", "contact_activity",
        options={"columnHeaders": [{"name": "email", "label": "Contact Email"}, {"name": "cID"}]},
    )  # fmt: skip
    assert column_labels(spec) == {"Contact Email": "email", "cID": "cID"}
    assert column_labels(CONTACTS) == {"vip": "lists.vip", "42": "lists.42"}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("spec", "stream", "files"),
    [
        (ACTIVITY, "cordial.contact_activity", 10),
        (CONTACTS, "cordial.contacts", 10),
        (TRENDS, "cordial.audience_trends", 1),
    ],
)
async def test_each_export_lands_and_is_located_in_chunk_order(
    sim: CordialSim, client: CordialClient, spec: ExportSpec, stream: str, files: int
) -> None:
    client.check(spec, stream)
    job = await client.start(spec, stream)
    status = await _finish(sim, client, job)
    assert status.done and status.totals == (1 if files == 1 else 95)
    located = await client.locate(job)
    names = [Path(item.name).name for item in located]
    suffix = ".csv.gz" if stream == "cordial.audience_trends" else ".json.gz"
    if files > 1:
        assert names == [f"{names[0].rsplit('_', 1)[0]}_{n}{suffix}" for n in range(1, 11)]
    else:
        assert len(names) == 1 and names[0].endswith(suffix)
    options = CallOptions(RetryPolicy(), SystemClock(), random.Random())
    sizes = [len(b"".join([c async for c in item.open(options)])) for item in located]
    assert sizes == [item.size for item in located]


@pytest.mark.asyncio
async def test_every_start_uses_a_fresh_landing_path(
    sim: CordialSim, client: CordialClient, tmp_path: Path
) -> None:
    first = await client.start(CONTACTS, "cordial.contacts")
    second = await client.start(CONTACTS, "cordial.contacts")
    await _finish(sim, client, first)
    await _finish(sim, client, second)
    one, two = await client.locate(first), await client.locate(second)
    assert {Path(f.name).parent for f in one}.isdisjoint({Path(f.name).parent for f in two})
    assert len(list((tmp_path / "streamx").iterdir())) == 2


@pytest.mark.asyncio
async def test_failed_job_reports_the_vendors_message(
    sim: CordialSim, client: CordialClient
) -> None:
    sim.faults.push(ROUTE_CORDIAL_EXPORT, Faults(job_failed="S3 access denied"))
    job = await client.start(CONTACTS, "cordial.contacts")
    status = await _finish(sim, client, job)
    assert status.failed and status.reason == "S3 access denied"


@pytest.mark.asyncio
async def test_errors_and_unknown_jobs(sim: CordialSim, client: CordialClient) -> None:
    with pytest.raises(RequestRejectedError, match="RECORD_NOT_FOUND"):
        await client.poll("0123456789abcdef01234567")
    with pytest.raises(PermanentError, match="not started by this client"):
        await client.locate("0123456789abcdef01234567")
    bad_request = ExportSpec("a", "acme", "contact_activity", start="yesterday", end="today")
    with pytest.raises(RequestRejectedError, match="ISO-8601"):
        await client.start(bad_request, "cordial.contact_activity")
    async with aiohttp.ClientSession() as session:
        other = CordialClient(
            session, account="acme", api_key="wrong", landing=client.landing,
            clock=SystemClock(), base_url=sim.base_url,
        )  # fmt: skip
        with pytest.raises(AuthError):
            await other.start(CONTACTS, "cordial.contacts")


@pytest.mark.parametrize(
    ("spec", "stream", "message"),
    [
        (ExportSpec("a", "x", "contact_activity"), "cordial.contact_activity", "timeframe"),
        (ExportSpec("a", "x", "contacts", period="TODAY"), "cordial.contacts", "not a period"),
        (
            ExportSpec("a", "x", "contact_activity", days=1, start="2026-01-01"),
            "cordial.contact_activity",
            "not both",
        ),
        (ExportSpec("a", "x", "audience_trends", days=1), "cordial.audience_trends", "audiences"),
        (
            ExportSpec("a", "x", "audience_trends", days=1, options={"audiences": ["a"],
                       "exportType": "json"}),
            "cordial.audience_trends",
            "not supported",
        ),
        (ExportSpec("a", "x", "contacts", options={"destination": {}}), "cordial.contacts", "sets"),
    ],
)  # fmt: skip
def test_check_refuses_what_cannot_be_sent(spec: ExportSpec, stream: str, message: str) -> None:
    session: Any = None
    client = CordialClient(
        session, account="x", api_key="k", landing=LocalLandingZone("/tmp"), clock=SystemClock(),
        base_url="http://127.0.0.1:9",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        client.check(spec, stream)
