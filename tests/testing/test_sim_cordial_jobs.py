"""Cordial jobs: state machine, listing, and what Done jobs wrote (local directory)."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from sim_helpers import poll_json

from streamx.testing import CordialSim, Faults, ManualClock, StaticRows
from streamx.testing.cordial_http import basic_authorization
from streamx.testing.faults import ROUTE_CORDIAL_EXPORT, ROUTE_CORDIAL_JOB

ACTIVITY: list[dict[str, Any]] = [
    {"cID": f"c{n}", "_id": f"e{n}", "action": ("open", "click", "message-sent", "browse")[n % 4],
     "time": f"2019-03-{24 + n % 3}T10:00:00+0000", "email": f"u{n}@example.com",
     "bmID": f"45:{n}:ot" if n % 5 else "", "mdtID": f"m{n}",
     "properties": {"url": f"https://x.example/{n}"}, "system_properties": {"ip": "192.0.2.1"}}
    for n in range(40)
]  # fmt: skip
WINDOW = {"selected_timeframe_start": "2019-03-24T00:00:00.000Z",
          "selected_timeframe_end": "2019-03-25T23:59:59.999Z"}  # fmt: skip
CONTACTS = [
    {"channels": {"email": {"address": f"p{n}@example.com", "subscribeStatus": "subscribed"}},
     "first_name": f"N{n}", "vip": "1" if n % 2 else "0", "weekly": n % 3 == 0}
    for n in range(7)
]  # fmt: skip


def _in_window(row: dict[str, Any]) -> bool:
    return bool(row["time"] < "2019-03-26")


@pytest_asyncio.fixture
async def sim(clock: ManualClock, tmp_path: Path) -> AsyncIterator[CordialSim]:
    async with CordialSim(clock=clock, local_root=tmp_path, provider=StaticRows(ACTIVITY)) as run:
        yield run


async def _create(
    sim: CordialSim, session: aiohttp.ClientSession, endpoint: str, body: dict[str, Any]
) -> str:
    url = f"{sim.base_url}/{endpoint}"
    async with session.post(url, json=body, headers=sim.auth_headers) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["jobId"])


async def _get(sim: CordialSim, session: aiohttp.ClientSession, job_id: str) -> dict[str, Any]:
    async with session.get(f"{sim.base_url}/jobs/{job_id}", headers=sim.auth_headers) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


async def _finish(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, job_id: str
) -> dict[str, Any]:
    clock.advance(60)
    return await poll_json(
        session,
        f"{sim.base_url}/jobs/{job_id}",
        lambda job: job["status"] in ("Done", "Failed"),
        headers=sim.auth_headers,
    )


def _activity(**options: Any) -> dict[str, Any]:
    return {"name": "acts", "exportType": "csv", "destination": {"type": "local", "path": "out"},
            **WINDOW, **options}  # fmt: skip


@pytest.mark.asyncio
async def test_job_moves_scheduled_pending_processing_done(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    job_id = await _create(sim, session, "contactactivityexport", _activity())
    timings = sim.timings
    seen = [await _get(sim, session, job_id)]
    clock.advance(timings.scheduled_s)
    seen.append(await _get(sim, session, job_id))
    clock.advance(timings.pending_s)
    seen.append(await _get(sim, session, job_id))
    done = await _finish(sim, session, clock, job_id)
    assert [job["status"] for job in seen] == ["Scheduled", "Pending", "Processing"]
    assert seen[0]["times"] == {} and "end" not in seen[2]["times"]
    expected = sum(map(_in_window, ACTIVITY))
    assert done["status"] == "Done"
    assert done["totalItems"] == done["completedItems"] == expected
    assert done["result"] == {"totalRecords": expected}
    assert done["times"]["start"] <= done["times"]["end"]
    assert done["jobName"] == "ExportEvents"
    assert done["metadata"]["exportType"] == "csv"
    assert done["metadata"]["fileName"] == "acts.csv"
    assert done["metadata"]["files"] == ["out/acts.csv"]


@pytest.mark.asyncio
async def test_unknown_or_foreign_job_is_record_not_found(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    async with CordialSim(clock=clock, api_keys=("key-a", "key-b")) as sim:
        job_id = await _create(sim, session, "contactexports", {"destination": {"type": "aws"}})
        other = {"Authorization": basic_authorization("key-b")}
        for job, headers in (("0123456789abcdef01234567", sim.auth_headers), (job_id, other)):
            async with session.get(f"{sim.base_url}/jobs/{job}", headers=headers) as response:
                assert response.status == 404
                assert await response.json() == {
                    "error": True,
                    "errorKey": "RECORD_NOT_FOUND",
                    "message": "record not found",
                }


@pytest.mark.asyncio
async def test_jobs_listing_filters_and_pages(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    first = await _create(sim, session, "contactactivityexport", _activity())
    await _finish(sim, session, clock, first)
    ids = [await _create(sim, session, "contactexports", {"destination": {"type": "aws"}})
           for _ in range(3)]  # fmt: skip

    async def listing(**query: str) -> list[dict[str, Any]]:
        async with session.get(
            f"{sim.base_url}/jobs", params=query, headers=sim.auth_headers
        ) as response:
            assert response.status == 200
            body: list[dict[str, Any]] = await response.json()
            return body

    everything = await listing()
    assert [job["_id"] for job in everything] == [*reversed(ids), first]
    assert [job["_id"] for job in await listing(jobName="ExportEvents")] == [first]
    assert [job["_id"] for job in await listing(status="Done")] == [first]
    assert [job["_id"] for job in await listing(status="Scheduled")] == ids[::-1]
    page_two = await listing(page="2", per_page="3")
    assert [job["_id"] for job in page_two] == [first]
    assert await listing(page="3", per_page="3") == []
    started = everything[-1]["times"]["start"]
    assert [j["_id"] for j in await listing(**{"times[start][gte]": started})] == [first]
    assert await listing(**{"times[start][gt]": started}) == []


@pytest.mark.parametrize(
    ("query", "status", "key"),
    [
        ({"include": "statistic", "per_page": "26"}, 400, "JOBS_STATISTIC_PER_PAGE_EXCEEDED"),
        ({"times[end][lt]": "not-a-time"}, 422, "GENERIC_ERROR_KEY"),
        ({"status": "Sleeping"}, 422, "GENERIC_ERROR_KEY"),
        ({"per_page": "zero"}, 422, "GENERIC_ERROR_KEY"),
    ],
)
@pytest.mark.asyncio
async def test_jobs_listing_errors(
    sim: CordialSim,
    session: aiohttp.ClientSession,
    query: dict[str, str],
    status: int,
    key: str,
) -> None:
    await _create(sim, session, "contactactivityexport", _activity())
    async with session.get(f"{sim.base_url}/jobs", params=query, headers=sim.auth_headers) as r:
        assert r.status == status
        answer = await r.json()
    assert answer["error"] is True and answer["errorKey"] == key and answer["message"]


@pytest.mark.asyncio
async def test_local_delivery_with_chunks_gzip_header_and_labels(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    body = _activity(
        limitRecordsPerFile=7,
        compress=True,
        showHeader=True,
        columnHeaders=[
            {"name": "cID", "label": "Contact ID"},
            {"name": "email", "label": "Contact Email"},
            {"name": "properties.url", "label": "URL"},
            {"name": "time"},
        ],
    )
    job = await _finish(
        sim, session, clock, await _create(sim, session, "contactactivityexport", body)
    )
    expected = [row for row in ACTIVITY if _in_window(row)]
    names = [f"out/acts_{n}.csv.gz" for n in range(1, (len(expected) + 6) // 7 + 1)]
    assert job["status"] == "Done"
    assert job["metadata"]["files"] == names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        Path(name).name for name in names
    )
    rows = []
    for name in names:
        text = gzip.decompress((tmp_path / name).read_bytes()).decode()
        table = list(csv.reader(io.StringIO(text)))
        assert table[0] == ["Contact ID", "Contact Email", "URL", "time"]
        assert 1 <= len(table) - 1 <= 7
        rows.extend(table[1:])
    assert rows == [[r["cID"], r["email"], r["properties"]["url"], r["time"]] for r in expected]


@pytest.mark.asyncio
async def test_activity_filters_and_json_lines(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    body = _activity(
        exportType="json",
        selected_action_names=["open", "message-sent"],
        selected_message_type="batch",
        columnHeaders=[{"name": "_id", "label": "id"}, {"name": "action", "label": "action"},
                       {"name": "system_properties.ip", "label": "ip"}],
    )  # fmt: skip
    job = await _finish(
        sim, session, clock, await _create(sim, session, "contactactivityexport", body)
    )
    lines = (tmp_path / "out" / "acts.json").read_bytes().splitlines()
    expected = [
        {"id": r["_id"], "action": r["action"], "ip": "192.0.2.1"}
        for r in ACTIVITY
        if _in_window(r) and r["action"] in ("open", "message-sent") and r["bmID"]
    ]
    assert [orjson.loads(line) for line in lines] == expected
    assert job["totalItems"] == len(expected)


@pytest.mark.asyncio
async def test_json_without_columns_exports_whole_rows(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    body = _activity(exportType="JSON", selected_action_name="click")
    await _finish(sim, session, clock, await _create(sim, session, "contactactivityexport", body))
    lines = (tmp_path / "out" / "acts.json").read_bytes().splitlines()
    expected = [r for r in ACTIVITY if _in_window(r) and r["action"] == "click"]
    assert [orjson.loads(line) for line in lines] == expected


@pytest.mark.asyncio
async def test_csv_without_columns_uses_the_provider_columns_and_no_header_by_default(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    body = _activity(exportType="txt", delimiter="|", selected_action_name="browse")
    await _finish(sim, session, clock, await _create(sim, session, "contactactivityexport", body))
    table = list(
        csv.reader(io.StringIO((tmp_path / "out" / "acts.txt").read_text()), delimiter="|")
    )
    expected = [r for r in ACTIVITY if _in_window(r) and r["action"] == "browse"]
    assert len(table) == len(expected)
    assert table[0][:3] == [expected[0]["cID"], expected[0]["_id"], "browse"]
    assert table[0][-2:] == [expected[0]["properties"]["url"], "192.0.2.1"]


@pytest.mark.asyncio
async def test_contacts_fields_and_list_columns(
    clock: ManualClock, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with CordialSim(clock=clock, local_root=tmp_path, provider=StaticRows(CONTACTS)) as sim:
        destination = {"type": "local", "path": "c"}
        both = {
            "name": "both",
            "destination": destination,
            "showHeader": "true",
            "fields": ["channels.email.address", "first_name"],
            "lists": ["vip", "weekly"],
        }
        only_lists = {"name": "lists", "destination": destination, "showHeader": True,
                      "lists": ["vip"]}  # fmt: skip
        for body in (both, only_lists):
            await _finish(sim, session, clock, await _create(sim, session, "contactexports", body))
    table = list(csv.reader(io.StringIO((tmp_path / "c" / "both.csv").read_text())))
    assert table[0] == ["channels.email.address", "first_name", "vip", "weekly"]
    assert table[1:] == [
        [f"p{n}@example.com", f"N{n}", "1" if n % 2 else "0", "1" if n % 3 == 0 else "0"]
        for n in range(7)
    ]
    table = list(csv.reader(io.StringIO((tmp_path / "c" / "lists.csv").read_text())))
    assert table == [["channels.email.address", "vip"]] + [
        [f"p{n}@example.com", "1" if n % 2 else "0"] for n in range(7)
    ]


@pytest.mark.asyncio
async def test_audience_trends_rows_follow_the_requested_audiences(
    clock: ManualClock, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    rows = [{"audience": name, "2021-07-16": "10", "2021-07-17": "12"} for name in "abc"]
    async with CordialSim(clock=clock, local_root=tmp_path, provider=StaticRows(rows)) as sim:
        body = {"name": "trends", "exportType": "csv", "destination": {"type": "aws"},
                "selected_timeframe_start": "2021-07-16", "selected_timeframe_end": "2021-07-17",
                "audiences": ["a", "c"], "showHeader": True}  # fmt: skip
        job_id = await _create(sim, session, "audiencetrendsexport", body)
        job = await _finish(sim, session, clock, job_id)
    assert job["metadata"]["files"] == [f"aws/{job_id}/trends.csv"]
    table = list(csv.reader(io.StringIO((tmp_path / "aws" / job_id / "trends.csv").read_text())))
    assert table == [["audience", "2021-07-16", "2021-07-17"], ["a", "10", "12"], ["c", "10", "12"]]


@pytest.mark.asyncio
async def test_undeliverable_destination_fails_the_job(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    ftp = {"type": "ftp", "server": "ftp.example.com", "port": 21, "username": "u",
           "password": "p", "path": "./"}  # fmt: skip
    s3 = {"type": "s3", "aws_access_key_id": "A", "aws_secret_access_key": "B",
          "aws_bucket": "b", "aws_region": "us-east-1", "path": "p"}  # fmt: skip
    for destination, reason in ((ftp, "'ftp' cannot be delivered"), (s3, "s3_endpoint_url")):
        job_id = await _create(
            sim, session, "contactactivityexport", _activity(destination=destination)
        )
        job = await _finish(sim, session, clock, job_id)
        assert job["status"] == "Failed"
        assert reason in job["errorMessage"]
        assert "result" not in job


@pytest.mark.asyncio
async def test_failed_and_endless_job_faults(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    sim.faults.push(ROUTE_CORDIAL_EXPORT, Faults(job_failed="quota exceeded"))
    sim.faults.push(ROUTE_CORDIAL_EXPORT, Faults(never_finish=True))
    failed = await _create(sim, session, "contactactivityexport", _activity(name="failed"))
    endless = await _create(sim, session, "contactactivityexport", _activity(name="endless"))
    job = await _finish(sim, session, clock, failed)
    assert (job["status"], job["errorMessage"]) == ("Failed", "quota exceeded")
    assert not (tmp_path / "out" / "failed.csv").exists()
    clock.advance(3600)
    assert (await _get(sim, session, endless))["status"] == "Processing"


@pytest.mark.asyncio
async def test_truncate_fault_cuts_each_delivered_file(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    sim.faults.push(ROUTE_CORDIAL_EXPORT, Faults(truncate_at=100))
    body = _activity(compress=True, limitRecordsPerFile=10)
    job = await _finish(
        sim, session, clock, await _create(sim, session, "contactactivityexport", body)
    )
    rows = sum(map(_in_window, ACTIVITY))
    assert job["status"] == "Done" and job["totalItems"] == rows
    assert len(job["metadata"]["files"]) == -(-rows // 10)
    for name in job["metadata"]["files"]:
        data = (tmp_path / name).read_bytes()
        assert len(data) == 100
        decompressor = zlib.decompressobj(31)
        decompressor.decompress(data)
        assert not decompressor.eof


@pytest.mark.asyncio
async def test_status_faults_on_job_polls(sim: CordialSim, session: aiohttp.ClientSession) -> None:
    job_id = await _create(sim, session, "contactactivityexport", _activity())
    sim.faults.push(ROUTE_CORDIAL_JOB, Faults(status=429, retry_after="0"))
    sim.faults.push(ROUTE_CORDIAL_JOB, Faults(status=502))
    answers = []
    for _ in range(3):
        async with session.get(f"{sim.base_url}/jobs/{job_id}", headers=sim.auth_headers) as r:
            answers.append((r.status, r.headers.get("Retry-After"), await r.json()))
    assert answers[0][:2] == (429, "0")
    assert answers[0][2]["error"] is True and answers[0][2]["errorKey"]
    assert answers[1][0] == 502 and answers[1][2]["error"] is True
    assert answers[2][0] == 200 and answers[2][2]["_id"] == job_id
