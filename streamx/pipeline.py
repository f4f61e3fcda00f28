"""One input file through the whole chain: decode -> parse -> normalize -> publish.

This is the piece every entry point shares (``streamx convert``, the engine's downloads, the
backfill). It is pull-based: each chunk is decoded, parsed and normalized, and the batch of records
is awaited into the publisher before the next chunk is read, so the sink's back-pressure reaches
the network read and memory is bounded by one chunk's worth of rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streamx.codecs.base import ParsedItem, Row, raw_of
from streamx.codecs.gzip import GzipDecoder, IdentityDecoder, make_decoder
from streamx.codecs.sniff import SniffingParser
from streamx.columnar import open_fast_path
from streamx.exceptions import InputError, RowError
from streamx.normalize.base import ExportContext, Normalizer
from streamx.offload import open_offload
from streamx.publish import Publisher

#: Bytes needed to recognise gzip by its magic number.
_MAGIC_BYTES = 2
#: Decoded bytes parsed and normalized per step. One compressed read can inflate to many MB of
#: text; parsing it at once would hold tens of thousands of row dicts. Slicing bounds memory by
#: this size (times the per-row object overhead), not by the compression ratio. It also bounds
#: how long one step holds the event loop: the p99 loop lag while parsing was 103-105 ms at
#: 128-256 KiB and 45 ms at 64 KiB on a loaded 2-core machine (target < 100 ms,
#: benchmarks/bench_concurrency.py), for ~25% less row-path throughput.
PARSE_SLICE = 64 * 1024
#: Compressed bytes inflated per step. A 1 MiB read of gzip inflates to 3-10 MiB of text;
#: inflating it in slices keeps that text (held by the parser or the columnar lanes while it
#: is consumed) to about 1-3 MiB whatever size of chunks the source hands over.
DECODE_SLICE = 256 * 1024


class FastPath(Protocol):
    """A faster way through for the files it serves (it sniffs the file and may decline)."""

    async def feed(self, data: bytes) -> bytes | None:
        """Take decoded bytes; returns every byte held so far when it declines the file."""

    async def finish(self) -> bytes | None:
        """End of input (waits for every write); bytes held when it declines the file."""

    async def settle(self) -> None:
        """Wait until every row counted is written."""

    async def abandon(self) -> None:
        """The file failed: cancel pending writes."""


@dataclass(slots=True)
class FileStats:
    """What one input file yielded. ``rows_ok + rows_quarantined == rows_read`` always."""

    name: str
    format: str | None = None
    compressed: bool = False
    bytes_read: int = 0
    rows_read: int = 0
    rows_ok: int = 0
    rows_quarantined: int = 0
    records: int = 0
    #: Rows passed over unread because a resumed export had already published them
    #: (``skip_rows``); not part of ``rows_read``.
    rows_skipped: int = 0


#: Called with the file's stats after each chunk, at a row boundary: every row counted so far
#: has been written to the publisher (checkpoints and progress hook in here).
OnChunk = Callable[[FileStats], Awaitable[None]]
#: Filters a batch of normalized records before it is written (deduplication by record_id);
#: receives the file's stats as they stand after the batch (its position in the file).
RecordFilter = Callable[[list[dict[str, Any]], FileStats], Awaitable[list[dict[str, Any]]]]


class _FileIngest:
    """State of one file's pass through the chain (kept small: one chunk of rows at a time)."""

    def __init__(
        self,
        name: str,
        ctx: ExportContext,
        normalizer: Normalizer,
        publisher: Publisher,
        parser_options: dict[str, Any],
        skip_rows: int = 0,
        record_filter: RecordFilter | None = None,
    ) -> None:
        self.stats = FileStats(name)
        self._skip = skip_rows
        self._filter = record_filter
        self._ctx = ctx
        self._normalize = normalizer
        self._publisher = publisher
        self._parser = SniffingParser(**parser_options)
        # Faster paths, tried in order, each sniffing the file: the columnar one (pyarrow) for
        # CSV, Arrow blocks or the helper process for JSON lines. None left: the row path.
        self._faster: list[FastPath] = []
        if not skip_rows and record_filter is None:
            for opener in (open_fast_path, open_offload):
                path = opener(ctx, normalizer, publisher, parser_options, self.stats, self._consume)
                if path is not None:
                    self._faster.append(path)
        self._fast = self._faster.pop(0) if self._faster else None
        self._decoder: GzipDecoder | IdentityDecoder | None = None
        self._head = b""

    async def feed(self, chunk: bytes) -> None:
        self.stats.bytes_read += len(chunk)
        if self._decoder is None:
            self._head += chunk
            if len(self._head) < _MAGIC_BYTES:
                return
            chunk, self._head = self._head, b""
            self._decoder = make_decoder(chunk)
            self.stats.compressed = isinstance(self._decoder, GzipDecoder)
        decoder = self._decoder
        if not isinstance(decoder, GzipDecoder) or len(chunk) <= DECODE_SLICE:
            await self._parse(decoder.feed(chunk))
            return
        view = memoryview(chunk)  # slices of a view: no copy (nor fresh pages) per slice
        for start in range(0, len(chunk), DECODE_SLICE):
            await self._parse(decoder.feed(view[start : start + DECODE_SLICE]))

    async def _parse(self, decoded: bytes) -> None:
        while self._fast is not None:
            declined = await self._fast.feed(decoded)
            if declined is None:
                return
            decoded = declined  # not a file it serves: the next path, else the row path
            self._fast = self._faster.pop(0) if self._faster else None
        if len(decoded) <= PARSE_SLICE:
            await self._consume(self._parser.feed(decoded))
            return
        view = memoryview(decoded)
        for start in range(0, len(decoded), PARSE_SLICE):
            await self._consume(self._parser.feed(bytes(view[start : start + PARSE_SLICE])))

    async def finish(self) -> FileStats:
        if self._decoder is None:  # fewer than two bytes in the whole file
            self._decoder = make_decoder(self._head)
            await self._parse(self._decoder.feed(self._head))
        await self._parse(self._decoder.flush())
        while self._fast is not None:
            declined = await self._fast.finish()
            self._fast = None
            if declined is not None:  # the whole file was held by a path that declines it
                self._fast = self._faster.pop(0) if self._faster else None
                await self._parse(declined)
        await self._consume(self._parser.flush())
        self.stats.format = self.stats.format or self._parser.format
        if self._skip:
            raise InputError(
                f"the file has {self.stats.rows_skipped} rows, fewer than the "
                f"{self.stats.rows_skipped + self._skip} a previous run already read: it changed"
            )
        self._publisher.count_source_file(
            self.stats.name,
            rows_read=self.stats.rows_read + self.stats.rows_skipped,
            bytes_read=self.stats.bytes_read,
        )
        return self.stats

    async def settle(self) -> None:
        """Wait for the fast path's background writes: every row counted is now written."""
        if self._fast is not None:
            await self._fast.settle()

    async def abandon(self) -> None:
        """The file failed: stop the fast path's pending writes before the error leaves."""
        if self._fast is not None:
            await self._fast.abandon()

    async def _consume(self, items: list[ParsedItem]) -> None:
        if self._skip and items:
            take = min(self._skip, len(items))
            self._skip -= take
            self.stats.rows_skipped += take
            items = items[take:]
        if not items:
            return
        records: list[dict[str, Any]] = []
        ok = 0
        for item in items:
            if isinstance(item, Row):
                try:
                    records.extend(self._normalize(item, self._ctx))
                    ok += 1
                except RowError as exc:
                    await self._quarantine(item.line, exc.reason, raw_of(item))
            else:
                await self._quarantine(item.line, item.reason, item.raw)
        self.stats.rows_read += len(items)
        self.stats.rows_ok += ok
        if self._filter is not None and records:
            records = await self._filter(records, self.stats)
        self.stats.records += len(records)
        if records or ok:
            await self._publisher.write_records(records, rows=ok)

    async def _quarantine(self, line: int, reason: str, raw: str) -> None:
        self.stats.rows_quarantined += 1
        await self._publisher.quarantine(self.stats.name, line, reason, raw)


async def ingest_file(
    chunks: AsyncIterable[bytes],
    *,
    name: str,
    ctx: ExportContext,
    normalizer: Normalizer,
    publisher: Publisher,
    parser_options: dict[str, Any] | None = None,
    skip_rows: int = 0,
    on_chunk: OnChunk | None = None,
    record_filter: RecordFilter | None = None,
) -> FileStats:
    """Stream one input file into ``publisher``; corrupt input raises an error naming ``name``.

    Rows that fail to parse or normalize are quarantined with their line number and reason; the
    publisher is not committed here, because one export may span several files (chunks).

    Resuming: ``skip_rows`` passes over the file's first rows (parsed, not normalized nor
    written): a previous run already published them. ``on_chunk`` is awaited after every chunk
    (a row boundary); ``record_filter`` may drop records of a batch before they are written.
    """
    state = _FileIngest(
        name, ctx, normalizer, publisher, parser_options or {}, skip_rows, record_filter
    )
    try:
        return await _ingest(state, chunks, on_chunk)
    except InputError as exc:
        raise exc.located(name) from exc


async def _ingest(
    state: _FileIngest, chunks: AsyncIterable[bytes], on_chunk: OnChunk | None
) -> FileStats:
    try:
        async for chunk in chunks:
            await state.feed(chunk)
            if on_chunk is not None:
                await state.settle()  # a checkpoint must see every counted row written
                await on_chunk(state.stats)
            await asyncio.sleep(0)  # let polls and heartbeats run between chunks
        return await state.finish()
    except BaseException:
        await state.abandon()
        raise
