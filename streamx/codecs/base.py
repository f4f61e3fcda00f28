"""Shared shapes of the incremental codecs.

Codecs follow the feed/flush pattern (as httpx's decoders do): ``feed(chunk)`` takes bytes split
at *any* position and returns whatever is complete so far; ``flush()`` is called once at end of
input, returns the rest, and raises :class:`~streamx.exceptions.CorruptInputError` if the input
stopped in the middle of something (a gzip member, a quoted CSV field, a JSON array).
Nothing here ever holds more than one incomplete item plus one chunk in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(slots=True)
class Row:
    """One parsed source row: its fields and the (1-based) line it started on."""

    line: int
    data: dict[str, Any]


@dataclass(slots=True)
class BadRow:
    """A row that could not be parsed; it is quarantined, not dropped."""

    line: int
    reason: str
    raw: str


ParsedItem = Row | BadRow


def raw_of(item: Row | BadRow) -> str:
    """The text quarantined for an item: a bad row's own text, or a parsed row as JSON."""
    if isinstance(item, BadRow):
        return item.raw
    return orjson.dumps(item.data, default=str).decode()


class ByteDecoder(Protocol):
    """Bytes in, bytes out (decompression)."""

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class RowParser(Protocol):
    """Bytes in, rows out (CSV, JSON lines, JSON array)."""

    def feed(self, data: bytes) -> list[ParsedItem]: ...

    def flush(self) -> list[ParsedItem]: ...
