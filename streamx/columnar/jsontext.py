"""Normalized columns -> JSON text, byte for byte what ``orjson.dumps`` gives for the record.

orjson's output rules, reproduced with string kernels: keys in insertion order, no spaces, and
inside strings ``\\"`` and ``\\\\``, the short escapes ``\\b \\t \\n \\f \\r``, every other control
character as ``\\u00XX`` (lower-case hex), and everything else (DEL, non-ASCII) as UTF-8 as is.
Each column is only escaped for the characters its bytes actually contain (a ``bytes``
membership test is a memchr), so most columns cost nothing. The rare control characters are
only looked for when the block's raw bytes contain one (``rare``).

A record is one row of pieces joined by :func:`~streamx.columnar.kernels.join`: constant text
(the source/stream/... prefix, keys, punctuation) and columns. A field absent in some rows is
one piece (key and value together) that is empty in those rows.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from streamx.columnar.kernels import NULL, STRING, Pieces, join, or_empty, used_bytes
from streamx.columnar.normalize import Attribute, Normalized
from streamx.normalize.base import ExportContext

_COMMON: Final = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
#: Control characters other than TAB, LF and CR, with orjson's escape for each.
RARE: Final = tuple(
    (chr(code), {8: "\\b", 12: "\\f"}.get(code, f"\\u{code:04x}"))
    for code in range(0x20)
    if code not in (9, 10, 13)
)
RARE_BYTES: Final = tuple(char.encode() for char, _ in RARE)


def has_rare(data: bytes) -> bool:
    """Whether ``data`` holds a control character that needs a ``\\b``/``\\f``/``\\u`` escape."""
    return any(char in data for char in RARE_BYTES)


def escape(values: Any, rare: bool) -> Any:
    """The JSON string body of each value (without the quotes)."""
    data = used_bytes(values)
    for char, replacement in _COMMON + (RARE if rare else ()):
        if char.encode() in data:
            values = pc.replace_substring(values, char, replacement)
    return values


def dumps(value: str) -> str:
    """A constant as JSON text (orjson's escaping, for keys and constant values)."""
    return orjson.dumps(value).decode()


def prefix(ctx: ExportContext, kind: str) -> str:
    """Everything before the record_id value: source, stream, kind, account, export_id."""
    head = {
        "source": ctx.source,
        "stream": ctx.stream,
        "kind": kind,
        "account": ctx.account,
        "export_id": ctx.export_id,
    }
    return orjson.dumps(head).decode()[:-1] + ',"record_id":'


def _string(pieces: Pieces, values: Any, rare: bool) -> None:
    pieces.text('"')
    pieces.column(escape(values, rare))
    pieces.text('"')


def _member(pieces: Pieces, lead: str, values: Any, present: Any, rare: bool) -> None:
    """``lead`` (comma, key, colon) and a string value; left out of rows where absent."""
    if present is not None:
        values = pc.if_else(present, values, NULL)
    if values.null_count == 0:
        pieces.text(lead)
        _string(pieces, values, rare)
    elif values.null_count < len(values):
        pieces.column(or_empty(join([lead + '"', escape(values, rare), '"'])))


def _attributes(pieces: Pieces, attributes: list[Attribute], rare: bool) -> None:
    """The ``attributes`` object, keys in order, each present only where it is."""
    if not attributes:
        pieces.text("{}")
        return
    if attributes[0].present is None:  # the first key is everywhere: commas are static
        pieces.text("{")
        for index, attribute in enumerate(attributes):
            lead = ("," if index else "") + dumps(attribute.key) + ":"
            _member(pieces, lead, attribute.values, attribute.present, rare)
        pieces.text("}")
        return
    inner = Pieces()
    for attribute in attributes:
        lead = "," + dumps(attribute.key) + ":"
        _member(inner, lead, attribute.values, attribute.present, rare)
    body = join(inner.done())
    pieces.text("{")
    pieces.column(pc.binary_replace_slice(body, 0, 1, ""))  # the first key's leading comma
    pieces.text("}")


def attributes_json(norm: Normalized, rare: bool) -> Any:
    """The ``attributes`` object of each record as JSON text (Parquet and CSV output)."""
    pieces = Pieces()
    _attributes(pieces, norm.attributes, rare)
    parts = pieces.done()
    if len(parts) == 1 and isinstance(parts[0], str):
        return pa.repeat(pa.scalar(parts[0], STRING), norm.rows)
    return join(parts)


def json_lines(norm: Normalized, ctx: ExportContext, rare: bool) -> Any:
    """One JSON line (with its ``\\n``) per record, as ``orjson.dumps(record) + b"\\n"``."""
    pieces = Pieces()
    pieces.text(prefix(ctx, norm.kind))
    _string(pieces, norm.record_id, rare)
    for name, value in norm.named:
        lead = "," + dumps(name) + ":"
        if isinstance(value, str):
            pieces.text(lead + dumps(value))
        else:
            _member(pieces, lead, value, None, rare)
    pieces.text(',"attributes":')
    _attributes(pieces, norm.attributes, rare)
    pieces.text("}\n")
    return join(pieces.done())
