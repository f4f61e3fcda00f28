"""The fast path writes blocks in background tasks: what a failure or a checkpoint may see.

A file that fails mid-way must not go on writing blocks into the publisher after the error has
left :func:`~streamx.pipeline.ingest_file` (the caller aborts or retries that publisher), and a
checkpoint (``on_chunk``) must see every counted row written, with nothing written while it runs.
A real :class:`~streamx.publish.Publisher` on a local sink is used, with a subclass that only
records each write before doing it.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import FileStats, ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.sinks.local import LocalSink
from tests.columnar.columnar_helpers import fast_path

CTX = ExportContext("cordial", "cordial.contact_activity", "acct", "exp-1")
HEADER = b"cID,_id,action,time,email,bmID,message_name,properties.reason\n"
ROWS = 6000


def activity_csv(rows: int = ROWS) -> bytes:
    lines = [HEADER]
    for n in range(rows):
        lines.append(
            f"c{n},id{n:07d},open,2026-10-0{1 + n % 9}T10:00:{n % 60:02d}+0000,"
            f'u{n}@example.com,b{n % 7},"Subject, {n}",r\n'.encode()
        )
    return b"".join(lines)


class RecordingPublisher(Publisher):
    """A real publisher that notes how many records were written, and when."""

    written = 0

    async def write_encoded(self, data: bytes, ends: Sequence[int], *, rows: int) -> None:
        await super().write_encoded(data, ends, rows=rows)
        self.written += len(ends)

    async def write_records(self, records: list[dict[str, Any]], *, rows: int) -> None:
        await super().write_records(records, rows=rows)
        self.written += len(records)


class SourceLost(Exception):
    """The source failed mid-file (as a dropped connection would)."""


async def pieces(blob: bytes, size: int, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for number, start in enumerate(range(0, len(blob), size)):
        if fail_after is not None and number == fail_after:
            raise SourceLost("connection lost")
        yield blob[start : start + size]


async def let_background_run() -> None:
    """Give any task still alive every chance to write (loop turns and worker-thread trips)."""
    for _ in range(20):
        await asyncio.sleep(0.005)
        await asyncio.to_thread(lambda: None)


def run_with_publisher(scenario: Any) -> Any:
    async def main(root: Path) -> Any:
        sink = LocalSink(root)
        options = OutputOptions(format="jsonl", compression="none")
        try:
            async with RecordingPublisher(sink, CTX, options, dt="2026-11-01") as publisher:
                return await scenario(publisher, root)
        finally:
            await sink.close()

    with tempfile.TemporaryDirectory() as tmp, fast_path(True, block_bytes=4096):
        return asyncio.run(main(Path(tmp)))


def test_a_failed_file_writes_nothing_after_its_error() -> None:
    blob = activity_csv()

    async def scenario(publisher: RecordingPublisher, root: Path) -> tuple[int, int, int]:
        with pytest.raises(SourceLost):
            await ingest_file(
                pieces(blob, 16 * 1024, fail_after=12),
                name="activity.csv",
                ctx=CTX,
                normalizer=get_normalizer(CTX.stream),
                publisher=publisher,
            )
        at_error = publisher.written
        await let_background_run()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        return at_error, publisher.written, len(others)

    at_error, later, tasks_left = run_with_publisher(scenario)
    assert at_error > 0, "the failure should come after some blocks were written"
    assert later == at_error
    assert tasks_left == 0


def test_a_checkpoint_sees_every_counted_row_written_and_nothing_moves_meanwhile() -> None:
    blob = activity_csv()
    seen: list[tuple[int, int, int]] = []

    async def scenario(publisher: RecordingPublisher, root: Path) -> FileStats:
        async def on_chunk(stats: FileStats) -> None:
            before = publisher.written
            await let_background_run()  # what a checkpoint's own awaits allow
            seen.append((stats.records, before, publisher.written))

        return await ingest_file(
            pieces(blob, 64 * 1024),
            name="activity.csv",
            ctx=CTX,
            normalizer=get_normalizer(CTX.stream),
            publisher=publisher,
            on_chunk=on_chunk,
        )

    stats = run_with_publisher(scenario)
    assert stats.records == ROWS
    assert len(seen) > 3
    assert all(counted == before == after for counted, before, after in seen), seen


def test_without_checkpoints_blocks_are_written_in_order() -> None:
    blob = activity_csv()

    async def scenario(publisher: RecordingPublisher, root: Path) -> list[str]:
        await ingest_file(
            pieces(blob, 16 * 1024),
            name="activity.csv",
            ctx=CTX,
            normalizer=get_normalizer(CTX.stream),
            publisher=publisher,
        )
        manifest = await publisher.commit()
        lines = (root / manifest.parts[0].path).read_text().splitlines()
        return [line.split('"record_id":"')[1].split('"')[0] for line in lines]

    ids = run_with_publisher(scenario)
    assert ids == [f"id{n:07d}" for n in range(ROWS)]
