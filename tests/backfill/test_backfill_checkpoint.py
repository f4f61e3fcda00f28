"""Checkpoints are exact: any sequence of crashes and resumes publishes what a clean run does.

One input file (CSV with malformed rows to quarantine and repeated event ids to deduplicate)
goes through the real chain (pipeline, publisher, :class:`CheckpointSink`, record-id index),
the way the engine drives it. A "crash" abandons everything mid-file without aborting or
closing anything properly, *after* more rows were written past the last checkpoint (parts
rolled and published, quarantine lines spooled): those must be overwritten or cut away by the
resume. The final manifest, the records of its parts, the quarantine file and the index must
equal a clean run's.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamx.durable.checkpoint import Checkpoint, CheckpointSink, FileRef, consumed, position
from streamx.durable.dedupe import DedupeIndex
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import FileStats, ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.sinks.local import LocalSink
from streamx.testing import data
from streamx.testing.files import encode_chunks

CTX = ExportContext("symplify", "symplify.opens", "acct", "555")
OPTIONS = OutputOptions(max_records_per_part=300, compression="none")
ROWS, REPEATED, MALFORMED = 1500, range(100, 160), range(7, 1560, 97)
SIZES = [4096, 16384]
OWNER = "opens@test"
SCOPE = "acct\x1fsymplify.opens"


def _input() -> bytes:
    window = data.Window.days_back(2)
    rows = list(data.symplify_rows(3, export_type="OPENS", rows=ROWS, window=window))
    rows += [rows[index] for index in REPEATED]  # the same events again: removed by record_id
    text = b"".join(encode_chunks(rows, "csv", columns=list(rows[0])))
    lines = text.split(b"\n")
    for index in MALFORMED:  # line numbers: one field too many -> quarantined
        lines[index] += b",surplus"
    return b"\n".join(lines)


BLOB = _input()


class Crash(Exception):
    """Stands for kill -9: nothing is aborted or closed."""


@dataclass
class Outcome:
    manifest: Manifest
    records: list[dict[str, Any]]
    quarantine: bytes


async def chunks_of(blob: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


async def attempt(
    root: Path,
    index: DedupeIndex | None,
    size: int,
    checkpoint: Checkpoint | None,
    crash_at: int | None,
) -> Checkpoint | Manifest | None:
    """One process's try: resume from ``checkpoint``, checkpoint after every third chunk,
    crash at chunk ``crash_at`` (after writing it, without checkpointing it). Without an
    ``index`` nothing is deduplicated, and a fresh attempt may take the columnar fast path
    while a resumed one takes the row path: both must count rows alike."""
    spool = root / "spool" / "q.jsonl"
    sink = CheckpointSink(
        LocalSink(root / "out"), spool, checkpoint.quarantine_bytes if checkpoint else 0
    )
    publisher = Publisher(sink, CTX, OPTIONS, dt="2026-11-01")
    sink.quarantine_relpath = publisher.quarantine_relpath
    saved, seen = checkpoint, 0
    skip = checkpoint.rows if checkpoint else 0
    if checkpoint is not None:
        await publisher.restore(checkpoint.publisher)
    if index is not None and checkpoint is None:
        await index.forget(OWNER)
    elif index is not None and checkpoint is not None:
        await index.rollback(OWNER, checkpoint.position)

    async def on_chunk(stats: FileStats) -> None:
        nonlocal saved, seen
        seen += 1
        if seen == crash_at:
            raise Crash
        if seen % 3 == 0:
            await publisher.cut()
            saved = Checkpoint(
                files=(FileRef("opens.csv", len(BLOB)),),
                file=0,
                rows=consumed(skip, stats),
                publisher=publisher.snapshot(),
                quarantine_bytes=await sink.sync_quarantine(),
            )

    async def keep_new(records: list[dict[str, Any]], stats: FileStats) -> list[dict[str, Any]]:
        assert index is not None
        pos = position(0, consumed(skip, stats))
        return await index.filter(SCOPE, OWNER, pos, records)

    try:
        await ingest_file(
            chunks_of(BLOB, size),
            name="opens.csv",
            ctx=CTX,
            normalizer=get_normalizer(CTX.stream),
            publisher=publisher,
            skip_rows=skip,
            on_chunk=on_chunk,
            record_filter=keep_new if index is not None else None,
        )
    except Crash:
        if sink.spool is not None:  # lines past the checkpoint reached the file; then death
            await sink.spool.sync()
            await sink.spool.close()
        return saved
    manifest = await publisher.commit()
    if index is not None:
        await index.seal(OWNER)
    return manifest


async def run(root: Path, size: int, crashes: list[int], *, dedupe: bool = True) -> Outcome:
    """Crash at each of ``crashes`` (chunk numbers of successive attempts), then finish."""
    async with DedupeIndex(root / "ids.sqlite") as opened:
        index = opened if dedupe else None
        checkpoint: Checkpoint | None = None
        for crash_at in crashes:
            result = await attempt(root, index, size, checkpoint, crash_at)
            assert not isinstance(result, Manifest), "the crash point lies past the end"
            checkpoint = result
        final = await attempt(root, index, size, checkpoint, None)
    assert isinstance(final, Manifest)
    return read_back(root / "out", final)


def read_back(out: Path, manifest: Manifest) -> Outcome:
    records = [
        orjson.loads(line)
        for part in manifest.parts
        for line in (out / part.path).read_bytes().splitlines()
    ]
    quarantine = (out / manifest.quarantine).read_bytes() if manifest.quarantine else b""
    return Outcome(manifest, records, quarantine)


def comparable(manifest: Manifest) -> tuple[Any, ...]:
    return (
        manifest.records,
        manifest.rows_read,
        manifest.rows_ok,
        manifest.rows_quarantined,
        manifest.source_files,
        sum(part.records for part in manifest.parts),
    )


CLEAN: dict[tuple[int, bool], Outcome] = {}


def clean(size: int, dedupe: bool = True) -> Outcome:
    if (size, dedupe) not in CLEAN:
        with tempfile.TemporaryDirectory() as directory:
            CLEAN[size, dedupe] = asyncio.run(run(Path(directory), size, [], dedupe=dedupe))
    return CLEAN[size, dedupe]


def test_the_clean_run_deduplicates_and_quarantines() -> None:
    outcome = clean(SIZES[0])
    malformed = {line - 1 for line in MALFORMED}  # line 0 is the header
    assert outcome.manifest.rows_read == ROWS + len(REPEATED)
    assert outcome.manifest.rows_quarantined == len(malformed)
    repeats = [ROWS + n for n, index in enumerate(REPEATED) if index not in malformed]
    good_repeats = [row for row in repeats if row not in malformed]
    ids = [record["record_id"] for record in outcome.records]
    assert len(ids) == len(set(ids))
    assert outcome.manifest.records == ROWS + len(REPEATED) - len(malformed) - len(good_repeats)
    assert outcome.quarantine.count(b"\n") == len(malformed)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from(SIZES),
    crashes=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=3),
    dedupe=st.booleans(),
)
def test_any_crashes_then_resume_publish_what_a_clean_run_does(
    size: int, crashes: list[int], dedupe: bool
) -> None:
    chunks = -(-len(BLOB) // size)
    crashes = [min(point, chunks) for point in crashes]
    with tempfile.TemporaryDirectory() as directory:
        resumed = asyncio.run(run(Path(directory), size, crashes, dedupe=dedupe))
    expected = clean(size, dedupe)
    assert resumed.records == expected.records
    assert resumed.quarantine == expected.quarantine
    assert comparable(resumed.manifest) == comparable(expected.manifest)


@pytest.mark.asyncio
async def test_a_checkpoint_survives_json_and_rejects_what_it_does_not_know(
    tmp_path: Path,
) -> None:
    sink = CheckpointSink(LocalSink(tmp_path / "out"), tmp_path / "q.jsonl", 0)
    publisher = Publisher(sink, CTX, OPTIONS, dt="2026-11-01")
    await publisher.write_records([{"record_id": "1"}, {"record_id": "2"}])
    await publisher.cut()
    checkpoint = Checkpoint(
        files=(FileRef("a", 10), FileRef("b", None)),
        file=1,
        rows=5,
        publisher=publisher.snapshot(),
        quarantine_bytes=0,
        totals=7,
    )
    stored = orjson.loads(orjson.dumps(checkpoint.to_json()))
    assert Checkpoint.from_json(stored) == checkpoint
    assert Checkpoint.from_json({**stored, "version": 99}) is None
    assert Checkpoint.from_json({"version": 1, "files": []}) is None
    assert Checkpoint.from_json(None) is None
    await publisher.abort()
