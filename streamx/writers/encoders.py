"""The record encoder protocol and the format registry.

A new output format is one module with an encoder class plus one line in :data:`ENCODERS`.
Encoders turn a batch of records into one ``bytes`` per record (the publisher needs record
boundaries to cut parts at an exact record or byte count) and frame each part with
:meth:`Encoder.header` / :meth:`Encoder.footer`. They hold no per-part state, so one instance
serves a whole export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from streamx.exceptions import ConfigError
from streamx.writers.csv import CsvEncoder
from streamx.writers.jsonl import JsonLinesEncoder


class Encoder(Protocol):
    """Records in, bytes out; one line-oriented output format."""

    #: File name extension without the dot and without the compression suffix (``jsonl``).
    extension: ClassVar[str]

    def header(self) -> bytes:
        """Bytes that start every part (CSV header row; empty for JSON lines)."""
        ...

    def footer(self) -> bytes:
        """Bytes that end every part (empty for line formats)."""
        ...

    def encode(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """Encode a batch: element ``i`` is the complete encoding of ``records[i]``."""
        ...


ENCODERS: dict[str, type[Encoder]] = {
    "jsonl": JsonLinesEncoder,
    "csv": CsvEncoder,
}


def get_encoder(name: str) -> Encoder:
    """A new encoder for the format ``name``; :class:`ConfigError` names the known formats."""
    try:
        cls = ENCODERS[name]
    except KeyError:
        known = ", ".join(sorted(ENCODERS))
        raise ConfigError(f"unknown output format {name!r} (known: {known})") from None
    return cls()
