"""``streamx worker`` as a real process against both simulators (SQLite state): ``--once``
publishes what is due record for record, a restart catches up without starting anything twice,
``/healthz`` and ``/metrics`` answer over HTTP, SIGTERM drains and exits 0, and a second signal
stops at once with a state the next start resumes from."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from worker_helpers import (
    assert_row_exact,
    manifests,
    start_worker,
    vendor_starts,
    wait_for_text,
    write_config,
)

from streamx.state.base import ExportState
from streamx.state.sqlite import SQLiteStore
from streamx.testing import Faults
from streamx.testing.faults import ROUTE_OBJECT_GET
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider
from streamx.worker.schedule import occurrence_key

ROWS = 600


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=ROWS, padding=200), directory=tmp_path) as harness:
        yield harness


def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "streamx-state.sqlite"


async def rows_of(tmp_path: Path) -> list[ExportState]:
    async with SQLiteStore(state_path(tmp_path)) as store:
        return list(await store.list())


async def run_once(sims: SimHarness, config: Path, log: Path, *args: str) -> int:
    with log.open("ab") as handle:
        proc = await start_worker(sims, config, "--once", *args, log=handle)
        return await asyncio.wait_for(proc.wait(), timeout=60)


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_once_publishes_what_is_due_and_catches_up_without_starting_twice(
    sims: SimHarness, tmp_path: Path
) -> None:
    config_path = write_config(sims, tmp_path, catch_up=2)
    # The worker was down: the last opens it planned is from four days ago.
    now = dt.datetime.now(dt.UTC)
    old = occurrence_key("opens", now - dt.timedelta(days=4))
    async with SQLiteStore(state_path(tmp_path)) as store:
        await store.add([ExportState(old, {"name": old}, status="done")], now=now.timestamp())

    log = tmp_path / "worker.log"
    assert await run_once(sims, config_path, log, "--id", "w1") == 0, log.read_text()
    rows = [row for row in await rows_of(tmp_path) if row.key != old]
    # opens catches up its two most recent occurrences (yesterday's and today's); clicks and
    # activity are new schedules: their latest occurrence only.
    assert sorted(row.key.split("@")[0] for row in rows) == ["activity", "clicks", "opens", "opens"]
    config = sims.config()
    assert sum(assert_row_exact(sims, config, row) for row in rows) == len(rows) * ROWS
    assert len(manifests(sims)) == len(rows)
    started = vendor_starts(sims)
    assert sorted(remote for remote, _ in started) == sorted(str(row.remote_id) for row in rows)

    # Two workers restarting together find everything planned and published: nothing starts.
    codes = await asyncio.gather(
        run_once(sims, config_path, log, "--id", "w2"),
        run_once(sims, config_path, log, "--id", "w3"),
    )
    assert codes == [0, 0], log.read_text()
    assert vendor_starts(sims) == started
    assert len(manifests(sims)) == len(rows)
    assert [row.key for row in await rows_of(tmp_path) if row.key != old] == [
        row.key for row in rows
    ]


async def scrape(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        sample.name + _labels(sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(labels: dict[str, str]) -> str:
    return "".join(f"{{{name}={value}}}" for name, value in sorted(labels.items()))


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_metrics_and_healthz_of_a_running_worker_then_sigterm_exits_0(
    sims: SimHarness, tmp_path: Path
) -> None:
    config_path = write_config(sims, tmp_path)
    log = tmp_path / "worker.log"
    with log.open("ab") as handle:
        proc = await start_worker(sims, config_path, "--log-format", "json", log=handle)
        try:
            port = int((await wait_for_text(log, r"on http://127\.0\.0\.1:(\d+)"))[1])
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    body = await response.json()
                assert body["status"] == "ok" and body["draining"] is False
                metrics = await _until_done(session, port, 3)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=30)
    assert code == 0, log.read_text()
    rows = await rows_of(tmp_path)
    config = sims.config()
    records = sum(assert_row_exact(sims, config, row) for row in rows)
    assert metrics["streamx_records_written_total"] == records == 3 * ROWS
    assert metrics.get("streamx_exports_finished_total{status=failed}", 0) == 0
    assert metrics["streamx_bytes_written_total"] > 0
    assert metrics["streamx_bytes_read_total"] > 0
    assert metrics["streamx_transfers_in_flight"] == 0
    assert metrics["streamx_poll_wait_seconds_count"] == 3
    assert metrics["streamx_download_seconds_count"] == 3
    assert metrics["streamx_event_loop_lag_sample_seconds_count"] >= 1
    for state in ("starting", "polling", "queued", "transferring"):
        assert metrics[f"streamx_exports{{state={state}}}"] == 0

    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    done = [line for line in lines if line.get("state") == "done"]
    assert sorted(line["export"].split("@")[0] for line in done) == ["activity", "clicks", "opens"]
    vendors = {"sym": "symplify.", "cor": "cordial."}
    for line in done:
        assert line["stream"].startswith(vendors[line["account"]]), line
        assert line["export_id"]
    text = log.read_text()
    assert sims.symplify.token not in text and sims.cordial.api_key not in text


async def _until_done(session: aiohttp.ClientSession, port: int, count: int) -> dict[str, float]:
    for _ in range(600):
        metrics = await scrape(session, port)
        # A result's counts are added when its task ends, just after the "done" event.
        finished = metrics.get("streamx_exports_finished_total{status=done}", 0) >= count
        written = metrics.get("streamx_records_written_total", 0) >= count * ROWS
        # The lag probe samples every lag_interval (0.5 s); on a fast machine the exports
        # can finish before its first sample, so wait for one rather than race it.
        sampled = metrics.get("streamx_event_loop_lag_sample_seconds_count", 0) >= 1
        if finished and written and sampled:
            return metrics
        await asyncio.sleep(0.05)
    raise AssertionError(f"exports never finished: {metrics}")


async def start_slow_export(
    sims: SimHarness, tmp_path: Path, *, grace: float
) -> tuple[Path, Path, asyncio.subprocess.Process]:
    """A worker whose one export (opens) trickles in for several seconds; returns when its
    transfer has begun (and checkpoints are being taken)."""
    sims.faults.set_account("5004", Faults(trickle_bps=TRICKLE_BPS), route=ROUTE_OBJECT_GET)
    config_path = write_config(sims, tmp_path, exports=("opens",), grace=grace)
    log = tmp_path / "worker.log"
    handle = log.open("ab")
    proc = await start_worker(sims, config_path, "--log-format", "json", log=handle)
    handle.close()
    await wait_for_text(log, r'"state":"checkpoint"|"state":"transfer_start"')
    await asyncio.sleep(0.5)
    return config_path, log, proc


async def assert_resumed_exactly(sims: SimHarness, tmp_path: Path, config_path: Path) -> None:
    """The interrupted export is open and nobody holds it; a ``--once`` run resumes its
    vendor job (no second start) and publishes it exactly."""
    (row,) = await rows_of(tmp_path)
    assert row.status in ("started", "transferring") and row.lease_owner is None, row
    assert len(vendor_starts(sims)) == 1
    sims.faults.clear()
    log = tmp_path / "rerun.log"
    assert await run_once(sims, config_path, log, "--log-format", "json") == 0, log.read_text()
    assert '"state":"resumed"' in log.read_text()
    (row,) = await rows_of(tmp_path)
    assert assert_row_exact(sims, sims.config(), row) == ROWS
    assert len(vendor_starts(sims)) == 1
    assert len(manifests(sims)) == 1


TRICKLE_BPS = 40_000


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_sigterm_drains_within_the_grace_period_releases_and_exits_0(
    sims: SimHarness, tmp_path: Path
) -> None:
    config_path, log, proc = await start_slow_export(sims, tmp_path, grace=0.5)
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), timeout=20)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "draining" in text and "0 export(s) finished, 1 cut short and released" in text
    assert manifests(sims) == []  # nothing half-published
    await assert_resumed_exactly(sims, tmp_path, config_path)


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_second_signal_stops_at_once_and_the_next_start_resumes(
    sims: SimHarness, tmp_path: Path
) -> None:
    config_path, log, proc = await start_slow_export(sims, tmp_path, grace=120.0)
    proc.send_signal(signal.SIGTERM)
    await wait_for_text(log, "draining")
    await asyncio.sleep(0.3)
    assert proc.returncode is None  # still draining: the grace period is long
    proc.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(proc.wait(), timeout=20)  # far less than the grace
    assert code == 130, log.read_text()
    assert "(second signal)" in log.read_text()
    assert manifests(sims) == []
    await assert_resumed_exactly(sims, tmp_path, config_path)
