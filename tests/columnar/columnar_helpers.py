"""Run one input through the pipeline on the row path or the columnar path, and compare.

``run_path`` publishes through a real :class:`~streamx.publish.Publisher` into a local sink in a
fresh temporary directory and returns everything a reader could see: the manifest's counts,
each part's bytes (or, for Parquet, its table) and the quarantine file. Equality of two
:class:`Published` values is the "record for record" promise of the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from streamx.columnar import ENV_SWITCH
from streamx.columnar import ingest as columnar_ingest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.sinks.local import LocalSink


@dataclass
class Published:
    """What one conversion made visible."""

    counts: tuple[int, int, int, int, str | None]
    parts: list[Any] = field(default_factory=list)
    quarantine: bytes = b""


@contextlib.contextmanager
def fast_path(enabled: bool, *, block_bytes: int | None = None) -> Iterator[None]:
    """Switch the fast path on/off (the documented environment switch) and its block size."""
    saved_env = os.environ.get(ENV_SWITCH)
    saved_block = columnar_ingest.BLOCK_BYTES
    os.environ[ENV_SWITCH] = "1" if enabled else "0"
    if block_bytes is not None:
        columnar_ingest.BLOCK_BYTES = block_bytes
    try:
        yield
    finally:
        columnar_ingest.BLOCK_BYTES = saved_block
        if saved_env is None:
            os.environ.pop(ENV_SWITCH, None)
        else:
            os.environ[ENV_SWITCH] = saved_env


async def chunked(blob: bytes, cuts: Sequence[int]) -> AsyncIterator[bytes]:
    previous = 0
    for cut in [*sorted(set(cuts)), len(blob)]:
        if cut > previous:
            yield blob[previous:cut]
            previous = cut


async def _convert(
    files: Sequence[tuple[bytes, Sequence[int]]],
    ctx: ExportContext,
    options: OutputOptions,
    root: Path,
    parser_options: dict[str, Any] | None,
) -> Published:
    sink = LocalSink(root)
    try:
        async with Publisher(sink, ctx, options, dt="2026-11-01") as publisher:
            for index, (blob, cuts) in enumerate(files):
                await ingest_file(
                    chunked(blob, cuts),
                    name=f"input-{index}",
                    ctx=ctx,
                    normalizer=get_normalizer(ctx.stream),
                    publisher=publisher,
                    parser_options=parser_options,
                )
            manifest = await publisher.commit()
    finally:
        await sink.close()
    counts = (
        manifest.rows_read,
        manifest.rows_ok,
        manifest.rows_quarantined,
        manifest.records,
        manifest.compression,
    )
    published = Published(counts)
    for part in manifest.parts:
        path = root / part.path
        if options.format == "parquet":
            published.parts.append(pq.read_table(path))
        else:
            published.parts.append(path.read_bytes())
    if manifest.quarantine:
        published.quarantine = (root / manifest.quarantine).read_bytes()
    return published


def run_path(
    blob: bytes | Sequence[tuple[bytes, Sequence[int]]],
    ctx: ExportContext,
    *,
    fast: bool,
    fmt: str = "jsonl",
    cuts: Sequence[int] = (),
    block_bytes: int | None = None,
    parser_options: dict[str, Any] | None = None,
    records_per_part: int = 1_000_000,
) -> Published:
    """Convert ``blob`` (one file, cut at ``cuts``) or several ``(blob, cuts)`` files."""
    files = [(blob, cuts)] if isinstance(blob, bytes) else list(blob)
    compression = None if fmt == "parquet" else "none"
    options = OutputOptions(
        format=fmt, compression=compression, max_records_per_part=records_per_part
    )
    with tempfile.TemporaryDirectory() as tmp, fast_path(fast, block_bytes=block_bytes):
        return asyncio.run(_convert(files, ctx, options, Path(tmp), parser_options))


def assert_same(fast: Published, slow: Published) -> None:
    """Both paths published the same records, parts and quarantine, byte for byte."""
    assert fast.counts == slow.counts
    assert fast.quarantine == slow.quarantine
    assert len(fast.parts) == len(slow.parts)
    for mine, theirs in zip(fast.parts, slow.parts, strict=True):
        if isinstance(mine, bytes):
            assert mine == theirs
        else:
            assert mine.schema == theirs.schema
            assert mine.to_pylist() == theirs.to_pylist()
