"""The engine against both simulators over loopback, with every fault knob.

Each case ends in one of two ways: the published export equals, record for record, what the
seeded generator produced (normalized in memory), or the export fails with a clear permanent
error after a bounded number of retries and publishes nothing.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from streamx.config import ExportSpec
from streamx.engine.runner import EngineEvent, ExportResult
from streamx.testing import Faults, SymplifyFormat, http_date
from streamx.testing.faults import (
    ROUTE_CORDIAL_EXPORT,
    ROUTE_CORDIAL_JOB,
    ROUTE_OBJECT_GET,
    ROUTE_SYMPLIFY_BATCH,
    ROUTE_SYMPLIFY_RESULT_URL,
    ROUTE_SYMPLIFY_START,
)
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START, FAST_ENGINE, SimHarness
from streamx.testing.seeded import SeededProvider
from streamx.vendors.symplify import EXPORT_TYPES, PERIODS

MIB = 1 << 20
OPENS = ExportSpec("opens", "sym", "opens", period="LAST_DAY")
ACTIVITY = ExportSpec("activity", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END)


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=400), directory=tmp_path) as harness:
        yield harness


async def run_one(sims: SimHarness, spec: ExportSpec, **config: object) -> ExportResult:
    (result,) = await sims.run([spec], sims.config(**config))  # type: ignore[arg-type]
    return result


def assert_failed(sims: SimHarness, result: ExportResult, error_type: str) -> None:
    assert result.status == "failed", result
    assert result.error_type == error_type, result.error
    assert result.manifest is None
    assert sims.visible_files() == []


# --- clean runs -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_symplify_export_type_and_period_is_exact(sims: SimHarness) -> None:
    encodings = [
        SymplifyFormat("json_array"),
        SymplifyFormat("jsonl", gzip=True),
        SymplifyFormat("csv"),
        SymplifyFormat("json_array", gzip=True),
    ]
    streams = [f"symplify.{name.lower()}" for name in EXPORT_TYPES]
    sims.provider.symplify = lambda _c, stream, _b: encodings[streams.index(stream) % 4]
    specs = [
        ExportSpec(name.lower(), "sym", name.lower(), period=PERIODS[index % len(PERIODS)])
        for index, name in enumerate(EXPORT_TYPES)
    ]
    results = await sims.run(specs)
    for result in results:
        sims.assert_exact(result)
    assert {result.records for result in results} == {400}


@pytest.mark.asyncio
async def test_cordial_exports_are_exact_across_many_chunk_files(sims: SimHarness) -> None:
    labels = [
        {"name": "_id", "label": "_id"},
        {"name": "email", "label": "Contact Email"},
        {"name": "action", "label": "Action"},
        {"name": "time", "label": "time"},
        {"name": "properties.url", "label": "Link"},
    ]
    specs = [
        ACTIVITY,
        dataclasses.replace(
            ACTIVITY,
            name="activity-csv",
            options={
                "exportType": "csv",
                "columnHeaders": labels,
                "selected_action_names": ["open", "click"],
            },
        ),
        ExportSpec("contacts", "cor", "contacts", options={"lists": ["vip", "weekly"]}),
        ExportSpec(
            "trends",
            "cor",
            "audience_trends",
            start="2026-10-25",
            end="2026-10-31",
            options={"audiences": ["opened_last_30_days", "vip_members"]},
        ),
    ]
    config = sims.config(accounts={"cor": {"records_per_file": 35}})
    results = await sims.run(specs, config)
    for result in results:
        sims.assert_exact(result, config)
    activity, filtered, contacts, trends = results
    assert activity.files == 12  # 400 rows in chunks of 35: _1 .. _12, read in numeric order
    assert 0 < filtered.rows_read < 400
    assert contacts.files == 12
    assert (trends.rows_read, trends.records) == (2, 14)


# --- faults that must be retried away -----------------------------------------------------

RECOVERABLE = [
    *[
        (route, Faults(status=status))
        for route in (
            ROUTE_SYMPLIFY_START,
            ROUTE_SYMPLIFY_BATCH,
            ROUTE_SYMPLIFY_RESULT_URL,
            ROUTE_OBJECT_GET,
        )
        for status in (500, 502, 503)
    ],
    (ROUTE_SYMPLIFY_BATCH, Faults(status=429, retry_after="0")),
    (ROUTE_SYMPLIFY_BATCH, Faults(reset_after_bytes=10)),
    (ROUTE_SYMPLIFY_BATCH, Faults(content_length_excess=5)),
    (ROUTE_SYMPLIFY_BATCH, Faults(truncate_at=10)),
    (ROUTE_SYMPLIFY_BATCH, Faults(stall_s=1.0)),
    (ROUTE_SYMPLIFY_RESULT_URL, Faults(expire_url=True)),
    (ROUTE_OBJECT_GET, Faults(status=429, retry_after="0")),
    (ROUTE_OBJECT_GET, Faults(reset_after_bytes=20_000)),
    (ROUTE_OBJECT_GET, Faults(stall_s=1.0)),
    (ROUTE_OBJECT_GET, Faults(stall_after_bytes=20_000, stall_s=1.0)),
    (ROUTE_OBJECT_GET, Faults(content_length_excess=100)),
    (ROUTE_OBJECT_GET, Faults(trickle_bps=1_000_000)),
    (ROUTE_OBJECT_GET, Faults(expire_url=True)),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("route", "faults"), RECOVERABLE)
async def test_symplify_recovers_exactly_from(sims: SimHarness, route: str, faults: Faults) -> None:
    sims.faults.push(route, faults, times=1 if faults.trickle_bps else 2)  # trickling succeeds
    result = await run_one(sims, OPENS)
    sims.assert_exact(result)
    assert sims.faults.pending(route) == 0  # both faults were met


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("route", "faults"),
    [
        (ROUTE_CORDIAL_EXPORT, Faults(status=503)),
        (ROUTE_CORDIAL_EXPORT, Faults(status=429, retry_after="0")),
        (ROUTE_CORDIAL_JOB, Faults(status=500)),
        (ROUTE_CORDIAL_JOB, Faults(reset_after_bytes=20)),
        (ROUTE_CORDIAL_JOB, Faults(stall_s=1.0)),
    ],
)
async def test_cordial_recovers_exactly_from(sims: SimHarness, route: str, faults: Faults) -> None:
    sims.faults.push(route, faults, times=2)
    result = await run_one(sims, ACTIVITY)
    sims.assert_exact(result)
    assert sims.faults.pending(route) == 0


def _retry_delays(events: list[EngineEvent]) -> list[float]:
    return [event.delay for event in events if event.kind == "retry" and event.delay is not None]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("spec", "route", "retry_after", "low", "high"),
    [
        (OPENS, ROUTE_SYMPLIFY_BATCH, "1", 1.0, 1.3),
        (OPENS, ROUTE_SYMPLIFY_BATCH, "HTTP-DATE", 0.9, 2.5),
        (OPENS, ROUTE_SYMPLIFY_BATCH, "0", 0.05, 0.1),  # 0 waits a little: no spinning
        (OPENS, ROUTE_SYMPLIFY_START, "3600", 1.0, 1.2),  # capped at retry_after_cap
        (OPENS, ROUTE_SYMPLIFY_START, None, 0.3, 0.4),  # Symplify's rate_limit_wait
        (ACTIVITY, ROUTE_CORDIAL_JOB, "1", 1.0, 1.3),
    ],
)
async def test_429_waits_as_retry_after_says(
    sims: SimHarness,
    spec: ExportSpec,
    route: str,
    retry_after: str | None,
    low: float,
    high: float,
) -> None:
    if retry_after == "HTTP-DATE":
        retry_after = http_date(time.time() + 2)
    sims.faults.push(route, Faults(status=429, retry_after=retry_after))
    events: list[EngineEvent] = []
    config = sims.config(
        engine=dataclasses.replace(FAST_ENGINE, retry_after_cap=1.0),
        accounts={"sym": {"rate_limit_wait": 0.3}},
    )
    (result,) = await sims.run([spec], config, on_event=events.append)
    sims.assert_exact(result, config)
    (delay,) = _retry_delays(events)
    assert low <= delay <= high
    assert result.retries == 1


@pytest.mark.asyncio
async def test_url_expiring_mid_download_resumes_where_it_stopped(sims: SimHarness) -> None:
    sims.faults.push(ROUTE_OBJECT_GET, Faults(reset_after_bytes=30_000))
    sims.faults.push(ROUTE_OBJECT_GET, Faults(expire_url=True))
    result = await run_one(sims, OPENS)
    sims.assert_exact(result)
    size = result.bytes_read
    assert sims.store.ranges == [None, "bytes=30000-", "bytes=30000-"]
    assert sims.store_bytes() < 2 * size


@pytest.mark.asyncio
async def test_connection_reset_on_every_request_still_completes(sims: SimHarness) -> None:
    sims.faults.set_account("5004", Faults(reset_after_bytes=16_384), route=ROUTE_OBJECT_GET)
    result = await run_one(sims, OPENS)
    sims.assert_exact(result)
    starts = [int(r.split("=")[1].rstrip("-")) if r else 0 for r in sims.store.ranges]
    assert starts == sorted(starts) and len(starts) > 3
    assert sims.store_bytes() < 2 * result.bytes_read


# --- faults that must end in a clear permanent error --------------------------------------


@pytest.mark.asyncio
async def test_truncated_gzip_is_permanent_and_publishes_nothing(sims: SimHarness) -> None:
    sims.provider.symplify = SymplifyFormat("jsonl", gzip=True)
    sims.faults.set_account("5004", Faults(truncate_at=5_000), route=ROUTE_OBJECT_GET)
    result = await run_one(sims, OPENS)
    assert_failed(sims, result, "CorruptInputError")
    assert "_result.json, byte offset 5000" in (result.error or "")
    assert result.retries == 0


@pytest.mark.asyncio
async def test_content_length_that_always_lies_fails_after_bounded_restarts(
    sims: SimHarness,
) -> None:
    sims.faults.set_account("5004", Faults(content_length_excess=100), route=ROUTE_OBJECT_GET)
    result = await run_one(sims, OPENS)
    assert_failed(sims, result, "ObjectChangedError")
    assert result.retries == FAST_ENGINE.transfer_attempts - 1
    assert "REDACTED" in (result.error or "") and "Signature=" in (result.error or "")


@pytest.mark.asyncio
async def test_failed_jobs_end_with_the_vendors_reason(sims: SimHarness) -> None:
    sims.faults.push(ROUTE_SYMPLIFY_START, Faults(job_failed="quota"))
    sims.faults.push(ROUTE_CORDIAL_EXPORT, Faults(job_failed="Destination refused the upload"))
    symplify, cordial = await sims.run([OPENS, ACTIVITY])
    assert_failed(sims, symplify, "JobFailedError")
    assert_failed(sims, cordial, "JobFailedError")
    assert "status ERROR" in (symplify.error or "")
    assert "Destination refused the upload" in (cordial.error or "")


@pytest.mark.asyncio
async def test_jobs_that_never_finish_hit_their_deadline(sims: SimHarness) -> None:
    sims.faults.push(ROUTE_SYMPLIFY_START, Faults(never_finish=True))
    sims.faults.push(ROUTE_CORDIAL_EXPORT, Faults(never_finish=True))
    # Long enough for the job to be started and polled at least once on a loaded machine (with
    # 0.5 s a slow start left no time for a poll: "deadline passed before the first attempt").
    specs = [dataclasses.replace(spec, deadline=2.0) for spec in (OPENS, ACTIVITY)]
    symplify, cordial = await sims.run(specs)
    assert_failed(sims, symplify, "DeadlineExceededError")
    assert_failed(sims, cordial, "DeadlineExceededError")
    assert "last status IN_PROGRESS" in (symplify.error or "")
    assert "last status Processing" in (cordial.error or "")


@pytest.mark.asyncio
async def test_cordial_files_cut_short_are_never_published(sims: SimHarness) -> None:
    sims.faults.push(ROUTE_CORDIAL_EXPORT, Faults(truncate_at=3_000), times=2)
    plain = dataclasses.replace(ACTIVITY, name="plain")
    (gzipped,) = await sims.run([ACTIVITY])
    (cut,) = await sims.run([plain], sims.config(accounts={"cor": {"compress": False}}))
    assert_failed(sims, gzipped, "CorruptInputError")
    assert ".json.gz, byte offset 3000" in (gzipped.error or "")
    assert_failed(sims, cut, "TotalsMismatchError")  # lines cut off: the job's count decides
    assert "the job reports 400" in (cut.error or "")


@pytest.mark.asyncio
async def test_bad_credentials_fail_at_once(sims: SimHarness) -> None:
    config = sims.config(accounts={"sym": {"secret": "wrong"}, "cor": {"secret": "wrong"}})
    results = await sims.run([OPENS, ACTIVITY], config)
    for result in results:
        assert_failed(sims, result, "AuthError")
        assert result.retries == 0
        assert "wrong" not in (result.error or "")


@pytest.mark.asyncio
async def test_an_outage_spends_the_retry_budget_instead_of_storming(sims: SimHarness) -> None:
    sims.faults.set_account("5004", Faults(status=503), route=ROUTE_SYMPLIFY_START)
    engine = dataclasses.replace(
        FAST_ENGINE, retry_budget=5, retry_budget_per_second=0.01, max_attempts=100
    )
    specs = [dataclasses.replace(OPENS, name=f"opens-{n}") for n in range(20)]
    results = await sims.run(specs, sims.config(engine=engine))
    assert all(result.status == "failed" for result in results)
    assert sum(result.retries for result in results) <= 6
    assert {result.error_type for result in results} == {"RetryBudgetExhaustedError"}
    assert sims.visible_files() == []


# --- size ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_64_mib_result_streams_with_flat_memory(sims: SimHarness) -> None:
    padding = 8_000
    sims.provider.padding = padding
    sims.provider.rows = (64 * MIB) // (padding + 240)
    tracemalloc.start()
    try:
        result = await run_one(sims, OPENS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.bytes_read > 60 * MIB
    assert peak < 32 * MIB  # measured ~16 MiB at 16, 64 and 128 MiB: flat, not size-bound
    sims.assert_exact(result)
