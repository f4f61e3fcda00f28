"""Incremental, strict RFC 4180 CSV parsing: bytes split anywhere in, rows with line numbers out.

How it stays both strict and fast:

1. **Validate and cut with one regex call per window** (``_WINDOW`` bytes). The regex only loops
   over ``[^"]`` (sre's fast single-character scan) and checks each quoted field: it opens at a
   field start and closes before a delimiter or line end. Where every quote is well placed, a
   newline ends a record iff an even number of quotes precedes it, so the last record boundary
   is found with ``rfind``/``count`` (memchr speed). Bare CRs are spotted by comparing the CR
   and CRLF counts; only then does a slower field-by-field regex run.
2. **Parse the validated run with the stdlib ``csv.reader``** (strict, C) over the decoded
   ``str`` and build each row with ``dict(zip(header, fields))``.
3. **Only where the fast path stops** does a per-field scan (:func:`_scan_record`) run: the
   record is incomplete (a quoted field continues in the next chunk), malformed (a quote in the
   middle of an unquoted field, text after a closing quote, a bare CR: quarantined as a
   :class:`BadRow`, parsing continues after it), or longer than one window. While a quoted field
   stays open across chunks, only the new bytes are scanned for its closing quote.

Memory is bounded: the buffer holds one incomplete record plus one chunk; a record (and so any
field) longer than ``max_field_bytes`` raises :class:`FieldTooLargeError` instead of buffering on.
A quoted field still open at end of input raises :class:`CorruptInputError` naming the line where
it started: an unclosed quote must never silently swallow the rest of a file.

Column names: duplicates get a ``__2``, ``__3``… suffix and empty names become ``col_<n>``,
because rows are dicts and a repeated key would silently overwrite a value (lossy). Blank lines are
skipped (but counted for line numbers). With ``header=False`` the first record fixes the width.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from streamx.codecs.base import BadRow, ParsedItem, Row
from streamx.codecs.text import BomSkipper, lossy_text
from streamx.exceptions import ConfigError, CorruptInputError, FieldTooLargeError

_WINDOW = 4 * 1024 * 1024  # bytes handed to one regex + csv.reader batch
_QUOTE, _LF, _CR = 0x22, 0x0A, 0x0D
# Content of a quoted field after its opening quote: stops at the closing quote (or the end).
_EXTRA_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_QCONTENT = re.compile(rb'[^"]*+(?:""[^"]*+)*+')
_LONE_CR = re.compile(rb"\r(?!\n)")  # 3x faster than comparing CR and CRLF counts


class _Patterns:
    """Compiled regexes for one delimiter.

    ``batch`` is the fast validator: it only loops over ``[^"]`` (sre's quick single-character
    scan, ~15x faster than a character class here) and checks each quoted field: it must open
    at a field start and close before a delimiter or line end. It spans many records per call.
    ``records`` is the strict per-field pattern, used only where a bare CR is involved.
    """

    __slots__ = ("batch", "record", "records", "unquoted")

    def __init__(self, delimiter: bytes) -> None:
        d = re.escape(delimiter)
        quoted = rb'"[^"]*+(?:""[^"]*+)*+"'
        unquoted = rb'[^"\r\n' + d + rb"]*+"
        field = rb"(?>" + quoted + rb"|" + unquoted + rb")"
        record = field + rb"(?:" + d + field + rb")*+\r?\n"
        self.batch = re.compile(
            rb'(?:[^"]*+(?<![^\n' + d + rb"])" + quoted + rb"(?=[\r\n" + d + rb"]))*+" + rb'[^"]*+'
        )
        self.unquoted = re.compile(unquoted)
        self.record = re.compile(record)
        self.records = re.compile(rb"(?:" + record + rb")*+")


@lru_cache(maxsize=16)
def _patterns(delimiter: bytes) -> _Patterns:
    return _Patterns(delimiter)


def unique_names(names: Sequence[str]) -> list[str]:
    """Make column names unique and non-empty, deterministically (see the module docstring)."""
    wanted = [name or f"col_{index}" for index, name in enumerate(names, 1)]
    taken = set(wanted)
    used: set[str] = set()
    result: list[str] = []
    for name in wanted:
        candidate, suffix = name, 2
        while candidate in used or (candidate != name and candidate in taken):
            candidate = f"{name}__{suffix}"
            suffix += 1
        used.add(candidate)
        result.append(candidate)
    return result


def _check_encoding(encoding: str, delimiter: str) -> str:
    """Return the codec name; only ASCII-compatible encodings can be split at ASCII bytes."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise ConfigError(f"unknown CSV encoding {encoding!r}") from exc
    probe = '\r\n"' + delimiter
    if probe.encode(name, errors="replace") != probe.encode("ascii"):
        raise ConfigError(f"CSV encoding {encoding!r} is not ASCII-compatible")
    return "utf-8" if name == "utf-8-sig" else name


class CsvParser:
    """Parse CSV bytes fed in chunks split at any byte into :class:`Row` / :class:`BadRow`."""

    def __init__(
        self,
        *,
        header: bool | Sequence[str] = True,
        delimiter: str = ",",
        max_field_bytes: int = 16 * 1024 * 1024,
        encoding: str = "utf-8",
    ) -> None:
        if len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n':
            raise ConfigError(f"CSV delimiter must be one ASCII character, got {delimiter!r}")
        if isinstance(header, str) or (not isinstance(header, bool) and not header):
            raise ConfigError("CSV header must be True, False or a sequence of column names")
        self._encoding = _check_encoding(encoding, delimiter)
        self._bom = BomSkipper() if self._encoding == "utf-8" else None
        self._delim = ord(delimiter)
        self._re = _patterns(delimiter.encode("ascii"))
        self._delimiter = delimiter
        self._max = max_field_bytes
        self._window = max(1, min(max_field_bytes, _WINDOW))
        if csv.field_size_limit() < max_field_bytes:
            csv.field_size_limit(max_field_bytes)  # process-wide; only ever raised
        self._header_row = header is True  # first record names the columns
        self._names: list[str] | None = None if isinstance(header, bool) else unique_names(header)
        self._buf = bytearray()
        self._line = 1  # physical line of self._buf[0]
        self._gate_quote: int | None = None  # inside an open quoted field: scan from here
        self._gate_nl = 0  # no newline before this buffer position

    @property
    def columns(self) -> list[str] | None:
        """The column names, once known (after the header record with ``header=True``)."""
        return None if self._names is None else list(self._names)

    @property
    def pending(self) -> int:
        """Bytes held back: 0 means everything fed so far ended at a record boundary."""
        return len(self._buf) + (0 if self._bom is None else self._bom.pending)

    @property
    def line(self) -> int:
        """The physical line number of the next byte to be fed (1-based)."""
        return self._line

    def resume_at(self, line: int) -> None:
        """Continue at ``line`` after another reader parsed the records in between.

        For the columnar fast path, which hands the parser only some stretches of a file: it is
        only allowed at a record boundary (nothing pending) once the columns are known.
        """
        if self.pending or self._names is None:
            raise ValueError("resume_at needs an idle parser whose columns are known")
        if self._bom is not None:
            self._bom.flush()  # far from the start of the file: a BOM there is data
        self._line = line

    def feed(self, data: bytes) -> list[ParsedItem]:
        """Add ``data``; return the records it completed."""
        if self._bom is not None:
            data = self._bom.feed(data)
        if not data:
            return []
        buf = self._buf
        buf += data
        if self._gate_quote is not None:
            after = self._find_closing_quote(self._gate_quote)
            if after < 0:
                self._check_pending()
                return []
            self._gate_quote = None
            self._gate_nl = after
        if buf.find(b"\n", self._gate_nl) < 0:
            self._gate_nl = len(buf)
            self._check_pending()
            return []
        out = self._drain(final=False)
        self._check_pending()
        return out

    def flush(self) -> list[ParsedItem]:
        """Parse the last record (a final newline is optional); raise on an unclosed quote."""
        if self._bom is not None:
            self._buf += self._bom.flush()
        if not self._buf:
            return []
        if self._buf[-1] != _LF:
            self._buf += b"\n"
        return self._drain(final=True)

    def _find_closing_quote(self, start: int) -> int:
        """Continue scanning an open quoted field; return the index after its closing quote."""
        end = _end(_QCONTENT, self._buf, start, len(self._buf))
        if end + 1 >= len(self._buf):  # no quote yet, or a quote whose successor is unknown
            self._gate_quote = end
            return -1
        return end + 1

    def _check_pending(self) -> None:
        """The buffer holds one incomplete record: bound it."""
        if len(self._buf) > self._max:
            hint = " (a quoted field that never closes?)" if self._gate_quote is not None else ""
            raise FieldTooLargeError(f"record exceeds {self._max} bytes{hint}", line=self._line)

    def _drain(self, *, final: bool) -> list[ParsedItem]:
        """Parse every complete record in the buffer; keep the incomplete rest."""
        buf = self._buf
        out: list[ParsedItem] = []
        end = len(buf) if final else buf.rfind(b"\n") + 1
        pos = 0
        open_quote = -1
        with memoryview(buf) as view:
            while pos < end:
                stop, lone_cr = self._valid_run(pos, min(end, pos + self._window))
                if stop > pos:
                    self._emit(view, pos, stop, out, lone_cr=lone_cr)
                    pos = stop
                    continue
                stop, reason, open_quote = _scan_record(buf, pos, end, self._delim, self._re)
                if stop < 0:
                    break
                if stop - pos > self._max:
                    raise FieldTooLargeError(f"record exceeds {self._max} bytes", line=self._line)
                if reason is None:  # well-formed, just longer than one window
                    self._emit(view, pos, stop, out, lone_cr=True)
                else:
                    self._bad(view, pos, stop, reason, out)
                pos = stop
        if pos < end and final:
            line = self._line + buf.count(b"\n", pos, max(open_quote, pos))
            raise CorruptInputError(
                f"unclosed quoted field (opened at line {line}): the input ended inside it",
                line=line,
            )
        del buf[:pos]
        if pos < end and open_quote >= 0:
            self._gate_quote = end - pos  # content up to the region end is already checked
        else:
            self._gate_nl = len(buf)
        return out

    def _valid_run(self, pos: int, stop: int) -> tuple[int, bool]:
        return _valid_run(self._re, self._buf, pos, stop)

    def _emit(
        self, view: memoryview, start: int, stop: int, out: list[ParsedItem], *, lone_cr: bool
    ) -> None:
        """Emit the well-formed records in ``view[start:stop]``; quarantine undecodable ones."""
        while start < stop:
            try:
                text = str(view[start:stop], self._encoding)
            except UnicodeDecodeError as exc:
                bad_start, bad_stop = self._record_around(start, stop, start + exc.start)
                if bad_start > start:
                    self._emit_text(str(view[start:bad_start], self._encoding), out, lone_cr)
                reason = f"invalid {self._encoding} byte sequence: {exc.reason}"
                self._bad(view, bad_start, bad_stop, reason, out)
                start = bad_stop
                continue
            self._emit_text(text, out, lone_cr)
            return

    def _record_around(self, start: int, stop: int, offset: int) -> tuple[int, int]:
        """Bounds of the (well-formed) record in ``[start, stop)`` that contains ``offset``."""
        while True:
            end = _end(self._re.record, self._buf, start, stop)
            if end == start:  # not reached: the range was validated record by record
                return start, stop
            if end > offset:
                return start, end
            start = end

    def _emit_text(self, text: str, out: list[ParsedItem], lone_cr: bool) -> None:
        """Turn decoded, well-formed records into rows (the hot loop: keep it lean)."""
        first_line = self._line
        lines_in = _split_lines(text, lone_cr)
        reader = csv.reader(lines_in, delimiter=self._delimiter, strict=True)
        prev = 0
        names = self._names
        if names is None:
            for fields in reader:
                if fields:
                    names = self._start_columns(fields, first_line + prev, out)
                    prev = reader.line_num
                    break
                prev = reader.line_num
            else:
                self._line = first_line + prev
                return
        width = len(names)
        lines: list[str] | None = None
        append = out.append
        for fields in reader:
            if len(fields) == width:
                append(Row(first_line + prev, dict(zip(names, fields, strict=False))))
            elif fields:
                if lines is None:
                    lines = text.split("\n")
                raw = "\n".join(lines[prev : reader.line_num]).removesuffix("\r")
                reason = f"expected {width} fields, got {len(fields)}"
                append(BadRow(first_line + prev, reason, raw))
            prev = reader.line_num
        self._line = first_line + prev

    def _start_columns(self, fields: list[str], line: int, out: list[ParsedItem]) -> list[str]:
        """The first record: the header, or (``header=False``) the first row fixing the width."""
        if self._header_row:
            self._names = unique_names(fields)
        else:
            self._names = [f"col_{index}" for index in range(1, len(fields) + 1)]
            out.append(Row(line, dict(zip(self._names, fields, strict=False))))
        return self._names

    def _bad(
        self, view: memoryview, start: int, stop: int, reason: str, out: list[ParsedItem]
    ) -> None:
        """Quarantine the record ``view[start:stop]`` (a bad header is fatal instead)."""
        if self._names is None and self._header_row:
            raise CorruptInputError(f"malformed CSV header: {reason}", line=self._line)
        raw = lossy_text(view[start:stop], self._encoding).removesuffix("\n").removesuffix("\r")
        out.append(BadRow(self._line, reason, raw))
        self._line += self._buf.count(b"\n", start, stop)


def _split_lines(text: str, lone_cr: bool) -> Iterable[str]:
    """Lines ending in LF (kept), as ``csv.reader`` wants them.

    ``str.splitlines`` is twice as fast as iterating a ``StringIO`` but also breaks at CR, VT,
    FF, FS/GS/RS, NEL and U+2028/9, which may occur inside fields; use it only when none does.
    """
    if lone_cr or any(char in text for char in _EXTRA_BREAKS):
        return io.StringIO(text, newline="\n")
    return text.splitlines(keepends=True)


def valid_run(
    buf: bytes | bytearray, pos: int, stop: int, delimiter: str = ","
) -> tuple[int, bool]:
    """End of the longest run of complete, well-formed records in ``buf[pos:stop]`` (``pos``
    when the first record is malformed or incomplete), and whether the run may hold a CR that
    is not part of a CRLF (inside a quoted field). ``pos`` must be at a record boundary.

    This is the parser's own fast validation, shared with the columnar fast path so that both
    agree on which bytes are well-formed records.
    """
    return _valid_run(_patterns(delimiter.encode("ascii")), buf, pos, stop)


def _valid_run(
    patterns: _Patterns, buf: bytes | bytearray, pos: int, stop: int
) -> tuple[int, bool]:
    valid = _end(patterns.batch, buf, pos, stop)  # every quote before here is well placed
    cut = _last_record_end(buf, pos, valid)
    if _LONE_CR.search(buf, pos, cut):  # a bare CR: check field by field
        return _end(patterns.records, buf, pos, cut), True
    return cut, False


def _last_record_end(buf: bytes | bytearray, pos: int, stop: int) -> int:
    """Index after the last newline outside quotes in ``buf[pos:stop]`` (``pos`` if none).

    Only valid when every quote in the range is well placed and quoted fields are complete:
    then a newline is outside quotes iff an even number of quotes precedes it.
    """
    quotes_after = 0
    while True:
        newline = buf.rfind(b"\n", pos, stop)
        if newline < 0:
            return pos
        quotes_after += buf.count(b'"', newline, stop)
        if quotes_after % 2 == 0:
            return newline + 1
        stop = newline


def _end(pattern: re.Pattern[bytes], buf: bytes | bytearray, pos: int, endpos: int) -> int:
    """End of ``pattern`` matched at ``pos`` (``pos`` itself when it does not match)."""
    found = pattern.match(buf, pos, endpos)
    return pos if found is None else found.end()


def _scan_record(
    buf: bytearray, pos: int, end: int, delim: int, patterns: _Patterns
) -> tuple[int, str | None, int]:
    """Find the end of the record at ``pos`` the way a tolerant reader would, noting the first
    strictness violation.

    Returns ``(record_end, reason, open_quote)``: ``record_end`` is -1 when the record does not
    end before ``end``; ``open_quote`` is then the index of the quote that opened the field still
    open (or -1). ``reason`` is None for a well-formed record.
    """
    reason: str | None = None
    i, column = pos, 1
    unquoted = patterns.unquoted
    while True:  # at the start of field number `column`
        if i >= end:
            return -1, reason, -1
        if buf[i] == _QUOTE:
            close = _end(_QCONTENT, buf, i + 1, end)
            if close + 1 >= end:
                return -1, reason, i
            i = close + 1
            byte = buf[i]
            if byte == delim:
                i, column = i + 1, column + 1
                continue
            if byte == _LF:
                return i + 1, reason, -1
            if byte == _CR and i + 1 < end and buf[i + 1] == _LF:
                return i + 2, reason, -1
            reason = reason or f"unexpected character after the closing quote of field {column}"
        while True:  # unquoted (or, after an error, tolerant) field content
            i = _end(unquoted, buf, i, end)
            if i >= end:
                return -1, reason, -1
            byte = buf[i]
            if byte == delim:
                i, column = i + 1, column + 1
                break
            if byte == _LF:
                return i + 1, reason, -1
            if byte == _CR:
                if i + 1 >= end:
                    return -1, reason, -1
                if buf[i + 1] == _LF:
                    return i + 2, reason, -1
                reason = reason or f"carriage return inside unquoted field {column}"
            else:
                reason = reason or f"quote character inside unquoted field {column}"
            i += 1
