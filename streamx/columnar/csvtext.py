"""Normalized columns -> CSV lines, byte for byte what :class:`~streamx.writers.csv.CsvEncoder`
writes for the records.

That encoder is the stdlib ``csv.writer`` with minimal quoting and CRLF line ends: a cell is
quoted when it holds the delimiter, a quote, CR or LF, and quotes inside are doubled; an absent
field is an empty cell; ``attributes`` is its compact JSON text. The constant columns (source,
stream, kind, account, export_id) are encoded once by ``csv.writer`` itself.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final

import pyarrow.compute as pc

from streamx.columnar.jsontext import attributes_json
from streamx.columnar.kernels import Pieces, join, or_empty, used_bytes
from streamx.columnar.normalize import Normalized
from streamx.normalize.base import ExportContext
from streamx.records import FIELDS

_SPECIAL: Final = (",", '"', "\r", "\n")
_CONSTANTS: Final = ("source", "stream", "kind", "account", "export_id")


def _constant_cells(values: list[str]) -> str:
    """``values`` as the stdlib writer writes them, comma-separated, without line end."""
    if values == [""]:
        return ""  # alone in a row the writer would quote it; in a record it is an empty cell
    target = io.StringIO()
    csv.writer(target, lineterminator="").writerow(values)
    return target.getvalue()


def cell(values: Any) -> Any:
    """Quote the values that need it (nulls stay null: an empty cell)."""
    data = used_bytes(values)
    present = [char for char in _SPECIAL if char.encode() in data]
    if not present:
        return values
    needs = pc.match_substring(values, present[0])
    for char in present[1:]:
        needs = pc.or_(needs, pc.match_substring(values, char))
    doubled = pc.replace_substring(values, '"', '""') if '"' in present else values
    return pc.if_else(needs, join(['"', doubled, '"']), values)


def csv_lines(norm: Normalized, ctx: ExportContext, rare: bool) -> Any:
    """One CSV row (with its CRLF) per record, in :data:`FIELDS` column order."""
    named = dict(norm.named)
    constants = {
        "source": ctx.source,
        "stream": ctx.stream,
        "kind": norm.kind,
        "account": ctx.account,
        "export_id": ctx.export_id,
    }
    pieces = Pieces()
    pieces.text(_constant_cells([constants[name] for name in _CONSTANTS]))
    for name in FIELDS[len(_CONSTANTS) :]:
        pieces.text(",")
        if name == "record_id":
            pieces.column(cell(norm.record_id))
        elif name == "attributes":
            pieces.column(cell(attributes_json(norm, rare)))
        elif isinstance(named.get(name), str):
            pieces.text(_constant_cells([named[name]]))
        elif name in named:
            pieces.column(or_empty(cell(named[name])))
    pieces.text("\r\n")
    return join(pieces.done())
