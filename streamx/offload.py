"""JSON lines in blocks: Arrow where it reproduces the row path, else a second process.

A JSON lines file is cut at newlines (which never occur inside a JSON string) into blocks of
whole lines, worked on out of order and written in input order
(:class:`~streamx.ordered.OrderedWrites`). A block is worked on in one of two ways:

* **Arrow** (:func:`arrow_block`, with pyarrow): 768 KiB blocks parsed, checked, normalized and
  encoded column-wise in worker threads (:mod:`streamx.columnar.jsonblock`), for any output
  format; a block Arrow cannot reproduce exactly goes to the row parser in its place.
* **The row path's own code** (:func:`work_block`): the row path is Python for every row
  (``orjson.loads``, the normalizer's plan, ``orjson.dumps``: ~20 us a row) and holds the GIL,
  so threads cannot share it; a second process can. 256 KiB blocks go to the helper process
  or a worker thread (:mod:`streamx.helper`) and run a
  :class:`~streamx.codecs.jsonl.JsonLinesParser` resumed at the block's first line, the
  registered normalizer and the publisher's line encoder: the row path's output byte for byte,
  quarantine and line numbers included. Line formats (JSON lines, CSV) only.

When it is used: the file is JSON lines larger than the sniffing window, the stream's
normalizer is the registered one, and Arrow serves the stream
(:func:`streamx.columnar.fast_path_available`) or the helper is available
(:func:`streamx.helper.helper_available`) for a line format. A file starts with Arrow when it
can and changes to the row path's code when Arrow misses more often than not. The helper
starts with the file's third block, so small files never pay its start-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final, cast

from streamx.bytes_like import Bytes
from streamx.codecs.base import ParsedItem, Row, raw_of
from streamx.codecs.jsonl import JsonLinesParser
from streamx.codecs.sniff import SNIFF_BYTES, sniff_format
from streamx.codecs.text import UTF8_BOM
from streamx.columnar import fast_path_available
from streamx.columnar.plans import STREAMS_SERVED
from streamx.exceptions import RowError
from streamx.helper import helper_available, start_block
from streamx.normalize.base import ExportContext, Normalizer
from streamx.normalize.registry import NORMALIZERS, get_normalizer
from streamx.ordered import OrderedWrites
from streamx.publish import Publisher
from streamx.unread import Unread
from streamx.writers.encoders import Encoder, get_encoder

#: Bytes of whole lines per block (~1000 activity rows: ~20 ms of work).
BLOCK_BYTES = 256 * 1024
#: Blocks started but not yet written, at most (bounds memory: each is a few MB of work).
IN_FLIGHT = 4
#: Bytes of whole lines per Arrow block: Arrow's cost per block (~100 kernel calls) needs
#: large blocks (300k rows to JSON lines .gz: 256 KiB 7.9 s, 512 KiB 5.5 s, 1 MiB 4.5 s,
#: 2 MiB 4.0 s for 97 -> 124 MiB peak RSS), and peak RSS must stay under 100 MiB (500k rows,
#: two runs each: 512 KiB 4.8-5.1 s / 90 MiB, 768 KiB 4.2-4.6 s / 96-98 MiB, 1 MiB 4.1-4.3 s
#: / 99-101 MiB, of which ~45 MiB are library pages).
ARROW_BLOCK_BYTES = 768 * 1024
#: Arrow blocks started but not yet written, at most.
ARROW_IN_FLIGHT = 2
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


def arrow_block(data: Bytes, first: bool, ctx: ExportContext, fmt: str) -> Any | None:
    """Whole JSON lines encoded with Arrow (in a worker thread), or ``None`` when the row path
    must take them (:mod:`streamx.columnar.jsonblock`)."""
    from streamx.columnar.jsonblock import encode_json_block  # pyarrow

    # The row parser skips a BOM at the start of a file (a view has no ``startswith``).
    if first and data[: len(UTF8_BOM)] == UTF8_BOM:
        data = data[len(UTF8_BOM) :]
    return encode_json_block(data, ctx, fmt)


def open_offload(
    ctx: ExportContext,
    normalizer: Normalizer,
    publisher: Publisher,
    parser_options: dict[str, Any],
    stats: Any,
    consume: Consume,
) -> JsonLinesOffload | None:
    """The block-wise JSON lines path for one file, or ``None`` when it does not apply: it
    needs Arrow (any output format) or the helper process (JSON lines or CSV output)."""
    if NORMALIZERS.get(ctx.stream) is not normalizer:
        return None
    jsonl_options = parser_options.get("jsonl_options") or {}
    if not set(jsonl_options) <= {"max_line_bytes"}:
        return None
    rows = publisher.format in _LINE_FORMATS and helper_available()
    arrow = ctx.stream in STREAMS_SERVED and fast_path_available()
    if not (rows or arrow):
        return None
    max_line = jsonl_options.get("max_line_bytes", _DEFAULT_MAX_LINE)
    return JsonLinesOffload(ctx, publisher, stats, consume, max_line, rows=rows, arrow=arrow)


class JsonLinesOffload:
    """Feed decoded bytes; :meth:`feed`/:meth:`finish` hand back bytes of a file it declines.

    Two ways to work a block: with Arrow (``arrow``: 768 KiB blocks in worker threads, any
    output format; a block Arrow cannot reproduce exactly is parsed by the row parser in the
    event loop's process, in its place) or with the row path's own code (``rows``: 256 KiB
    blocks, the helper process and a thread; line formats only). A file starts with Arrow
    when it can, and changes to the row path's code for good once more of its blocks have
    missed than not (two at least): an irregular file then still gets the second core.
    """

    def __init__(
        self,
        ctx: ExportContext,
        publisher: Publisher,
        stats: Any,
        consume: Consume,
        max_line_bytes: int,
        *,
        rows: bool = True,
        arrow: bool = False,
    ) -> None:
        self._ctx = ctx
        self._publisher = publisher
        self._stats = stats
        self._consume = consume
        self._max = max_line_bytes
        self._rows = rows
        self._arrow = arrow
        self._arrow_hits = 0
        self._arrow_misses = 0
        self._held = bytearray()
        self._chosen = False
        self._unread = Unread()
        self._line = 1  # physical line of the first unread byte
        self._first = True
        self._blocks = 0
        self._writes = OrderedWrites(ARROW_IN_FLIGHT if arrow else IN_FLIGHT)

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
            self._unread.append(data)
        await self._cut(final=False)
        return None

    def _choose(self, held: bytes) -> None:
        self._chosen = True
        self._stats.format = "jsonl"
        self._unread.append(held)
        if self._arrow:
            from streamx.columnar.kernels import use_lean_memory_pool  # pyarrow

            use_lean_memory_pool()

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
        unread = self._unread
        size = ARROW_BLOCK_BYTES if self._arrow else BLOCK_BYTES
        while unread and (final or len(unread) >= size):
            end = unread.after_last_newline(size) or unread.after_last_newline()
            if end == 0 and not final:
                if len(unread) > self._max:  # the row parser raises its own error for it
                    await self.settle()
                    await self._in_process(unread.copy(len(unread)), self._line, last=False)
                return
            end = end or len(unread)
            block = unread.view(end) if self._arrow else unread.copy(end)
            line, self._line = self._line, self._line + unread.count(b"\n", end)
            unread.drop(end)
            await self._block(block, line, last=final and not unread)
            size = ARROW_BLOCK_BYTES if self._arrow else BLOCK_BYTES

    async def _block(self, block: Bytes, line: int, *, last: bool) -> None:
        if len(block) > self._max:  # may hold a line over the limit: the row parser decides
            await self.settle()
            await self._in_process(block, line, last=last)
            return
        first, self._first = self._first, False
        if self._arrow:
            arrow_args = (block, first, self._ctx, self._publisher.format)

            async def write(encoded: Any) -> None:
                await self._write_arrow(encoded, block, line, first=first, last=last)

            await self._writes.add(
                lambda: start_block(arrow_block, *arrow_args, helper=False), write
            )
            return
        self._blocks += 1
        helper = self._blocks > WARM_BLOCKS
        args = (bytes(block), line, first, self._ctx, self._publisher.format, self._max)
        await self._writes.add(lambda: start_block(work_block, *args, helper=helper), self._write)

    async def _in_process(self, block: Bytes, line: int, *, last: bool) -> None:
        first, self._first = self._first, False
        await self._consume(self._items(block, line, first=first, last=last))

    def _items(self, block: Bytes, line: int, *, first: bool, last: bool) -> list[ParsedItem]:
        """The row parser's items for a block of lines starting on physical line ``line``."""
        parser = JsonLinesParser(max_line_bytes=self._max)
        if not first:
            parser.resume_at(line)
        items = parser.feed(bytes(block))
        return items + parser.flush() if last else items

    async def _write_arrow(
        self, encoded: Any, block: Bytes, line: int, *, first: bool, last: bool
    ) -> None:
        """Publish an Arrow block, or have the row parser take it (``encoded`` is ``None``)."""
        if encoded is None:
            self._arrow_misses += 1
            if self._rows and self._arrow_misses >= 2 and self._arrow_misses > self._arrow_hits:
                self._arrow = False  # blocks cut from now on take the row path's code
                self._writes.limit = IN_FLIGHT
            await self._consume(self._items(block, line, first=first, last=last))
            return
        self._arrow_hits += 1
        if encoded.batch is not None:
            await self._publisher.write_batch(encoded.batch, rows=encoded.rows)
        else:
            await self._publisher.write_encoded(encoded.data, encoded.ends, rows=encoded.rows)
        stats = self._stats
        stats.rows_read += encoded.rows
        stats.rows_ok += encoded.rows
        stats.records += encoded.rows

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
