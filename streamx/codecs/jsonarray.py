"""Streaming a JSON array of records, bare or inside an envelope object, item by item.

Accepted documents: ``[ {...}, {...} ]``, or ``{"meta": {...}, "data": [ {...}, ... ]}`` where the
record array is the first top-level member whose value is an array that is empty or starts with
an object. The other top-level members are kept in :attr:`JsonArrayParser.envelope` (each one
bounded by ``max_item_bytes``); a later array of objects is envelope data too.

The document is never parsed whole. A scanner finds where each item ends and ``orjson`` parses
that item alone. Finding the end is tiered for speed:

1. an object: the first ``}`` where the braces balance is found with ``find``/``count``
   (memchr speed, one step per ``}``) and ``orjson`` parses up to it; if that parses, it is
   the item (a prefix that parses as a complete object ends exactly where the object does),
   so the common case costs a few C calls and one ``loads``;
2. anything else (nested, invalid, cut by the chunk end): a resumable scanner that tracks
   strings, escapes and depth; one regex call skips everything up to the next bracket.
   It keeps its position across feeds, so every byte is scanned once (no quadratic rescans of
   a large item), and it counts depth instead of recursing, so a 100 000-deep item is
   quarantined, not a RecursionError.

A bad item (invalid JSON, not an object, nested deeper than 512) becomes a :class:`BadRow`. A
broken document structure (missing comma, unterminated array, trailing garbage, no record array
in the object) raises :class:`CorruptInputError`: after it nothing can be trusted.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from streamx.codecs.base import BadRow, ParsedItem, Row
from streamx.codecs.jsonl import json_kind
from streamx.codecs.text import BomSkipper, lossy_text
from streamx.exceptions import CorruptInputError, FieldTooLargeError

MAX_DEPTH = 512

_WS = re.compile(rb"[ \t\r\n]*+")
# Everything up to the next bracket: bytes outside strings and complete strings.
_SKIP = re.compile(rb'(?:[^"{}\[\]]++|"(?:[^"\\]++|\\.)*+")*+', re.DOTALL)
_STRING_BODY = re.compile(rb'(?:[^"\\]++|\\.)*+', re.DOTALL)
_SCALAR = re.compile(rb"[^ \t\r\n,\]}]*+")


_WS_BYTES = b" \t\r\n"

# Parser states.
_START = "start"  # before the top-level value
_ITEM_OR_END = "item-or-end"  # just after the '[' of the record array
_ITEM = "item"  # after a ',' in the record array
_IN_ITEM = "in-item"  # inside an array item (the value scanner is active)
_ITEM_SEP = "item-sep"  # after an item: ',' or ']'
_KEY_OR_END = "key-or-end"  # just after the top-level '{'
_KEY = "key"  # after a ',' in the top-level object
_IN_KEY = "in-key"  # inside a member name
_COLON = "colon"
_VALUE = "value"  # before a member value
_IN_VALUE = "in-value"  # inside a member value that is not the record array
_MEMBER_SEP = "member-sep"  # after a member value: ',' or '}'
_DONE = "done"  # after the top-level value: only whitespace may follow

_ARRAY_STATES = (_ITEM_OR_END, _ITEM, _IN_ITEM, _ITEM_SEP)


class JsonArrayParser:
    """Parse a JSON array of records (or an envelope holding one) fed in chunks split anywhere."""

    def __init__(self, *, max_item_bytes: int = 64 * 1024 * 1024) -> None:
        self._max = max_item_bytes
        self._bom = BomSkipper()
        self._buf = bytearray()
        self._pos = 0  # next byte to look at
        self._state = _START
        self._enveloped = False  # the record array sits inside a top-level object
        self._found_records = False
        self._key = ""
        self._line_pos = 0  # self._line is the line number of buffer position self._line_pos
        self._line = 1
        # The resumable value scanner (tier 2).
        self._vstart = -1  # start of the value being scanned, -1 when none
        self._vpos = 0
        self._vdepth = 0
        self._vin_string = False
        self._vtoo_deep = False
        self.envelope: dict[str, Any] = {}
        """Top-level members other than the record array (complete after ``flush``)."""

    def feed(self, data: bytes) -> list[ParsedItem]:
        """Add ``data``; return the items it completed."""
        data = self._bom.feed(data)
        if not data:
            return []
        self._buf += data
        return self._run(final=False)

    def flush(self) -> list[ParsedItem]:
        """Finish; raise :class:`CorruptInputError` unless the document closed properly."""
        self._buf += self._bom.flush()
        out = self._run(final=True)
        if self._state != _DONE:
            raise self._unterminated()
        return out

    # -- driving -------------------------------------------------------------------------

    def _run(self, *, final: bool) -> list[ParsedItem]:
        out: list[ParsedItem] = []
        while self._step(out, final):
            pass
        self._compact()
        return out

    def _step(self, out: list[ParsedItem], final: bool) -> bool:
        """Advance by one token or value; False when more input is needed (or at the end)."""
        state = self._state
        if state in _ARRAY_STATES:
            return self._items(out, final)
        if state in (_IN_KEY, _IN_VALUE):
            return self._finish_member_part(final)
        pos = _end(_WS, self._buf, self._pos)
        self._pos = pos
        if pos >= len(self._buf):
            return False
        byte = self._buf[pos]
        if state == _START:
            return self._start_document(byte)
        if state == _DONE:
            raise self._corrupt("unexpected data after the end of the JSON document", pos)
        if state in (_KEY_OR_END, _KEY):
            return self._member_name(byte, state)
        if state == _COLON:
            if byte != ord(":"):
                raise self._corrupt("expected ':' after a member name", pos)
            self._pos, self._state = pos + 1, _VALUE
            return True
        if state == _VALUE:
            return self._member_value(byte)
        return self._member_separator(byte)

    def _start_document(self, byte: int) -> bool:
        if byte == ord("["):
            self._found_records = True
            self._state = _ITEM_OR_END
        elif byte == ord("{"):
            self._enveloped = True
            self._state = _KEY_OR_END
        else:
            raise self._corrupt(f"expected a JSON array or object, found {chr(byte)!r}", self._pos)
        self._pos += 1
        return True

    # -- the record array ----------------------------------------------------------------

    def _items(self, out: list[ParsedItem], final: bool) -> bool:
        """The record array: items and separators. This is the hot loop, so the common case
        (a flat object whose first ``}`` closes it) is handled inline."""
        buf, state, pos = self._buf, self._state, self._pos
        try:
            while True:
                if state == _IN_ITEM:
                    end = self._scan_value(final)
                    if end < 0:
                        return False
                    self._emit_item(self._vstart, end, out)
                    self._vstart = -1
                    pos, state = end, _ITEM_SEP
                if pos >= len(buf):
                    return False
                byte = buf[pos]
                if byte in _WS_BYTES:
                    pos = _end(_WS, buf, pos)
                    if pos >= len(buf):
                        return False
                    byte = buf[pos]
                if state == _ITEM_SEP:
                    if byte == 0x2C:  # ','
                        pos, state = pos + 1, _ITEM
                        continue
                    if byte != 0x5D:  # ']'
                        raise self._corrupt("expected ',' or ']' after an array item", pos)
                    pos, state = pos + 1, (_MEMBER_SEP if self._enveloped else _DONE)
                    return True
                if byte == 0x7B:  # '{'
                    end = _balanced_end(buf, pos, pos + self._max)
                    if end > 0:
                        try:
                            value = orjson.loads(buf[pos:end])
                        except orjson.JSONDecodeError:
                            pass  # invalid, or braces inside strings: the scanner decides
                        else:
                            out.append(Row(self._line_at(pos), value))
                            pos, state = end, _ITEM_SEP
                            continue
                elif byte == 0x5D and state == _ITEM_OR_END:
                    pos, state = pos + 1, (_MEMBER_SEP if self._enveloped else _DONE)
                    return True
                elif byte in b",]}:":
                    raise self._corrupt(f"expected an array item, found {chr(byte)!r}", pos)
                self._begin_value(pos)
                state = _IN_ITEM
        finally:
            self._state, self._pos = state, pos

    def _emit_item(self, start: int, end: int, out: list[ParsedItem]) -> None:
        line = self._line_at(start)
        if end - start > self._max:
            raise FieldTooLargeError(f"array item exceeds {self._max} bytes", line=line)
        raw = self._buf[start:end]
        if self._vstart == start and self._vtoo_deep:
            out.append(BadRow(line, f"nested deeper than {MAX_DEPTH} levels", lossy_text(raw)))
            return
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            out.append(BadRow(line, f"invalid JSON: {exc}", lossy_text(raw)))
            return
        if type(value) is dict:
            out.append(Row(line, value))
        else:
            reason = f"expected a JSON object, got {json_kind(value)}"
            out.append(BadRow(line, reason, lossy_text(raw)))

    # -- the envelope object -------------------------------------------------------------

    def _member_name(self, byte: int, state: str) -> bool:
        if byte == ord("}") and state == _KEY_OR_END:
            raise self._corrupt("the top-level object holds no array of records", self._pos)
        if byte != ord('"'):
            raise self._corrupt("expected a member name in the top-level object", self._pos)
        self._begin_value(self._pos)
        self._state = _IN_KEY
        return True

    def _member_value(self, byte: int) -> bool:
        pos = self._pos
        if byte == ord("[") and not self._found_records:
            first = _end(_WS, self._buf, pos + 1)
            if first >= len(self._buf):
                return False  # cannot tell yet whether this is the record array
            if self._buf[first] in b"{]":
                self._found_records = True
                self._pos, self._state = pos + 1, _ITEM_OR_END
                return True
        if byte in b",]}:":
            raise self._corrupt(f"expected a value, found {chr(byte)!r}", pos)
        self._begin_value(pos)
        self._state = _IN_VALUE
        return True

    def _finish_member_part(self, final: bool) -> bool:
        """Complete a member name or a (non-record) member value with the value scanner."""
        end = self._scan_value(final)
        if end < 0:
            return False
        start = self._vstart
        if end - start > self._max:
            raise FieldTooLargeError(
                f"top-level member exceeds {self._max} bytes", line=self._line_at(start)
            )
        if self._vtoo_deep:
            raise self._corrupt(f"top-level member nested deeper than {MAX_DEPTH}", start)
        try:
            value = orjson.loads(self._buf[start:end])
        except orjson.JSONDecodeError as exc:
            raise self._corrupt(f"invalid JSON in the top-level object: {exc}", start) from None
        if self._state == _IN_KEY:
            self._key, self._state = str(value), _COLON
        else:
            self.envelope[self._key] = value
            self._state = _MEMBER_SEP
        self._vstart, self._pos = -1, end
        return True

    def _member_separator(self, byte: int) -> bool:
        if byte == ord(","):
            self._pos, self._state = self._pos + 1, _KEY
            return True
        if byte == ord("}"):
            if not self._found_records:
                raise self._corrupt("the top-level object holds no array of records", self._pos)
            self._pos, self._state = self._pos + 1, _DONE
            return True
        raise self._corrupt("expected ',' or '}' in the top-level object", self._pos)

    # -- the resumable value scanner (tier 2) --------------------------------------------

    def _begin_value(self, start: int) -> None:
        self._vstart = self._vpos = start
        self._vdepth = 0
        self._vin_string = False
        self._vtoo_deep = False

    def _scan_value(self, final: bool) -> int:
        """Continue scanning the value at ``_vstart``; its end, or -1 if more input is needed."""
        buf = self._buf
        start = self._vstart
        if self._vpos == start and buf[start] not in b'{["':  # number, literal or junk
            end = _end(_SCALAR, buf, start)
            return end if end < len(buf) or final else self._need_more(start)
        pos, depth = self._vpos, self._vdepth
        if pos == start:  # opening '"', '{' or '['
            pos += 1
            if buf[start] == ord('"'):
                self._vin_string = True
            else:
                depth = 1
        while True:
            if self._vin_string:
                pos = _end(_STRING_BODY, buf, pos)
                if pos >= len(buf) or buf[pos] != ord('"'):  # cut, maybe after a backslash
                    self._vdepth = depth
                    return self._need_more(pos)
                pos += 1
                self._vin_string = False
                if depth == 0:
                    return pos
            pos = _end(_SKIP, buf, pos)  # plain bytes and complete strings, in one call
            if pos >= len(buf):
                self._vdepth = depth
                return self._need_more(pos)
            byte = buf[pos]
            pos += 1
            if byte == ord('"'):  # a string that is not complete yet
                self._vin_string = True
            elif byte in b"[{":
                depth += 1
                if depth > MAX_DEPTH:
                    self._vtoo_deep = True
            else:
                depth -= 1
                if depth == 0:
                    return pos

    def _need_more(self, pos: int) -> int:
        self._vpos = pos
        if len(self._buf) - self._vstart > self._max:
            what = "array item" if self._state == _IN_ITEM else "top-level member"
            raise FieldTooLargeError(
                f"{what} exceeds {self._max} bytes", line=self._line_at(self._vstart)
            )
        return -1

    # -- bookkeeping ---------------------------------------------------------------------

    def _line_at(self, pos: int) -> int:
        """Line number of buffer position ``pos`` (positions are asked for in order)."""
        self._line += self._buf.count(b"\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line

    def _compact(self) -> None:
        """Drop consumed bytes; keep the value being scanned."""
        keep = self._pos if self._vstart < 0 else min(self._pos, self._vstart)
        if keep <= 0:
            return
        self._line_at(keep)
        del self._buf[:keep]
        self._line_pos -= keep
        self._pos -= keep
        if self._vstart >= 0:
            self._vstart -= keep
            self._vpos -= keep

    def _corrupt(self, reason: str, pos: int) -> CorruptInputError:
        return CorruptInputError(reason, line=self._line_at(pos))

    def _unterminated(self) -> CorruptInputError:
        if self._state == _START:
            return CorruptInputError("empty document: no JSON array or object", line=self._line)
        if self._vstart >= 0:
            line = self._line_at(self._vstart)
            what = "an array item" if self._state == _IN_ITEM else "a top-level member"
            return CorruptInputError(
                f"truncated JSON: the input ends inside {what} that starts at line {line}",
                line=line,
            )
        what = "array" if self._state in _ARRAY_STATES else "object"
        return CorruptInputError(
            f"truncated JSON: the input ends before the {what} is closed",
            line=self._line_at(len(self._buf)),
        )


def _end(pattern: re.Pattern[bytes], buf: bytearray, pos: int) -> int:
    found = pattern.match(buf, pos)
    return pos if found is None else found.end()


def _balanced_end(buf: bytearray, pos: int, limit: int) -> int:
    """Tier 1 boundary guess for the object at ``pos``: just after the first ``}`` where the
    braces before it balance (-1 if none before ``limit``). Exact unless a string holds a
    brace; the caller verifies it by parsing (a prefix that parses as a complete object ends
    exactly where the object does)."""
    depth, start = 0, pos
    while True:
        close = buf.find(b"}", start, limit)
        if close < 0:
            return -1
        depth += buf.count(b"{", start, close) - 1
        if depth <= 0:
            return close + 1
        start = close + 1
