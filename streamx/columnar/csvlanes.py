"""Split decoded CSV bytes between the columnar parser (fast lane) and the row parser (slow lane).

The columnar path must publish exactly what the row path publishes, quarantine included. The
rule that makes that true by construction: **the row parser decides everything it is not sure
the columnar parser decides identically.** Every byte goes to exactly one lane, in order:

* The file starts in the slow lane: :class:`~streamx.codecs.csv.CsvParser` strips the BOM,
  reads the header (or fixes the width with ``header=False``) and skips leading blank lines.
  Once it has consumed everything fed to it (nothing pending) and knows the columns, the fast
  lane takes over at that record boundary.
* The fast lane cuts blocks of whole, well-formed records with the row parser's own validator
  (:func:`~streamx.codecs.csv.valid_run`): every quote well placed, no bare CR outside quotes,
  no record longer than ``max_field_bytes``. A quicker check may say yes first
  (:mod:`streamx.columnar.csvcheck`: RE2, without the GIL) for a block ending at the last
  newline outside quotes; the validator runs only when it says no. Such a block is handed to
  pyarrow as a :class:`Block`; if pyarrow or the vectorized normalizer still finds something
  (a row with the wrong field count, invalid UTF-8, a value that does not convert), the caller
  hands the block back with :meth:`CsvLanes.reject` and the row parser parses it instead,
  quarantining exactly the rows the row path would.
* Anything else (a malformed record, a record too long for a block, the end of a file cut inside
  a quoted field) goes to the slow lane, which keeps it until it is back at a record boundary;
  then the fast lane resumes. Errors (:class:`FieldTooLargeError`, an unclosed quote at the end)
  are therefore raised by the row parser itself, with its messages and line numbers.

Memory: the buffer holds at most one block plus one fed chunk (or one record up to
``max_field_bytes``), as the row parser does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from streamx.codecs.base import ParsedItem
from streamx.codecs.csv import CsvParser, valid_run

#: A quicker yes for :func:`valid_run` on a whole block (see :mod:`streamx.columnar.csvcheck`).
WholeRecords = Callable[[bytes], bool]

#: Decoded bytes per columnar block: large enough to amortize per-call costs of the Arrow
#: kernels, small enough that a block's Arrow data and its encoded output stay a few MB
#: (measured: 256 KiB is ~30% slower, 1 MiB and 2 MiB add ~15 and ~30 MiB of peak RSS).
BLOCK_BYTES: Final = 512 * 1024
#: After a bad record the slow lane is fed in steps of about this size: it hands back soon,
#: and a file full of bad records costs one block scan per step, not one per record.
SLOW_STEP: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Block:
    """Whole, well-formed CSV records for the columnar parser."""

    data: bytes
    #: Physical line number of the first byte.
    line: int


Step = Block | list[ParsedItem]


class CsvLanes:
    """Feed decoded bytes; iterate the steps: :class:`Block` (fast) or parsed items (slow)."""

    def __init__(
        self,
        parser: CsvParser,
        *,
        delimiter: str,
        max_record_bytes: int,
        block_bytes: int,
        whole_records: WholeRecords | None = None,
    ) -> None:
        self._parser = parser
        self._delimiter = delimiter
        self._whole_records = whole_records
        self._max = max_record_bytes
        self._block = max(1, min(block_bytes, max_record_bytes))
        self._buf = bytearray()
        self._fast = False
        self._line = 1  # line of self._buf[0] while in the fast lane
        # The header is fed alone (so the fast lane starts right after it); after a bad record,
        # larger steps keep a run of bad records from costing one block scan per record.
        self._slow_step = 0

    @property
    def columns(self) -> list[str] | None:
        """The column names (known once the header has been read)."""
        return self._parser.columns

    def feed(self, data: bytes) -> Iterator[Step]:
        """Add ``data``; yields the steps it completes, lazily (consume them in order)."""
        self._buf += data
        yield from self._steps(final=False)

    def flush(self) -> Iterator[Step]:
        """End of input: the rest, then the row parser's own end checks (unclosed quote)."""
        if self._fast and self._buf and self._buf[-1] != 0x0A:
            self._buf += b"\n"  # the row parser ends a last record without newline the same way
        yield from self._steps(final=True)
        items = self._parser.flush()
        if items:
            yield items

    def _steps(self, *, final: bool) -> Iterator[Step]:
        while self._buf:
            if self._fast:
                block = self._cut_block(final)
                if block is not None:
                    yield block
                elif self._fast:
                    return  # waiting for more bytes
            else:
                fed, items = self._feed_slow(final)
                if items:
                    yield items
                if not fed:
                    return

    def _cut_block(self, final: bool) -> Block | None:
        buf = self._buf
        if not final and len(buf) < self._block:
            return None
        end = self._block_end(final)
        block = self._checked_block(min(end, self._max)) if end else None
        if block is None:
            if end or final or len(buf) > self._max:
                self._to_slow()  # malformed or too long: the row parser decides
            return None
        del buf[: len(block.data)]
        self._line += block.data.count(b"\n")
        return block

    def _checked_block(self, stop: int) -> Block | None:
        """The longest run of whole, well-formed records in ``buf[:stop]`` (``None``: none).

        The quick way first: the run is what ends at the last newline outside quotes if the
        quotes are well placed, and the check (RE2, without the GIL) says whether they are.
        """
        buf = self._buf
        if self._whole_records is not None:
            cut = _end_outside_quotes(buf, stop)
            if cut:
                block = self._block_at(cut)
                if self._whole_records(block.data):
                    return block
        cut = valid_run(buf, 0, stop, self._delimiter)[0]
        return self._block_at(cut) if cut else None

    def _block_at(self, cut: int) -> Block:
        with memoryview(self._buf) as view:
            return Block(bytes(view[:cut]), self._line)  # one copy (``buf[:cut]`` is two)

    def _block_end(self, final: bool) -> int:
        """Where the next block may end: the last newline within ``block_bytes`` (so a block
        never follows the size of what the decoder handed over: a 1 MiB read of a highly
        compressed file must not become a 20 MiB block), else the last newline of all."""
        buf = self._buf
        if final and len(buf) <= self._block:
            return len(buf)
        end = buf.rfind(b"\n", 0, self._block) + 1
        if end == 0:  # a record longer than a block: take what is there, as before
            end = len(buf) if final else buf.rfind(b"\n") + 1
        return end

    def _to_slow(self) -> None:
        self._fast = False
        self._slow_step = SLOW_STEP
        self._parser.resume_at(self._line)

    def _feed_slow(self, final: bool) -> tuple[bool, list[ParsedItem]]:
        buf = self._buf
        if final:
            end = len(buf)
        else:
            newline = buf.find(b"\n", self._slow_step)
            end = (newline if newline >= 0 else buf.rfind(b"\n")) + 1
            if end == 0 and len(buf) > self._max:
                end = len(buf)  # the row parser raises FieldTooLargeError for it
        if end == 0:
            return False, []
        items = self._parser.feed(bytes(buf[:end]))
        del buf[:end]
        parser = self._parser
        if not final and not parser.pending and parser.columns is not None:
            self._fast, self._line = True, parser.line
        return True, items


def _end_outside_quotes(buf: bytearray, stop: int) -> int:
    """Index after the last newline in ``buf[:stop]`` preceded by an even number of quotes
    (0 if none): the last record end, provided every quote before it is well placed."""
    quotes = buf.count(b'"', 0, stop)
    while True:
        newline = buf.rfind(b"\n", 0, stop)
        if newline < 0:
            return 0
        quotes -= buf.count(b'"', newline, stop)
        if quotes % 2 == 0:
            return newline + 1
        stop = newline
