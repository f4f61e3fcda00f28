"""Normalized columns -> a ``RecordBatch`` of the Parquet schema, equal to what
:func:`streamx.writers.parquet.records_to_batch` builds from the same records.

Constants become repeated columns (Parquet's dictionary encoding stores them once per column
chunk), ``occurred_at`` is parsed from its output text to ``timestamp[ms, UTC]`` by the same
cast the row path uses, absent fields are nulls, and ``attributes`` is the JSON text of
:func:`~streamx.columnar.jsontext.attributes_json`.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from streamx.columnar.jsontext import attributes_json
from streamx.columnar.normalize import Normalized
from streamx.normalize.base import ExportContext
from streamx.writers.parquet import arrow_schema


def record_batch(norm: Normalized, ctx: ExportContext, rare: bool) -> Any:
    """The block's records as one batch of :func:`~streamx.writers.parquet.arrow_schema`."""
    schema = arrow_schema()
    rows = norm.rows
    values: dict[str, Any] = {
        "source": ctx.source,
        "stream": ctx.stream,
        "kind": norm.kind,
        "account": ctx.account,
        "export_id": ctx.export_id,
        "record_id": norm.record_id,
        **dict(norm.named),
        "attributes": attributes_json(norm, rare),
    }
    columns = []
    for field in schema:
        value = values.get(field.name)
        if value is None:
            columns.append(pa.nulls(rows, field.type))
        elif isinstance(value, str):
            columns.append(pa.repeat(pa.scalar(value, pa.string()), rows).cast(field.type))
        else:
            columns.append(value.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
