"""One block of CSV records -> encoded output, in a worker thread.

pyarrow's CSV reader parses the block (all columns as strings, quoted newlines allowed, empty
lines skipped, UTF-8 checked), the vector plan normalizes it, and the publisher's format
encodes it. ``None`` means the block must go to the row parser instead: pyarrow refused it (a
row with the wrong number of fields, invalid UTF-8) or a row would be quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from streamx.bytes_like import Bytes
from streamx.columnar.arrowbatch import record_batch
from streamx.columnar.csvlanes import Block
from streamx.columnar.csvtext import csv_lines
from streamx.columnar.jsontext import has_rare, json_lines
from streamx.columnar.kernels import data_of, record_ends
from streamx.columnar.normalize import normalize
from streamx.columnar.plans import VectorPlan
from streamx.normalize.base import ExportContext

#: pyarrow parses a block in pieces of this size, on its own threads.
_READ_BLOCK = 512 * 1024


@dataclass(slots=True)
class Encoded:
    """A block's records in the output format: ``data``/``ends`` (lines) or ``batch`` (Arrow)."""

    rows: int
    data: Bytes = b""
    ends: Any = ()
    batch: Any = None


def read_block(data: Bytes, names: list[str], delimiter: str) -> Any | None:
    """Parse whole CSV records into a table of string columns; ``None`` if pyarrow refuses."""
    read = pacsv.ReadOptions(column_names=names, block_size=_READ_BLOCK, use_threads=False)
    parse = pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=True,
        ignore_empty_lines=True,
    )
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=True,
    )
    try:
        return pacsv.read_csv(
            pa.BufferReader(data), read_options=read, parse_options=parse, convert_options=convert
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def encode_block(
    block: Block, names: list[str], delimiter: str, plan: VectorPlan, ctx: ExportContext, fmt: str
) -> Encoded | None:
    """Parse, normalize and encode one block (``fmt``: jsonl, csv or parquet)."""
    table = read_block(block.data, names, delimiter)
    if table is None:
        return None
    try:
        norm = normalize(table, plan, ctx)
    except pa.ArrowException:  # a value no kernel expected: the row path is the reference
        return None
    if norm is None:
        return None
    rare = has_rare(block.source, block.start, block.stop)
    if fmt == "parquet":
        return Encoded(norm.rows, batch=record_batch(norm, ctx, rare))
    lines = (csv_lines if fmt == "csv" else json_lines)(norm, ctx, rare)
    return Encoded(norm.rows, data=data_of(lines), ends=record_ends(lines))
