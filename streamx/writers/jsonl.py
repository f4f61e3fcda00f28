"""JSON lines encoder: one ``orjson.dumps(record)`` plus ``\\n`` per record.

Records are built by the normalizers with their keys already in :data:`streamx.records.FIELDS`
order, so they are dumped as they are: re-ordering every record would cost about as much again as
the serialization itself, for no change in output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson

_OPTIONS = orjson.OPT_APPEND_NEWLINE


class JsonLinesEncoder:
    """Encodes records as JSON lines (UTF-8, ``\\n`` terminated, no header or footer)."""

    extension: ClassVar[str] = "jsonl"

    def header(self) -> bytes:
        return b""

    def footer(self) -> bytes:
        return b""

    def encode(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """One encoded line per record, so the publisher can cut parts at record boundaries."""
        try:
            return [orjson.dumps(record, option=_OPTIONS) for record in records]
        except orjson.JSONEncodeError:
            return [_dump_one(record) for record in records]


def _dump_one(record: Mapping[str, Any]) -> bytes:
    return json_bytes(record, option=_OPTIONS)


def json_bytes(value: Any, *, option: int = 0) -> bytes:
    """``orjson.dumps(value)``, falling back to the stdlib for what orjson refuses.

    orjson rejects integers wider than 64 bits and nesting deeper than 255 levels; both are valid
    JSON a source file may hold (the parsers accept items up to 512 levels deep), so the standard
    library writes them rather than failing the whole export.
    """
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        newline = "\n" if option & orjson.OPT_APPEND_NEWLINE else ""
        return (text + newline).encode("utf-8")
