"""An export's records as numbered parts, a new part started whenever one is full.

Parts are cut at exact record boundaries: a part holds at most ``max_records_per_part`` records
and at most ``max_bytes_per_part`` *uncompressed* bytes (header included), except that a single
record larger than the byte limit still gets a part of its own (Parquet: the byte limit applies
to the Arrow size of the records, checked per written batch). Parts are numbered from 00000;
no records, no parts.

Why parts are sealed here but committed later: each part is *finished* through the sink
(durable, buffers and handles released) as soon as it is full, so only one part at a time holds
buffers however long the export runs; it becomes visible only at :meth:`RollingParts.commit`,
which the :class:`~streamx.publish.Publisher` calls at its own commit, after checking the row
accounting. Line formats (JSON lines, CSV) are compressed here; Parquet compresses inside its
own files.
"""

from __future__ import annotations

import asyncio
import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, cast

from streamx.bytes_like import Bytes
from streamx.exceptions import ConfigError, StreamxError
from streamx.manifest import PartInfo
from streamx.sinks.base import PartUpload, Sink
from streamx.writers.compression import Compressor, get_compression
from streamx.writers.encoders import (
    BatchEncoder,
    BatchPart,
    Encoder,
    get_encoder,
    is_batch_encoder,
)

#: Batches at least this large are compressed in a worker thread (the codecs release the GIL),
#: so the event loop keeps answering polls while a big batch is compressed.
THREAD_MIN_BYTES = 64 * 1024
#: Record batches at least this large are encoded in a worker thread: the GIL is still shared,
#: but the loop gets it back every switch interval instead of after the whole batch.
THREAD_ENCODE_MIN = 256


@dataclass
class OutputOptions:
    """How records are written: format, compression and when to start a new part."""

    format: str = "jsonl"
    #: ``None``: the format's default (gzip for jsonl/csv, zstd inside Parquet files).
    compression: str | None = None
    max_records_per_part: int = 1_000_000
    #: Limit on a part's *uncompressed* size.
    max_bytes_per_part: int = 256 * 1024 * 1024
    #: The compression method's own scale; ``None`` = its fast default (gzip 1, zstd 3).
    compression_level: int | None = None


def check_options(options: OutputOptions) -> None:
    """Refuse part limits that could never hold a record (a :class:`ConfigError`)."""
    if options.max_records_per_part < 1:
        raise ConfigError(f"max_records_per_part must be >= 1, got {options.max_records_per_part}")
    if options.max_bytes_per_part < 1:
        raise ConfigError(f"max_bytes_per_part must be >= 1, got {options.max_bytes_per_part}")


class _Published:
    """The upload of a part a previous process already published: nothing left to do."""

    async def write(self, data: Bytes) -> None:
        raise StreamxError("a restored part cannot be written")

    async def finish(self) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def abort(self) -> None:
        return None


class _Part:
    """One part being written: compresses, hashes and counts what goes to its upload."""

    def __init__(self, relpath: str, upload: PartUpload, compressor: Compressor) -> None:
        self.relpath = relpath
        self.upload = upload
        self._compressor = compressor
        self._sha256 = hashlib.sha256()
        self.records = 0
        self.raw_bytes = 0
        self.stored_bytes = 0

    async def write(self, data: Bytes, records: int) -> None:
        self.records += records
        self.raw_bytes += len(data)
        if len(data) >= THREAD_MIN_BYTES:
            out = await asyncio.to_thread(self._compress, data)
        else:
            out = self._compress(data)
        if out:
            await self.upload.write(out)

    async def seal(self) -> PartInfo:
        """End the compressed stream and finish the upload (durable, not yet visible)."""
        tail = self._compressor.flush()
        self._account(tail)
        if tail:
            await self.upload.write(tail)
        await self.upload.finish()
        return PartInfo(
            path=self.relpath,
            records=self.records,
            bytes=self.stored_bytes,
            uncompressed_bytes=self.raw_bytes,
            sha256=self._sha256.hexdigest(),
        )

    def _compress(self, data: Bytes) -> Bytes:
        out = self._compressor.compress(data)
        self._account(out)
        return out

    def _account(self, stored: Bytes) -> None:
        if stored:
            self._sha256.update(stored)
            self.stored_bytes += len(stored)


class RollingParts:
    """The parts of one export: encodes what it is given and rolls to a new part at the limits.

    Part names are ``stem`` (sink-relative), the part number and the extension (the format's,
    then the compression's). Constructing it resolves the format and compression, so a bad one
    (or a bad compression level) fails before anything is written. Not safe for concurrent
    writes: the caller serializes them.
    """

    def __init__(self, sink: Sink, options: OutputOptions, stem: str) -> None:
        self._sink = sink
        self._options = options
        self._stem = stem
        encoder = get_encoder(options.format)
        self._batches: BatchEncoder | None = encoder if is_batch_encoder(encoder) else None
        self._lines: Encoder | None = None
        if self._batches is not None:  # Parquet: compression is inside the file
            #: The compression actually used (the format's default resolved).
            self.compression = self._batches.codec(options.compression, options.compression_level)
            self._compression = get_compression("none")
        else:
            self._lines = cast(Encoder, encoder)
            self.compression = options.compression or "gzip"
            self._compression = get_compression(self.compression)
            self._compression.new(options.compression_level)  # fail on a bad level now
        self._extension = f".{encoder.extension}{self._compression.extension}"
        self._part: _Part | BatchPart | None = None
        self._sealed: list[tuple[PartInfo, PartUpload]] = []

    @property
    def columnar(self) -> bool:
        """Whether the format takes Arrow batches (Parquet) rather than encoded lines."""
        return self._batches is not None

    @property
    def sealed(self) -> list[PartInfo]:
        """The sealed parts, in order (restored ones first)."""
        return [info for info, _ in self._sealed]

    @property
    def empty(self) -> bool:
        """Whether no part was sealed, restored or opened yet."""
        return not self._sealed and self._part is None

    async def write_records(self, records: list[dict[str, Any]]) -> None:
        """Encode records in the output format and write them."""
        if self._batches is not None:
            await self.write_batch(self._batches.to_batch(records))
            return
        assert self._lines is not None
        if len(records) >= THREAD_ENCODE_MIN:  # CSV: ~20 µs a record; keep the loop answering
            chunks = await asyncio.to_thread(self._lines.encode, records)
        else:
            chunks = self._lines.encode(records)
        await self.write_block(b"".join(chunks), list(accumulate(map(len, chunks))))

    async def write_block(self, data: Bytes, ends: Sequence[int]) -> None:
        """Write encoded records, rolling to a new part at the record or byte limit.

        ``ends[i]`` is the offset in ``data`` just after record ``i``.
        """
        max_records = self._options.max_records_per_part
        max_bytes = self._options.max_bytes_per_part
        start, count, offset = 0, len(ends), 0  # offset: where record `start` begins
        while start < count:
            part = self._part or await self._open_part()
            assert isinstance(part, _Part)
            room_records = max_records - part.records
            room_bytes = max_bytes - part.raw_bytes
            fits = bisect_right(ends, offset + room_bytes, start) - start
            take = min(count - start, room_records, fits)
            if take <= 0:
                if part.records:
                    await self._seal_part()
                    continue
                take = 1  # one record bigger than a whole part: it gets a part of its own
            end = start + take
            stop = ends[end - 1]
            await part.write(data if offset == 0 and stop == len(data) else data[offset:stop], take)
            start, offset = end, stop
            if part.records >= max_records or part.raw_bytes >= max_bytes:
                await self._seal_part()

    async def write_batch(self, batch: Any) -> None:
        """Write an Arrow batch, rolling to a new part at the record (or, per batch, byte) limit."""
        max_records = self._options.max_records_per_part
        start, count = 0, batch.num_rows
        while start < count:
            part = self._part or await self._open_part()
            assert not isinstance(part, _Part)
            take = min(count - start, max_records - part.records)
            await part.write_batch(batch.slice(start, take))
            start += take
            if part.records >= max_records or part.raw_bytes >= self._options.max_bytes_per_part:
                await self._seal_part()

    async def seal_open_part(self) -> None:
        """Seal the open part, if any, at the record boundary reached: the next record written
        starts a new part."""
        if self._part is not None:
            await self._seal_part()

    def restore(self, parts: Sequence[PartInfo]) -> None:
        """Take ``parts`` (already at their final names) as sealed; new parts number after them."""
        self._sealed = [(info, _Published()) for info in parts]

    async def commit(self) -> None:
        """Make every sealed part visible under its final name (an open part is not: seal it)."""
        for _, upload in self._sealed:
            await upload.commit()

    def uploads(self) -> list[PartUpload]:
        """Every upload, sealed or still open, in order (to abort them all)."""
        uploads = [upload for _, upload in self._sealed]
        if self._part is not None:
            uploads.append(self._part.upload)
        return uploads

    async def _open_part(self) -> _Part | BatchPart:
        relpath = f"{self._stem}{len(self._sealed):05d}{self._extension}"
        upload = await self._sink.open(relpath)
        level = self._options.compression_level
        if self._batches is not None:
            columnar = self._batches.open_part(relpath, upload, self.compression, level)
            self._part = columnar
            return columnar
        part = _Part(relpath, upload, self._compression.new(level))
        self._part = part
        header = self._lines.header() if self._lines is not None else b""
        if header:
            await part.write(header, 0)
        return part

    async def _seal_part(self) -> None:
        part = self._part
        assert part is not None
        footer = self._lines.footer() if self._lines is not None else b""
        if footer and isinstance(part, _Part):
            await part.write(footer, 0)
        info = await part.seal()
        self._sealed.append((info, part.upload))
        self._part = None


__all__ = [
    "THREAD_ENCODE_MIN",
    "THREAD_MIN_BYTES",
    "OutputOptions",
    "RollingParts",
    "check_options",
]
