"""The engine with a state store, in process: a crashed export resumes from its checkpoint
without reading again what the checkpoint covers, a kill while publishing is finished without
reading anything, a job the vendor forgot is replaced, and Symplify overlaps are removed.

A "crash" here cancels the engine while a result file is half read (or the manifest is being
opened): like kill -9, nothing after the last checkpoint counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from streamx import offload
from streamx.config import Config, ExportSpec
from streamx.durable.dedupe import DedupeIndex
from streamx.durable.tracker import DurableOptions, spec_record
from streamx.engine.export import EngineEvent, ExportResult
from streamx.engine.runner import Engine
from streamx.landing import LocalLandingZone
from streamx.sinks.local import LocalPartUpload, LocalSink
from streamx.state.base import ExportState
from streamx.state.sqlite import SQLiteStore
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START, SimHarness
from streamx.testing.provider import Row
from streamx.testing.seeded import SeededProvider
from streamx.vendors.base import CallOptions

ACTIVITY = ExportSpec("activity", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END)
OPENS = ExportSpec("opens", "sym", "opens", period="LAST_DAY")
PIECE = 16 * 1024


class CountingLanding(LocalLandingZone):
    """The local landing zone, counting the bytes it serves per file, in 16 KiB pieces; with
    ``hang_in`` (the n-th file opened, 1-based) it stops for good after most of that file."""

    def __init__(self, root: Path, *, hang_in: int | None = None) -> None:
        super().__init__(root)
        self.served: dict[str, int] = {}
        self.opened = 0
        self.hang_in = hang_in
        self.hung = asyncio.Event()

    async def open(
        self, name: str, offset: int = 0, options: CallOptions | None = None
    ) -> AsyncIterator[bytes]:
        self.opened += 1
        number, sent = self.opened, 0
        size = (Path(self.root) / name).stat().st_size
        async for chunk in super().open(name, offset, options):
            for start in range(0, len(chunk), PIECE):
                if number == self.hang_in and sent > size * 0.7:
                    self.hung.set()
                    await asyncio.Event().wait()  # until cancelled
                piece = chunk[start : start + PIECE]
                self.served[name] = self.served.get(name, 0) + len(piece)
                sent += len(piece)
                yield piece


class ManifestGate(LocalSink):
    """A local sink that stops for good when the manifest is about to be written."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reached = asyncio.Event()

    async def open(self, relpath: str) -> LocalPartUpload:
        if relpath.endswith(".manifest.json"):
            self.reached.set()
            await asyncio.Event().wait()
        return await super().open(relpath)


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=3000), directory=tmp_path) as harness:
        yield harness


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "state.sqlite") as opened:
        yield opened


def durable(tmp_path: Path, **changes: Any) -> DurableOptions:
    return DurableOptions(spool_dir=tmp_path / "spool", checkpoint_seconds=0.0, **changes)


async def crash_when(event: asyncio.Event, work: asyncio.Task[Any]) -> None:
    """Cancel ``work`` once ``event`` is set (the "kill")."""
    waiter = asyncio.create_task(event.wait())
    done, _ = await asyncio.wait({waiter, work}, return_when=asyncio.FIRST_COMPLETED)
    assert waiter in done, f"the export ended before the crash point: {work.result()}"
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work


@pytest.mark.asyncio
async def test_resume_after_a_crash_mid_file_reads_only_what_was_not_checkpointed(
    sims: SimHarness, store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of lines smaller than a file (~400 KB here), so some of the second file is
    # published before the crash (the JSON lines path publishes a block as a whole).
    monkeypatch.setattr(offload, "ARROW_BLOCK_BYTES", 64 * 1024)
    config = _parts(sims.config(accounts={"cor": {"records_per_file": 1000}}), 400)
    crashing = CountingLanding(sims.landing, hang_in=2)
    engine = Engine(config, store=store, durable=durable(tmp_path), landing_zones={"cor": crashing})
    async with engine:
        await crash_when(crashing.hung, asyncio.create_task(engine.run([ACTIVITY])))

    row = await store.get("activity")
    assert row is not None and row.status == "transferring" and row.checkpoint is not None
    files = [name for name, _ in row.checkpoint["files"]]
    sizes = [size for _, size in row.checkpoint["files"]]
    assert len(files) == 3
    assert row.checkpoint["file"] == 1 and row.checkpoint["rows"] > 0  # inside the 2nd file

    counting = CountingLanding(sims.landing)
    events: list[EngineEvent] = []
    async with Engine(
        config,
        store=store,
        durable=durable(tmp_path),
        landing_zones={"cor": counting},
        on_event=events.append,
    ) as engine:
        (result,) = await engine.run([ACTIVITY])

    sims.assert_exact(result, config)
    assert result.resumed and result.remote_id == row.remote_id
    assert len(sims.cordial.starts) == 1
    assert "resumed" in [event.kind for event in events]
    # The first file is not read again; the second is read again from its start (its rows
    # already published are skipped, not written twice); the third is read once.
    served = {Path(name).name: count for name, count in counting.served.items()}
    assert served == {Path(files[1]).name: sizes[1], Path(files[2]).name: sizes[2]}
    assert result.bytes_read == sizes[1] + sizes[2] < sum(sizes)
    assert result.files == 3
    final = await store.get("activity")
    assert final is not None and final.status == "done" and final.checkpoint is None


@pytest.mark.asyncio
async def test_a_kill_while_publishing_is_finished_without_reading_anything(
    sims: SimHarness, store: SQLiteStore, tmp_path: Path
) -> None:
    config = _parts(sims.config(), 700)
    gate = ManifestGate(sims.out)
    async with Engine(config, store=store, durable=durable(tmp_path), sink=gate) as engine:
        await crash_when(gate.reached, asyncio.create_task(engine.run([OPENS])))
    row = await store.get("opens")
    assert row is not None and row.checkpoint is not None and row.checkpoint["complete"]
    sent, polls = sims.store_bytes(), len(sims.store.ranges)

    async with Engine(config, store=store, durable=durable(tmp_path)) as engine:
        (result,) = await engine.run([OPENS])

    sims.assert_exact(result, config)
    assert result.resumed and result.bytes_read == 0
    assert (sims.store_bytes(), len(sims.store.ranges)) == (sent, polls)  # nothing downloaded
    assert len(sims.symplify.starts) == 1


@pytest.mark.asyncio
async def test_a_job_the_vendor_no_longer_knows_is_replaced(
    sims: SimHarness, store: SQLiteStore, tmp_path: Path
) -> None:
    stale = ExportState("opens", spec_record(OPENS), status="started", remote_id="999999")
    await store.add([stale], now=1.0)
    events: list[EngineEvent] = []
    config = sims.config()
    async with Engine(
        config, store=store, durable=durable(tmp_path), on_event=events.append
    ) as engine:
        (result,) = await engine.run([OPENS])
    sims.assert_exact(result, config)
    assert result.remote_id != "999999" and not result.resumed
    assert [e.kind for e in events if e.kind in ("resumed", "gone", "started")] == [
        "resumed",
        "gone",
        "started",
    ]
    assert len(sims.symplify.starts) == 1


@pytest.mark.asyncio
async def test_a_published_export_is_skipped_by_the_next_run(
    sims: SimHarness, store: SQLiteStore, tmp_path: Path
) -> None:
    config = sims.config()
    async with Engine(config, store=store, durable=durable(tmp_path)) as engine:
        first = await engine.run([OPENS, ACTIVITY])
    async with Engine(config, store=store, durable=durable(tmp_path)) as engine:
        second = await engine.run([OPENS, ACTIVITY])
    for done, skipped in zip(first, second, strict=True):
        sims.assert_exact(done, config)
        assert skipped.skipped and skipped.ok
        assert (skipped.records, skipped.manifest_location) == (
            done.records,
            done.manifest_location,
        )
    assert len(sims.symplify.starts) == len(sims.cordial.starts) == 1


class SameRows(SeededProvider):
    """Every Symplify batch holds the same rows (as two overlapping periods would)."""

    def symplify_rows(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> Iterator[Row]:
        return super().symplify_rows(customer_id, export_type, period, "fixed")


@pytest.mark.asyncio
async def test_overlapping_symplify_event_exports_publish_each_event_once(
    tmp_path: Path, store: SQLiteStore
) -> None:
    week = ExportSpec("week", "sym", "opens", period="LAST_WEEK")
    again = ExportSpec("week-again", "sym", "opens", period="LAST_WEEK")
    lists_a = ExportSpec("lists-a", "sym", "lists", period="LAST_DAY")
    lists_b = ExportSpec("lists-b", "sym", "lists", period="LAST_DAY")
    async with (
        SimHarness(SameRows(rows=300), directory=tmp_path / "sims") as sims,
        DedupeIndex(tmp_path / "ids.sqlite") as index,
    ):
        config = sims.config()
        options = durable(tmp_path, dedupe=index)
        results: list[ExportResult] = []
        for spec in (week, again, lists_a, lists_b):
            async with Engine(config, store=store, durable=options) as engine:
                results += await engine.run([spec])
    first, second, entities_a, entities_b = results
    assert all(result.ok for result in results)
    assert (first.records, first.rows_read) == (300, 300)
    # The second export read the same 300 events and published none of them again.
    assert (second.records, second.rows_read, second.rows_quarantined) == (0, 300, 0)
    # Entities are snapshots: a later export of the same lists is published in full.
    assert entities_a.records == entities_b.records == 300


def _parts(config: Config, records: int) -> Config:
    output = dataclasses.replace(config.output, records_per_part=records)
    return dataclasses.replace(config, output=output)
