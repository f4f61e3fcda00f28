"""Encode generated rows into vendor-style export files, as a stream of byte chunks.

Used by the demo, the simulator and the benchmarks to produce CSV, JSON lines or JSON array files
(optionally gzipped) of any size with constant memory.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import orjson

from streamx.testing.data import flatten

FileFormat = Literal["csv", "jsonl", "json_array"]
_BATCH_ROWS = 2000


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def csv_view(row: dict[str, Any], columns: Sequence[str]) -> dict[str, str]:
    """What a CSV file can say about ``row``: every column as text, absent values as "".

    Raises ValueError for a key with no column, so an encoder never drops data silently.
    """
    flat = flatten(row)
    unknown = flat.keys() - set(columns)
    if unknown:
        raise ValueError(f"row has keys without a CSV column: {sorted(unknown)}")
    return {name: _csv_value(flat.get(name)) for name in columns}


def csv_chunks(
    rows: Iterable[dict[str, Any]], *, columns: Sequence[str] | None = None, header: bool = True
) -> Iterator[bytes]:
    """CSV with nested keys flattened (``properties.url``); columns from the first row if unset."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    names: Sequence[str] | None = columns
    for index, row in enumerate(rows, 1):
        if names is None:
            names = list(flatten(row))
        if header and index == 1:
            writer.writerow(names)
        writer.writerow(csv_view(row, names).values())
        if index % _BATCH_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def jsonl_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON object per line, as Cordial's JSON exports are."""
    batch: list[bytes] = []
    for row in rows:
        batch.append(orjson.dumps(row))
        if len(batch) == _BATCH_ROWS:
            yield b"\n".join(batch) + b"\n"
            batch.clear()
    if batch:
        yield b"\n".join(batch) + b"\n"


def json_array_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """A pretty-ish JSON array, one item per line, streamed."""
    yield b"[\n"
    separator = b""
    for row in rows:
        yield separator + orjson.dumps(row)
        separator = b",\n"
    yield b"\n]\n"


def encode_chunks(
    rows: Iterable[dict[str, Any]], fmt: FileFormat, **csv_options: Any
) -> Iterator[bytes]:
    """Rows to file bytes in ``fmt``."""
    if fmt == "csv":
        return csv_chunks(rows, **csv_options)
    if fmt == "jsonl":
        return jsonl_chunks(rows)
    return json_array_chunks(rows)


def gzip_chunks(chunks: Iterable[bytes], *, level: int = 6) -> Iterator[bytes]:
    """Gzip a stream of chunks into one standard gzip member."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def write_file(path: str, chunks: Iterable[bytes], *, compress: bool = False) -> int:
    """Write chunks to ``path`` (gzipped when asked); returns bytes written."""
    written = 0
    with open(path, "wb") as handle:
        for chunk in gzip_chunks(chunks) if compress else chunks:
            handle.write(chunk)
            written += len(chunk)
    return written


__all__ = [
    "csv_chunks",
    "encode_chunks",
    "gzip_chunks",
    "json_array_chunks",
    "jsonl_chunks",
    "write_file",
]
