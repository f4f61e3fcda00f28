"""Incremental JSON lines parsing: one JSON object per line, bytes split anywhere.

Lines are cut at LF bytes (which never occur inside a multi-byte UTF-8 character or a valid JSON
string), then each line is handed to ``orjson.loads``. Blank lines are skipped but counted, so
line numbers match what an editor shows. A line that is not a JSON object (invalid JSON, an array,
a scalar, invalid UTF-8, nesting deeper than :data:`MAX_ROW_DEPTH`) is quarantined as a
:class:`BadRow`; parsing continues on the next line.
A line longer than ``max_line_bytes`` raises :class:`FieldTooLargeError` rather than buffering on.
"""

from __future__ import annotations

import re

import orjson

from streamx.codecs.base import BadRow, ParsedItem, Row
from streamx.codecs.text import BomSkipper, lossy_text
from streamx.exceptions import FieldTooLargeError

_BLANK = b" \t\r"
#: Rows nested deeper than this are quarantined. orjson parses up to 1024 levels, but the CSV
#: writer (orjson) encodes at most 255 and the JSON lines writer's stdlib fallback about 990,
#: and a record nests the row one level down (``attributes``): a deeper row would pass the
#: parser and then fail the writer, and with it the whole export.
MAX_ROW_DEPTH = 200
# A bracket, or a whole string (skipped: brackets inside strings do not nest).
_NESTING = re.compile(rb'[\[\]{}]|"(?:[^"\\]++|\\.)*+"', re.DOTALL)


def too_deep(raw: bytes | bytearray, limit: int = MAX_ROW_DEPTH) -> bool:
    """True when the JSON text ``raw`` nests brackets deeper than ``limit`` (no recursion).

    Counting brackets (memchr speed) rules out almost every text at once; only a text with
    more than ``limit`` brackets is scanned, strings skipped.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for match in _NESTING.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def json_kind(value: object) -> str:
    """The JSON name of a decoded value's type, for quarantine reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class JsonLinesParser:
    """Parse JSON lines fed in chunks split at any byte into :class:`Row` / :class:`BadRow`."""

    def __init__(self, *, max_line_bytes: int = 64 * 1024 * 1024) -> None:
        self._max = max_line_bytes
        self._bom = BomSkipper()
        self._buf = bytearray()
        self._line = 1  # line number of self._buf[0]

    def resume_at(self, line: int) -> None:
        """Go on from the middle of a file: the next byte fed starts physical line ``line``,
        and is not looked at for a byte order mark (only a file's first bytes are)."""
        if self._buf or self._bom.pending:
            raise ValueError("resume_at needs a parser at a line boundary")
        self._bom.flush()
        self._line = line

    def feed(self, data: bytes) -> list[ParsedItem]:
        """Add ``data``; return the lines it completed."""
        data = self._bom.feed(data)
        if not data:
            return []
        buf = self._buf
        newline = data.rfind(b"\n")
        if newline < 0:  # the buffer before it held no newline either
            buf += data
            self._check_pending()
            return []
        cut = len(buf) + newline + 1
        buf += data
        lines = bytes(buf[:cut]).split(b"\n")
        del buf[:cut]
        lines.pop()  # the empty piece after the last newline
        out = self._parse(lines)
        self._check_pending()
        return out

    def flush(self) -> list[ParsedItem]:
        """Parse a last line that has no newline."""
        self._buf += self._bom.flush()
        if not self._buf:
            return []
        last = bytes(self._buf)
        self._buf.clear()
        return self._parse([last])

    def _check_pending(self) -> None:
        if len(self._buf) > self._max:
            raise FieldTooLargeError(f"line exceeds {self._max} bytes", line=self._line)

    def _parse(self, lines: list[bytes]) -> list[ParsedItem]:
        out: list[ParsedItem] = []
        append = out.append
        loads = orjson.loads
        limit = self._max
        for line, raw in enumerate(lines, self._line):
            if len(raw) > limit:
                raise FieldTooLargeError(f"line exceeds {limit} bytes", line=line)
            try:
                value = loads(raw)
            except orjson.JSONDecodeError as exc:
                if raw.strip(_BLANK):
                    append(BadRow(line, f"invalid JSON: {exc}", _raw_text(raw)))
                continue
            if type(value) is dict:
                if len(raw) > MAX_ROW_DEPTH and too_deep(raw):
                    reason = f"nested deeper than {MAX_ROW_DEPTH} levels"
                    append(BadRow(line, reason, _raw_text(raw)))
                else:
                    append(Row(line, value))
            else:
                reason = f"expected a JSON object, got {json_kind(value)}"
                append(BadRow(line, reason, _raw_text(raw)))
        self._line += len(lines)
        return out


def _raw_text(raw: bytes) -> str:
    return lossy_text(raw).removesuffix("\r")
