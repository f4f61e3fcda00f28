"""The columnar fast path for one input file: decoded bytes in, published records out.

It sits where :class:`~streamx.codecs.sniff.SniffingParser` sits in the row path and sniffs the
same way. A CSV file is split by :class:`~streamx.columnar.csvlanes.CsvLanes`; blocks of whole
records are parsed, normalized and encoded by :func:`~streamx.columnar.csvblock.encode_block`
in a worker thread, everything else (header, malformed records, blocks with a bad row) goes
through the pipeline's own row consumer. Any other format is handed back untouched.

Blocks are encoded in worker threads and written in input order by background tasks
(:class:`~streamx.ordered.OrderedWrites`), while the event loop goes on inflating and cutting
the next block: both cores work. A row is counted only once it has been written, and
:meth:`ColumnarIngest.settle` waits for every write, so a checkpoint taken after it sees exactly
what the row path would show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final

from streamx.codecs.base import ParsedItem
from streamx.codecs.csv import CsvParser
from streamx.codecs.sniff import SNIFF_BYTES, sniff_format
from streamx.columnar.csvlanes import BLOCK_BYTES, Block, CsvLanes, Step
from streamx.columnar.plans import VectorPlan, vector_plan
from streamx.normalize.base import ExportContext
from streamx.ordered import OrderedWrites
from streamx.publish import Publisher

Consume = Callable[[list[ParsedItem]], Awaitable[None]]
_UNSUPPORTED: Final = object()
_MAX_RECORD: Final = 16 * 1024 * 1024  # CsvParser's default max_field_bytes
#: Blocks started but not yet written, at most, while the loop cuts the next one (bounds
#: memory: each is a few MB of work). 300k rows to JSON lines: 2 -> 3 took 2.66 -> 2.47 s, +4 MiB.
IN_FLIGHT = 3
#: The same for Parquet output, whose writer also holds a row group (8 MiB of Arrow data):
#: 300k rows, 1 -> 2 took 4.1 -> 3.6 s for 107 -> 110 MiB.
IN_FLIGHT_PARQUET = 2


class ColumnarIngest:
    """Feed decoded bytes; :meth:`feed`/:meth:`finish` hand back bytes the path declines."""

    def __init__(
        self,
        ctx: ExportContext,
        publisher: Publisher,
        stats: Any,
        consume: Consume,
        csv_options: Mapping[str, Any],
    ) -> None:
        self._ctx = ctx
        self._publisher = publisher
        self._stats = stats
        self._consume = consume
        self._csv_options = dict(csv_options)
        self._held = bytearray()
        self._lanes: CsvLanes | None = None
        self._rejects: CsvParser | None = None
        self._plan: VectorPlan | object | None = None
        self._writes = OrderedWrites(
            IN_FLIGHT_PARQUET if publisher.format == "parquet" else IN_FLIGHT
        )
        self._encode: Any = None  # csvblock.encode_block, imported with pyarrow once CSV is seen

    async def feed(self, data: bytes) -> bytes | None:
        """Take ``data``; returns everything held when the file is not one this path serves."""
        if self._lanes is None:
            self._held += data
            if len(self._held) < SNIFF_BYTES:
                return None
            return await self._choose()
        await self._run(self._lanes.feed(data))
        return None

    async def finish(self) -> bytes | None:
        """End of input: flush, wait for the last block; bytes if the file was declined."""
        if self._lanes is None:
            declined = await self._choose()
            if declined is not None:
                return declined
        assert self._lanes is not None
        await self._run(self._lanes.flush())
        await self.settle()
        return None

    async def settle(self) -> None:
        """Wait until every block cut so far is written (and counted); raises a write's error."""
        await self._writes.settle()

    async def abandon(self) -> None:
        """The file failed: stop the writes still pending (their blocks are not published)."""
        await self._writes.abandon()

    async def _choose(self) -> bytes | None:
        held, self._held = bytes(self._held), bytearray()
        if sniff_format(held[:SNIFF_BYTES]) != "csv":
            return held
        self._stats.format = "csv"
        from streamx.columnar.csvblock import encode_block  # pyarrow: only for files it serves
        from streamx.columnar.csvcheck import whole_records_check
        from streamx.columnar.kernels import use_lean_memory_pool

        use_lean_memory_pool()
        self._encode = encode_block
        delimiter = self._csv_options.get("delimiter", ",")
        self._lanes = CsvLanes(
            CsvParser(**self._csv_options),
            delimiter=delimiter,
            max_record_bytes=self._csv_options.get("max_field_bytes", _MAX_RECORD),
            block_bytes=BLOCK_BYTES,
            whole_records=whole_records_check(delimiter),
        )
        await self._run(self._lanes.feed(held))
        return None

    async def _run(self, steps: Iterator[Step]) -> None:
        for step in steps:
            if isinstance(step, Block):
                await self._block(step)
            else:
                await self.settle()
                await self._consume(step)

    async def _block(self, block: Block) -> None:
        plan = self._vector_plan()
        if plan is None:
            await self.settle()
            await self._consume(self._reject(block))
            return
        assert self._lanes is not None and self._lanes.columns is not None
        columns = self._lanes.columns
        delimiter = self._csv_options.get("delimiter", ",")
        fmt = self._publisher.format

        def start() -> Awaitable[Any]:
            encode = self._encode
            return asyncio.to_thread(encode, block, columns, delimiter, plan, self._ctx, fmt)

        await self._writes.add(start, lambda encoded: self._publish(block, encoded))

    def _vector_plan(self) -> VectorPlan | None:
        if self._plan is None:
            assert self._lanes is not None and self._lanes.columns is not None
            plan = vector_plan(self._ctx, tuple(self._lanes.columns))
            self._plan = _UNSUPPORTED if plan is None else plan
        return self._plan if isinstance(self._plan, VectorPlan) else None

    async def _publish(self, block: Block, encoded: Any) -> None:
        """Write one encoded block (``None``: the row parser takes the block instead)."""
        if encoded is None:
            await self._consume(self._reject(block))
            return
        if encoded.batch is not None:
            await self._publisher.write_batch(encoded.batch, rows=encoded.rows)
        else:
            await self._publisher.write_encoded(encoded.data, encoded.ends, rows=encoded.rows)
        stats = self._stats
        stats.rows_read += encoded.rows
        stats.rows_ok += encoded.rows
        stats.records += encoded.rows

    def _reject(self, block: Block) -> list[ParsedItem]:
        """The row parser's items for a block (a dedicated, idle parser: the lanes' own one
        may be further ahead in the file by now)."""
        if self._rejects is None:
            assert self._lanes is not None
            self._rejects = CsvParser(**{**self._csv_options, "header": self._lanes.columns})
        self._rejects.resume_at(block.line)
        items = self._rejects.feed(bytes(block.data))
        assert not self._rejects.pending, "the row parser disagrees on a record boundary"
        return items
