"""The record encoder protocols and the format registry.

A new output format is one module with an encoder class plus one line in :data:`ENCODERS`.
Two kinds exist, because a columnar file cannot be cut into per-record byte strings:

* :class:`Encoder` (line formats: JSON lines, CSV) turns a batch of records into one ``bytes`` per
  record (the publisher needs record boundaries to cut parts at an exact record or byte count)
  and frames each part with :meth:`Encoder.header` / :meth:`Encoder.footer`; the publisher
  compresses the bytes (gzip, zstd). It holds no per-part state, so one instance serves a whole
  export.
* :class:`BatchEncoder` (Parquet) turns records into Arrow record batches and opens one
  :class:`BatchPart` per part, which owns the file structure and its internal compression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeGuard

from streamx.exceptions import ConfigError
from streamx.manifest import PartInfo
from streamx.sinks.base import PartUpload
from streamx.writers.compression import get_compression
from streamx.writers.csv import CsvEncoder
from streamx.writers.jsonl import JsonLinesEncoder
from streamx.writers.parquet import ParquetEncoder


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


class BatchPart(Protocol):
    """One part of a columnar format being written into its upload."""

    relpath: str
    upload: PartUpload
    records: int
    raw_bytes: int

    async def write_batch(self, batch: Any) -> None:
        """Append a ``pyarrow.RecordBatch`` of schema v1."""
        ...

    async def seal(self) -> PartInfo:
        """End the file and finish the upload (durable, not yet visible)."""
        ...


class BatchEncoder(Protocol):
    """Records (or Arrow batches) in, one self-contained columnar file per part."""

    extension: ClassVar[str]

    def codec(self, compression: str | None, level: int | None) -> str:
        """Check the format's own compression name and level; the resolved name."""
        ...

    def to_batch(self, records: Sequence[Mapping[str, Any]]) -> Any:
        """Records -> one ``pyarrow.RecordBatch`` of schema v1."""
        ...

    def open_part(
        self, relpath: str, upload: PartUpload, compression: str | None, level: int | None
    ) -> BatchPart:
        """Start a part writing into ``upload``."""
        ...


ENCODERS: dict[str, type[Encoder] | type[BatchEncoder]] = {
    "jsonl": JsonLinesEncoder,
    "csv": CsvEncoder,
    "parquet": ParquetEncoder,
}


def is_batch_encoder(encoder: Encoder | BatchEncoder) -> TypeGuard[BatchEncoder]:
    """True for a columnar format (it opens parts itself instead of encoding lines)."""
    return hasattr(encoder, "open_part")


def check_output(name: str, compression: str | None, level: int | None) -> str:
    """Check a format with its compression and level (ConfigError); the compression used.

    ``compression`` ``None`` is the format's default: gzip for line formats, zstd for Parquet.
    """
    encoder = get_encoder(name)
    if is_batch_encoder(encoder):
        return encoder.codec(compression, level)
    method = compression or "gzip"
    get_compression(method).new(level)
    return method


def get_encoder(name: str) -> Encoder | BatchEncoder:
    """A new encoder for the format ``name``; :class:`ConfigError` names the known formats."""
    try:
        cls = ENCODERS[name]
    except KeyError:
        known = ", ".join(sorted(ENCODERS))
        raise ConfigError(f"unknown output format {name!r} (known: {known})") from None
    return cls()
