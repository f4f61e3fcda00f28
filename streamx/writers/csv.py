"""CSV encoder: a header row of :data:`streamx.records.FIELDS` once per part, one row per record.

A flat file has no room for nested values, so ``attributes`` (and any other dict, list or bool)
is written as compact JSON text in its column; numbers as ``str``; ``None`` or a missing key as an
empty cell. Rows end in CRLF as RFC 4180 says; it also makes the stdlib writer quote a field
holding a lone ``\r``, which it leaves bare with a ``\n`` terminator (and readers then split).
A key outside the schema is an error rather than a silently dropped column: the
normalizers promise losslessness, and this writer must not be where data disappears.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from streamx.exceptions import StreamxError
from streamx.records import FIELDS
from streamx.writers.jsonl import json_bytes

_FIELD_SET = frozenset(FIELDS)
_JSON_TYPES = (dict, list, tuple, bool)


class CsvEncoder:
    """Encodes records as RFC 4180 CSV (UTF-8, CRLF line ends, minimal quoting)."""

    extension: ClassVar[str] = "csv"

    def header(self) -> bytes:
        return _encode_rows([list[str | None](FIELDS)])[0]

    def footer(self) -> bytes:
        return b""

    def encode(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """One encoded row per record, so the publisher can cut parts at record boundaries."""
        return _encode_rows([_row(record) for record in records])


class _Lines:
    """A write target that keeps each row ``csv.writer`` produces as its own string."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)


def _encode_rows(rows: list[list[str | None]]) -> list[bytes]:
    target = _Lines()
    csv.writer(target, lineterminator="\r\n").writerows(rows)
    return [line.encode("utf-8") for line in target.lines]


def _row(record: Mapping[str, Any]) -> list[str | None]:
    if not record.keys() <= _FIELD_SET:
        unknown = sorted(str(key) for key in record.keys() - _FIELD_SET)
        raise StreamxError(f"record has keys outside schema v1: {', '.join(unknown)}")
    # csv.writer itself writes None as an empty cell and str as is; only the rest needs work.
    return [
        value if value is None or value.__class__ is str else _cell(value)
        for value in map(record.get, FIELDS)
    ]


def _cell(value: Any) -> str:
    if isinstance(value, _JSON_TYPES):
        return json_bytes(value).decode("utf-8")
    return str(value)
