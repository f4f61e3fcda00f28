"""One block of whole JSON lines -> encoded output, when Arrow can reproduce the row path.

``pyarrow.json`` parses a block into columns, but it cannot tell an explicit ``null`` from a
missing key, keeps no row's own key order, decodes escapes and types numbers: on its own, its
table does not say what each line held. So every line is written back from the table as
orjson would write the parsed row (keys in the block's order, absent members of nested objects
left out, strings escaped the orjson way: :func:`~streamx.columnar.jsontext.value_text`) and
compared with the line itself. Only a block whose every line comes back byte for byte is
normalized and encoded here: its lines are then exactly the rows the table holds, in canonical
form, so each value's JSON text is what ``orjson.dumps`` gives the row path. Any other block
(a null or missing key, another key order, a float, an escape orjson writes differently, a
blank or CRLF line, a byte order mark, a value of another type than the block's first rows)
returns ``None`` and takes the row path: the result is the row path's, byte for byte, always.

Columns are read as text: strings stay strings (no timestamp inference), objects become
structs of the same, integers, floats and booleans keep their type (their text is checked like
the rest; :func:`~streamx.columnar.jsontext.float_text`); anything else (arrays) is left to the
row path. The schema seen last is tried
first, so a file's blocks are parsed once each; a block it does not fit is inferred afresh.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from streamx.bytes_like import Bytes
from streamx.codecs.jsonl import MAX_ROW_DEPTH
from streamx.columnar.arrowbatch import record_batch
from streamx.columnar.csvblock import Encoded
from streamx.columnar.csvtext import csv_lines
from streamx.columnar.jsontext import drop_lead, escape, json_lines, value_text
from streamx.columnar.kernels import (
    STRING,
    Pieces,
    all_true,
    as_binary_array,
    data_of,
    join,
    or_empty,
    record_ends,
)
from streamx.columnar.normalize import normalize_columns
from streamx.columnar.plans import vector_plan
from streamx.normalize.base import ExportContext

#: Escapes whose decoded characters need orjson's rare escapes (``\\b``, ``\\f``, ``\\u00XX``),
#: as a regular expression: Arrow's RE2 scans a block in 0.05 ms without the GIL, where three
#: ``bytes`` membership tests took 3 ms per MiB of JSON rich in backslashes (two-byte needles
#: are not a memchr), a quarter of the time the JSON lines fast path held the GIL.
_RARE_ESCAPES: Final = r"\\[ubf]"
#: Some line with more than MAX_ROW_DEPTH openers (``[^\n...]``: the count stays in one line).
_DEEP: Final = rf"(?:[^\n{{\[]*[{{\[]){{{MAX_ROW_DEPTH + 1}}}"
_last_schema: Any = None


def encode_json_block(data: Bytes, ctx: ExportContext, fmt: str) -> Encoded | None:
    """Parse, check, normalize and encode whole JSON lines (``fmt``: jsonl, csv or parquet);
    ``None``: the row path must take the block."""
    whole = as_binary_array(data)
    lines = _lines(whole, data[-1:] == b"\n")
    if lines is None or _too_deep(whole):
        return None  # possibly deeper than Arrow's recursive parser survives: the row parser
    rare = pc.any(pc.match_substring_regex(whole, _RARE_ESCAPES)).as_py() is True
    checked = _checked_read(data, lines, rare, fresh=False)
    if checked is None:
        return None
    columns, texts = checked
    plan = vector_plan(ctx, tuple(columns))
    if plan is None:
        return None
    norm = normalize_columns(columns, texts, plan, ctx, lambda mask: _rows(lines, mask))
    if norm is None:
        return None
    if fmt == "parquet":
        return Encoded(norm.rows, batch=record_batch(norm, ctx, rare))
    out = (csv_lines if fmt == "csv" else json_lines)(norm, ctx, rare)
    return Encoded(norm.rows, data=data_of(out), ends=record_ends(out))


def _checked_read(
    data: Bytes, lines: Any, rare: bool, *, fresh: bool
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The block's columns and the JSON text of its non-string ones, if every line is its
    row as orjson writes it. A block the last file's schema reads but does not reproduce
    (another key order) is read once more with a schema of its own."""
    read = read_lines(data, lines, fresh=fresh)
    if read is None:
        return None
    table, cached = read
    if table.num_rows != len(lines) or table.num_columns == 0:  # blank lines: Arrow skips them
        return None
    columns = {name: table.column(name).chunk(0) for name in table.column_names}
    texts = _canonical(columns, lines, rare)
    if texts is None and cached and not fresh:
        return _checked_read(data, lines, rare, fresh=True)
    return None if texts is None else (columns, texts)


def read_lines(data: Bytes, lines: Any, *, fresh: bool = False) -> tuple[Any, bool] | None:
    """The block as one table of text-typed columns and whether the schema was the one seen
    last (``fresh``: infer one), or ``None`` if Arrow refuses the block."""
    global _last_schema
    schema = _last_schema
    if schema is not None and not fresh:
        table = _read(data, schema)
        if table is not None:
            return table, True
    inferred = _read(data, None)
    schema = None if inferred is None else _text_schema(_in_line_order(inferred, lines))
    if schema is None:
        return None
    _last_schema = schema
    table = _read(data, schema)
    return None if table is None else (table, False)


def _in_line_order(table: Any, lines: Any) -> Any:
    """The table's schema with its columns in the key order of a line that has every key.

    Arrow orders columns as it first meets them, so a block whose first row lacks some keys
    would put them last, and the rows that have them would not come back as written."""
    if len(lines) != table.num_rows:
        return table.schema
    complete = None
    for column in table.columns:
        valid = column.is_valid()
        complete = valid if complete is None else pc.and_(complete, valid)
    index = pc.index(complete, True).as_py() if complete is not None else -1
    if index < 0:
        return table.schema
    try:
        row = orjson.loads(lines[index].as_py())
    except orjson.JSONDecodeError:
        return table.schema
    if not isinstance(row, dict) or sorted(row) != sorted(table.column_names):
        return table.schema
    return pa.schema([table.schema.field(key) for key in row])


def _read(data: Bytes, schema: Any) -> Any | None:
    read = pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
    parse = pajson.ParseOptions(
        explicit_schema=schema,
        unexpected_field_behavior="infer" if schema is None else "error",
    )
    try:
        table = pajson.read_json(pa.BufferReader(data), read_options=read, parse_options=parse)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return table.combine_chunks()


def _text_schema(schema: Any) -> Any | None:
    """``schema`` with every string-like leaf (Arrow infers timestamps) as a string."""
    fields = [_text_field(field, 1) for field in schema]
    return None if any(field is None for field in fields) else pa.schema(fields)


def _text_field(field: Any, depth: int) -> Any | None:
    kind = field.type
    if depth >= MAX_ROW_DEPTH:
        return None  # the row parser quarantines rows nested deeper than it allows
    if pa.types.is_struct(kind):
        members = [_text_field(member, depth + 1) for member in kind]
        if any(member is None for member in members):
            return None
        return pa.field(field.name, pa.struct(members))
    if pa.types.is_timestamp(kind) or pa.types.is_string(kind) or pa.types.is_null(kind):
        return pa.field(field.name, STRING)
    if pa.types.is_int64(kind) or pa.types.is_boolean(kind) or pa.types.is_float64(kind):
        return field
    return None


def _lines(whole: Any, ends_in_newline: bool) -> Any | None:
    """The lines (without their ``\\n``) of a block given as a one-value binary array, or
    ``None`` if it is not valid UTF-8 (Arrow's JSON reader takes invalid bytes in strings as
    they are; the row parser quarantines them)."""
    lines = pc.list_flatten(pc.split_pattern(whole, b"\n"))
    try:
        lines.cast(STRING)  # checks every byte
    except pa.ArrowInvalid:
        return None
    return lines.slice(0, len(lines) - 1) if ends_in_newline else lines


def _too_deep(whole: Any) -> bool:
    """Whether a line holds more than ``MAX_ROW_DEPTH`` of ``{`` and ``[``, a bound on its
    nesting depth, checked before Arrow parses a block (its parser recurses, and a line nested
    100,000 deep would crash the process; the row parser quarantines rows deeper than
    ``MAX_ROW_DEPTH``). One RE2 pass over the block: 1.5 ms per 768 KiB, where counting both
    characters per line (``count_substring``) took 2.7 ms, a tenth of the path's CPU."""
    return bool(pc.match_substring_regex(whole, _DEEP)[0].as_py())


def _canonical(columns: dict[str, Any], lines: Any, rare: bool) -> dict[str, Any] | None:
    """The JSON text of each non-string column, if every line is the table's row written as
    orjson writes it (a null column value: the key is absent from that line); ``None``
    otherwise."""
    texts: dict[str, Any] = {}
    body = Pieces()
    # When the first key is in every line, commas are static; else each member brings its
    # own and the first one's is dropped.
    static = next(iter(columns.values())).null_count == 0
    for index, (name, values) in enumerate(columns.items()):
        lead = ("{" if index == 0 else ",") if static else ","
        key = lead + orjson.dumps(name).decode() + ":"
        if pa.types.is_string(values.type) and values.null_count == 0:
            body.text(key + '"')
            body.column(escape(values, rare))
            body.text('"')
            continue
        text = value_text(values, rare)
        if text is None:
            return None
        if not pa.types.is_string(values.type):
            texts[name] = text
        if text.null_count:
            body.column(or_empty(join([key, text])))
        else:
            body.text(key)
            body.column(text)
    if static:
        body.text("}")
        written = join(body.done())
    else:
        written = join(["{", drop_lead(join(body.done())), "}"])
    return texts if all_true(pc.equal(written.cast(pa.binary()), lines)) else None


def _rows(lines: Any, mask: Any) -> list[dict[str, Any]]:
    """The rows a mask selects, parsed as the row path parses them."""
    return [orjson.loads(line) for line in lines.filter(mask).to_pylist()]
