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
_TRUE: Final = pa.scalar("true", STRING)
_FALSE: Final = pa.scalar("false", STRING)
_WHOLE: Final = r"^-?[0-9]+$"
_PLAIN: Final = r"^-?[0-9]+\.[0-9]+$"
_TINY: Final = r"^-?0\.0000"


def has_rare(data: bytes, start: int, stop: int) -> bool:
    """Whether ``data[start:stop]`` holds a control character that needs a ``\\b``/``\\f``/
    ``\\u`` escape (29 memchr scans: 0.16 ms per 512 KiB; RE2's character class takes 0.8)."""
    return any(data.find(char, start, stop) >= 0 for char in RARE_BYTES)


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


def _member(
    pieces: Pieces, lead: str, values: Any, present: Any, rare: bool, text: bool = False
) -> None:
    """``lead`` (comma, key, colon) and a string value (``text``: values that are JSON text
    already); left out of rows where absent."""
    if present is not None:
        values = pc.if_else(present, values, NULL)
    if values.null_count == 0:
        pieces.text(lead)
        if text:
            pieces.column(values)
        else:
            _string(pieces, values, rare)
    elif values.null_count < len(values):
        parts = [lead, values] if text else [lead + '"', escape(values, rare), '"']
        pieces.column(or_empty(join(parts)))


def _attributes(pieces: Pieces, attributes: list[Attribute], rare: bool) -> None:
    """The ``attributes`` object, keys in order, each present only where it is."""
    if not attributes:
        pieces.text("{}")
        return
    first = attributes[0]
    if first.present is None and first.values.null_count == 0:  # in every row: static commas
        pieces.text("{")
        for index, attribute in enumerate(attributes):
            lead = ("," if index else "") + dumps(attribute.key) + ":"
            _member(pieces, lead, attribute.values, attribute.present, rare, attribute.text)
        pieces.text("}")
        return
    inner = Pieces()
    for attribute in attributes:
        lead = "," + dumps(attribute.key) + ":"
        _member(inner, lead, attribute.values, attribute.present, rare, attribute.text)
    pieces.text("{")
    pieces.column(drop_lead(join(inner.done())))
    pieces.text("}")


def drop_lead(body: Any) -> Any:
    """Members that each start with a comma, without the first one's comma."""
    return pc.binary_replace_slice(body, 0, 1, "")


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


def value_text(values: Any, rare: bool, prefix: str = "") -> Any | None:
    """``prefix`` and each value as orjson writes it (null where absent), for the types a JSON
    lines block is read as (:mod:`streamx.columnar.jsonblock`); ``None`` for other types."""
    kind = values.type
    if pa.types.is_string(kind):
        return join([prefix + '"', escape(values, rare), '"'])
    if pa.types.is_struct(kind):
        text = object_text(values, rare)
    elif pa.types.is_int64(kind):
        text = pc.cast(values, STRING)
    elif pa.types.is_boolean(kind):
        text = pc.if_else(values, _TRUE, _FALSE)
    elif pa.types.is_float64(kind):
        text = float_text(values)
    else:
        return None
    return join([prefix, text]) if prefix and text is not None else text


def object_text(values: Any, rare: bool) -> Any | None:
    """JSON objects from a struct column: members in field order, absent (null) members left
    out, null where the struct itself is null; ``None`` for a member of another type."""
    members = []
    for index, field in enumerate(values.type):
        lead = "," + dumps(field.name) + ":"
        text = value_text(pc.struct_field(values, [index]), rare, lead)
        if text is None:
            return None
        members.append(or_empty(text))
    if not members:
        whole = pa.repeat(pa.scalar("{}", STRING), len(values))
    else:
        body = join(members) if len(members) > 1 else members[0]
        whole = join(["{", drop_lead(body), "}"])
    return pc.if_else(values.is_valid(), whole, NULL) if values.null_count else whole


def float_text(values: Any) -> Any | None:
    """Floats as orjson writes them, or ``None`` when some value may be written otherwise.

    Arrow's cast and orjson both write the shortest text that reads back as the same float,
    but not always in the same notation: Arrow writes ``1`` for ``1.0`` (the ``.0`` is added
    here) and each has its own rules for exponents. Plain decimals with a fraction, from
    0.0001 on, are written alike (checked on a million floats of every magnitude, including
    random bit patterns); other values (exponents, tiny fractions) return ``None``.
    """
    text = pc.cast(values, STRING)
    text = pc.if_else(
        pc.match_substring_regex(text, _WHOLE), pc.binary_join_element_wise(text, ".0", ""), text
    )
    plain = pc.and_(
        pc.match_substring_regex(text, _PLAIN), pc.invert(pc.match_substring_regex(text, _TINY))
    )
    return text if plain.false_count == 0 else None
