"""The fast path hands each encoded block to the sink as a view of Arrow's buffer, not a copy
(:mod:`streamx.bytes_like`). Every sink must store exactly those bytes, sliced across parts."""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from columnar_helpers import chunked, fast_path, run_path
from fixtures.servers import SSHServerInfo

from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.s3 import S3Config
from streamx.sinks.base import Sink
from streamx.sinks.local import LocalSink
from streamx.sinks.s3 import S3Sink
from streamx.sinks.sftp import SFTPSink
from streamx.testing import data
from streamx.testing.files import csv_chunks

STREAM = "cordial.contact_activity"
PER_PART = 700  # parts roll inside blocks: the views are sliced, not only passed on
ReadBack = Callable[[str], Awaitable[bytes]]


def context() -> ExportContext:
    return ExportContext("cordial", STREAM, "acct 1", "job-7", {})


async def _publish(sink: Sink, blob: bytes) -> Manifest:
    ctx = context()
    options = OutputOptions(format="jsonl", compression="none", max_records_per_part=PER_PART)
    with fast_path(True, block_bytes=16 * 1024):
        async with Publisher(sink, ctx, options, dt="2026-11-01") as publisher:
            await ingest_file(
                chunked(blob, [7000, 40_000]),
                name="input-0",
                ctx=ctx,
                normalizer=get_normalizer(STREAM),
                publisher=publisher,
            )
            return await publisher.commit()


async def _sink_parts(sink: Sink, read_back: ReadBack, blob: bytes) -> list[bytes]:
    try:
        manifest = await _publish(sink, blob)
    finally:
        await sink.close()
    assert manifest.rows_ok == manifest.rows_read > 2 * PER_PART
    return [await read_back(part.path) for part in manifest.parts]


@pytest.fixture
def blob() -> bytes:
    rows = data.cordial_activity_rows(5, rows=3000, window=data.Window.days_back(3))
    return gzip.compress(b"".join(csv_chunks(rows, columns=data.ACTIVITY_CSV_COLUMNS)))


@pytest.fixture
def expected(blob: bytes) -> list[bytes]:
    """The row path's parts, into a local directory."""
    parts = run_path(blob, context(), fast=False, records_per_part=PER_PART).parts
    assert len(parts) >= 3
    return parts


@pytest.mark.asyncio
async def test_local_sink_stores_the_fast_paths_views(
    blob: bytes, expected: list[bytes], tmp_path: Path
) -> None:
    async def read_back(relpath: str) -> bytes:
        return (tmp_path / relpath).read_bytes()

    assert await _sink_parts(LocalSink(tmp_path), read_back, blob) == expected


@pytest.mark.asyncio
async def test_s3_sink_stores_the_fast_paths_views(
    blob: bytes, expected: list[bytes], s3_config: S3Config, s3_client: Any, bucket: str
) -> None:
    async def read_back(relpath: str) -> bytes:
        answer = await s3_client.get_object(Bucket=bucket, Key=f"lake/{relpath}")
        return bytes(await answer["Body"].read())

    sink = S3Sink(bucket, "lake", client=s3_client)
    assert await _sink_parts(sink, read_back, blob) == expected


@pytest.mark.asyncio
async def test_sftp_sink_stores_the_fast_paths_views(
    blob: bytes, expected: list[bytes], sshd: SSHServerInfo, sftp_root: Path
) -> None:
    async def read_back(relpath: str) -> bytes:
        return (sftp_root / relpath).read_bytes()

    sink = SFTPSink(sshd.config(), str(sftp_root))
    assert await _sink_parts(sink, read_back, blob) == expected


@pytest.mark.asyncio
async def test_every_sink_takes_a_view_of_an_arrow_buffer(
    tmp_path: Path, s3_client: Any, bucket: str, sshd: SSHServerInfo, sftp_root: Path
) -> None:
    """One view, written whole, sliced, and next to ``bytes``: stored as the same bytes."""
    data = b"".join(b"%06d,record\n" % number for number in range(50_000))
    view = memoryview(pa.py_buffer(data))
    sinks: list[tuple[Sink, ReadBack]] = []

    async def local(relpath: str) -> bytes:
        return (tmp_path / relpath).read_bytes()

    async def s3(relpath: str) -> bytes:
        answer = await s3_client.get_object(Bucket=bucket, Key=relpath)
        return bytes(await answer["Body"].read())

    async def sftp(relpath: str) -> bytes:
        return (sftp_root / relpath).read_bytes()

    sinks = [
        (LocalSink(tmp_path), local),
        (S3Sink(bucket, client=s3_client, part_size=5 * 1024 * 1024), s3),
        (SFTPSink(sshd.config(), str(sftp_root)), sftp),
    ]
    for sink, read_back in sinks:
        try:
            upload = await sink.open("part.jsonl")
            await upload.write(view)
            await upload.write(view[10:1000])
            await upload.write(b"middle\n")
            await upload.write(view[-7:])
            await upload.commit()
        finally:
            await sink.close()
        assert await read_back("part.jsonl") == data + data[10:1000] + b"middle\n" + data[-7:]
