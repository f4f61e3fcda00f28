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

Memory: the unread input holds at most one block plus one fed chunk (or one record up to
``max_field_bytes``), as the row parser does; a block in flight keeps the chunk it is a view
of alive until it is written (:mod:`streamx.unread`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from streamx.bytes_like import Bytes
from streamx.codecs.base import ParsedItem
from streamx.codecs.csv import CsvParser, valid_run
from streamx.unread import Unread

#: A quicker yes for :func:`valid_run` on a whole block (see :mod:`streamx.columnar.csvcheck`).
WholeRecords = Callable[[Bytes], bool]

#: Decoded bytes per columnar block: large enough to amortize per-call costs of the Arrow
#: kernels, small enough that a block's Arrow data and its encoded output stay a few MB
#: (measured: 256 KiB is ~30% slower, 1 MiB and 2 MiB add ~15 and ~30 MiB of peak RSS).
BLOCK_BYTES: Final = 512 * 1024
#: After a bad record the slow lane is fed in steps of about this size: it hands back soon,
#: and a file full of bad records costs one block scan per step, not one per record.
SLOW_STEP: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Block:
    """Whole, well-formed CSV records for the columnar parser: ``source[start:stop]``.

    The records stay where the decoder put them (or where the rest of the last chunk was
    joined to the next), so cutting a block copies nothing: a copy of every block held the
    GIL on the event loop for ~7% of the fast path's time holding it.
    """

    source: bytes
    start: int
    stop: int
    #: Physical line number of the first byte.
    line: int

    @property
    def data(self) -> memoryview:
        """The records, as a view of ``source`` (no copy)."""
        return memoryview(self.source)[self.start : self.stop]


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
        self._unread = Unread()  # positions below count from its start unless said otherwise
        self._fast = False
        self._line = 1  # line of the first byte not yet stepped over, while in the fast lane
        # The header is fed alone (so the fast lane starts right after it); after a bad record,
        # larger steps keep a run of bad records from costing one block scan per record.
        self._slow_step = 0

    @property
    def columns(self) -> list[str] | None:
        """The column names (known once the header has been read)."""
        return self._parser.columns

    def feed(self, data: bytes) -> Iterator[Step]:
        """Add ``data``; yields the steps it completes, lazily (consume them in order)."""
        self._unread.append(data)
        yield from self._steps(final=False)

    def flush(self) -> Iterator[Step]:
        """End of input: the rest, then the row parser's own end checks (unclosed quote)."""
        if self._fast and len(self._unread) and not self._unread.ends_with_newline():
            self._unread.append(b"\n")  # the row parser ends a last record so, too
        yield from self._steps(final=True)
        items = self._parser.flush()
        if items:
            yield items

    def _steps(self, *, final: bool) -> Iterator[Step]:
        while self._unread:
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
        size = len(self._unread)
        if not final and size < self._block:
            return None
        end = self._block_end(final)
        cut = self._checked_cut(min(end, self._max)) if end else 0
        if cut == 0:
            if end or final or size > self._max:
                self._to_slow()  # malformed or too long: the row parser decides
            return None
        unread = self._unread
        block = Block(unread.data, unread.start, unread.start + cut, self._line)
        self._line += unread.count(b"\n", cut)
        unread.drop(cut)
        return block

    def _checked_cut(self, stop: int) -> int:
        """Length of the longest run of whole, well-formed records in the first ``stop``
        bytes (0: none).

        The quick way first: the run is what ends at the last newline outside quotes if the
        quotes are well placed, and the check (RE2, without the GIL) says whether they are.
        """
        data, start = self._unread.data, self._unread.start
        if self._whole_records is not None:
            cut = _end_outside_quotes(data, start, start + stop) - start
            if cut > 0 and self._whole_records(memoryview(data)[start : start + cut]):
                return cut
        return valid_run(data, start, start + stop, self._delimiter)[0] - start

    def _block_end(self, final: bool) -> int:
        """Where the next block may end: the last newline within ``block_bytes`` (so a block
        never follows the size of what the decoder handed over: a 1 MiB read of a highly
        compressed file must not become a 20 MiB block), else the last newline of all."""
        unread = self._unread
        size = len(unread)
        if final and size <= self._block:
            return size
        end = unread.after_last_newline(self._block)
        if end == 0:  # a record longer than a block: take what is there, as before
            end = size if final else unread.after_last_newline()
        return end

    def _to_slow(self) -> None:
        self._fast = False
        self._slow_step = SLOW_STEP
        self._parser.resume_at(self._line)

    def _feed_slow(self, final: bool) -> tuple[bool, list[ParsedItem]]:
        unread = self._unread
        size = len(unread)
        if final:
            end = size
        else:
            end = unread.after_newline_from(self._slow_step) or unread.after_last_newline()
            if end == 0 and size > self._max:
                end = size  # the row parser raises FieldTooLargeError for it
        if end == 0:
            return False, []
        items = self._parser.feed(unread.copy(end))
        unread.drop(end)
        parser = self._parser
        if not final and not parser.pending and parser.columns is not None:
            self._fast, self._line = True, parser.line
        return True, items


def _end_outside_quotes(data: bytes, start: int, stop: int) -> int:
    """Index after the last newline in ``data[start:stop]`` preceded (from ``start``) by an
    even number of quotes (``start`` if none): the last record end, provided every quote
    before it is well placed."""
    quotes = data.count(b'"', start, stop)
    while True:
        newline = data.rfind(b"\n", start, stop)
        if newline < 0:
            return start
        quotes -= data.count(b'"', newline, stop)
        if quotes % 2 == 0:
            return newline + 1
        stop = newline
