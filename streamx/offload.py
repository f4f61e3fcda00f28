"""JSON lines on two cores: blocks of lines worked on by a helper process and a thread.

The row path is Python for every row (``orjson.loads``, the normalizer's plan, ``orjson.dumps``:
~20 us a row), and Python holds the GIL, so threads cannot share that work; a second process
can. A JSON lines file is cut at newlines (which never occur inside a JSON string) into blocks
of whole lines; each block is parsed, normalized and encoded by :func:`work_block`, which is
the row path's own code (a :class:`~streamx.codecs.jsonl.JsonLinesParser` resumed at the
block's first line, the registered normalizer, the publisher's line encoder), so the output is
the row path's byte for byte, quarantine and line numbers included. The blocks go to the helper
process or a worker thread (:mod:`streamx.helper`) and are written in input order
(:class:`~streamx.ordered.OrderedWrites`).

When it is used: the helper is available (:func:`streamx.helper.helper_available`), the file is
JSON lines larger than the sniffing window, the output is a line format (JSON lines, CSV) and
the stream's normalizer is the registered one. The helper starts with the file's third block,
so small files never pay its start-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final, cast

from streamx.codecs.base import ParsedItem, Row, raw_of
from streamx.codecs.jsonl import JsonLinesParser
from streamx.codecs.sniff import SNIFF_BYTES, sniff_format
from streamx.exceptions import RowError
from streamx.helper import helper_available, start_block
from streamx.normalize.base import ExportContext, Normalizer
from streamx.normalize.registry import NORMALIZERS, get_normalizer
from streamx.ordered import OrderedWrites
from streamx.publish import Publisher
from streamx.writers.encoders import Encoder, get_encoder

#: Bytes of whole lines per block (~1000 activity rows: ~20 ms of work).
BLOCK_BYTES = 256 * 1024
#: Blocks started but not yet written, at most (bounds memory: each is a few MB of work).
IN_FLIGHT = 4
#: Blocks of a file worked on in threads before the helper is used (small files never start it).
WARM_BLOCKS = 2
#: Files that end within this many bytes take the row path (nothing to gain).
MIN_FILE_BYTES = SNIFF_BYTES
_LINE_FORMATS: Final = frozenset(("jsonl", "csv"))
_DEFAULT_MAX_LINE: Final = 64 * 1024 * 1024  # JsonLinesParser's default max_line_bytes

Consume = Callable[[list[ParsedItem]], Awaitable[None]]


@dataclass(slots=True)
class BlockResult:
    """What one block yields: encoded records and the rows to quarantine, in line order."""

    data: bytes
    ends: list[int]
    rows_read: int
    rows_ok: int
    bad: list[tuple[int, str, str]]


def work_block(
    data: bytes, line: int, first: bool, ctx: ExportContext, fmt: str, max_line_bytes: int
) -> BlockResult:
    """Parse, normalize and encode whole JSON lines (run in the helper process or a thread).

    ``line`` is the physical line ``data`` starts on; ``first``: ``data`` starts the file (a
    byte order mark is skipped there only).
    """
    parser = JsonLinesParser(max_line_bytes=max_line_bytes)
    if not first:
        parser.resume_at(line)
    items = parser.feed(data) + parser.flush()
    normalize = get_normalizer(ctx.stream)
    records: list[dict[str, Any]] = []
    bad: list[tuple[int, str, str]] = []
    ok = 0
    for item in items:
        if isinstance(item, Row):
            try:
                records.extend(normalize(item, ctx))
                ok += 1
            except RowError as exc:
                bad.append((item.line, exc.reason, raw_of(item)))
        else:
            bad.append((item.line, item.reason, item.raw))
    chunks = cast(Encoder, get_encoder(fmt)).encode(records)
    return BlockResult(b"".join(chunks), list(accumulate(map(len, chunks))), len(items), ok, bad)


def open_offload(
    ctx: ExportContext,
    normalizer: Normalizer,
    publisher: Publisher,
    parser_options: dict[str, Any],
    stats: Any,
    consume: Consume,
) -> JsonLinesOffload | None:
    """The offloaded row path for one file, or ``None`` when it does not apply."""
    if publisher.format not in _LINE_FORMATS or NORMALIZERS.get(ctx.stream) is not normalizer:
        return None
    jsonl_options = parser_options.get("jsonl_options") or {}
    if not set(jsonl_options) <= {"max_line_bytes"} or not helper_available():
        return None
    max_line = jsonl_options.get("max_line_bytes", _DEFAULT_MAX_LINE)
    return JsonLinesOffload(ctx, publisher, stats, consume, max_line)


class JsonLinesOffload:
    """Feed decoded bytes; :meth:`feed`/:meth:`finish` hand back bytes of a file it declines."""

    def __init__(
        self,
        ctx: ExportContext,
        publisher: Publisher,
        stats: Any,
        consume: Consume,
        max_line_bytes: int,
    ) -> None:
        self._ctx = ctx
        self._publisher = publisher
        self._stats = stats
        self._consume = consume
        self._max = max_line_bytes
        self._held = bytearray()
        self._chosen = False
        self._buf = bytearray()
        self._line = 1  # physical line of self._buf[0]
        self._first = True
        self._blocks = 0
        self._writes = OrderedWrites(IN_FLIGHT)

    async def feed(self, data: bytes) -> bytes | None:
        """Take ``data``; returns everything held when the file is not one this path serves."""
        if not self._chosen:
            self._held += data
            if len(self._held) < SNIFF_BYTES:
                return None
            held, self._held = bytes(self._held), bytearray()
            if sniff_format(held[:SNIFF_BYTES]) != "jsonl":
                return held
            self._choose(held)
        else:
            self._buf += data
        await self._cut(final=False)
        return None

    def _choose(self, held: bytes) -> None:
        self._chosen = True
        self._stats.format = "jsonl"
        self._buf += held

    async def finish(self) -> bytes | None:
        """End of input: the last lines, then wait for every write; bytes if declined."""
        if not self._chosen:
            held, self._held = bytes(self._held), bytearray()
            if len(held) < MIN_FILE_BYTES or sniff_format(held[:SNIFF_BYTES]) != "jsonl":
                return held
            self._choose(held)
        await self._cut(final=True)
        await self.settle()
        return None

    async def settle(self) -> None:
        """Wait until every block cut so far is written (and counted)."""
        await self._writes.settle()

    async def abandon(self) -> None:
        """The file failed: stop the writes still pending."""
        await self._writes.abandon()

    async def _cut(self, *, final: bool) -> None:
        buf = self._buf
        while buf and (final or len(buf) >= BLOCK_BYTES):
            end = buf.rfind(b"\n", 0, BLOCK_BYTES) + 1 or buf.rfind(b"\n") + 1
            if end == 0 and not final:
                if len(buf) > self._max:  # the row parser raises its own error for it
                    await self._in_process(bytes(buf), self._line, last=False)
                return
            end = end or len(buf)
            with memoryview(buf) as view:
                block = bytes(view[:end])
            del buf[:end]
            line, self._line = self._line, self._line + block.count(b"\n")
            await self._block(block, line, last=final and not buf)

    async def _block(self, block: bytes, line: int, *, last: bool) -> None:
        if len(block) > self._max:  # may hold a line over the limit: the row parser decides
            await self.settle()
            await self._in_process(block, line, last=last)
            return
        first, self._first = self._first, False
        self._blocks += 1
        warm = self._blocks > WARM_BLOCKS
        args = (block, line, first, self._ctx, self._publisher.format, self._max)

        await self._writes.add(lambda: start_block(work_block, *args, helper=warm), self._write)

    async def _in_process(self, block: bytes, line: int, *, last: bool) -> None:
        parser = JsonLinesParser(max_line_bytes=self._max)
        if not self._first:
            parser.resume_at(line)
        self._first = False
        items = parser.feed(block)
        await self._consume(items + parser.flush() if last else items)

    async def _write(self, result: BlockResult) -> None:
        stats, publisher = self._stats, self._publisher
        for line, reason, raw in result.bad:
            stats.rows_quarantined += 1
            await publisher.quarantine(stats.name, line, reason, raw)
        stats.rows_read += result.rows_read
        stats.rows_ok += result.rows_ok
        if result.ends or result.rows_ok:
            await publisher.write_encoded(result.data, result.ends, rows=result.rows_ok)
        stats.records += len(result.ends)
