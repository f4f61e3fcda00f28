"""A block of CSV rows (an Arrow table of strings) -> the parts of its records, column-wise.

This is :func:`streamx.normalize.plan.interpret` and the per-stream rules around it, applied to
whole columns. For CSV rows (every value a string, never null) the rules become:

* a slot's value is its first non-empty column (empty means absent);
* a slot with ``keep`` copies all its columns to ``attributes``, always (empty or not);
* otherwise a non-empty column that lost to an earlier one goes to ``attributes``;
* ``rest`` columns go to ``attributes`` always, first, in header order;
* record_id: the id field's value, else BLAKE2b of the canonical row (computed by the row
  path's own :func:`~streamx.normalize.record_id.row_hash`, only for rows lacking an id).

The result keeps no Python object per row: :class:`Normalized` holds columns, constants and
presence masks, which the encoders (:mod:`~streamx.columnar.jsontext`,
:mod:`~streamx.columnar.csvtext`, :mod:`~streamx.columnar.arrowbatch`) turn into output.
``None`` means some row would raise a RowError in the row path: the caller falls back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamx.columnar.kernels import STRING, first_non_empty, map_distinct, non_empty
from streamx.columnar.plans import EVENT_TYPE, TIMESTAMP, VectorPlan, VectorSlot
from streamx.columnar.timestamps import to_utc
from streamx.normalize.base import ExportContext
from streamx.normalize.cordial import BOUNCE_TYPE_KEYS, URL_KEYS, event_type_of, is_soft_bounce
from streamx.normalize.record_id import row_hash
from streamx.records import FIELDS

#: A named field's value: a string column (null = absent in that row) or one constant.
Value = Any
_HARD = pa.scalar("bounce_hard", STRING)
_SOFT = pa.scalar("bounce_soft", STRING)
URL = "url"


@dataclass(slots=True)
class Attribute:
    """One ``attributes`` key: its column and in which rows it is present (``None``: all)."""

    key: str
    values: Any
    present: Any = None
    #: The values are JSON text already (objects, numbers of a JSON lines row), not strings.
    text: bool = False


@dataclass(slots=True)
class Normalized:
    """The records of one block, column-wise, in schema v1 order."""

    rows: int
    kind: str
    record_id: Any
    #: Named fields after record_id, in :data:`FIELDS` order.
    named: list[tuple[str, Value]] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)


def normalize(table: Any, plan: VectorPlan, ctx: ExportContext) -> Normalized | None:
    """Apply ``plan`` to a table of string columns named by the CSV header."""
    table = table.combine_chunks()
    columns = {name: table.column(name).chunk(0) for name in table.column_names}
    return normalize_columns(columns, {}, plan, ctx, lambda mask: table.filter(mask).to_pylist())


def normalize_columns(
    columns: dict[str, Any],
    texts: dict[str, Any],
    plan: VectorPlan,
    ctx: ExportContext,
    rows_of: Callable[[Any], list[dict[str, Any]]],
) -> Normalized | None:
    """Apply ``plan`` to whole columns, each present in every row.

    ``texts`` holds the JSON text of the columns that are not strings (a JSON lines block's
    objects and numbers): they can only be attributes (and nested event data). ``rows_of(mask)``
    gives the rows a mask selects as the row path sees them (for their hashes).
    """
    if any(key in texts for slot in plan.slots for key in slot.keys):
        return None  # a non-string value in a mapped field: the row path decides
    if plan.channels is not None and plan.channels in texts:
        return None  # a nested contact's email: the row path decides
    rows = len(next(iter(columns.values())))
    named: dict[str, Value] = {}
    attributes = [_attribute(key, columns, texts) for key in plan.rest]
    for slot in plan.slots:
        value = _slot_value(slot, columns)
        if value is None:
            return None
        named[slot.field] = value
        attributes.extend(_slot_attributes(slot, columns))
    nested = [columns[key] for key in plan.nested if pa.types.is_struct(columns[key].type)]
    if nested:
        url = nested_url(named.get(URL), nested)
        if url is not None:
            named[URL] = url
    if (plan.bounce_keys or nested) and EVENT_TYPE in named:
        event_types = _soft_bounces(named[EVENT_TYPE], plan, columns, nested)
        if event_types is None:
            return None
        named[EVENT_TYPE] = event_types
    if plan.event_type is not None:
        named[EVENT_TYPE] = plan.event_type
    raw_id = named.pop(plan.id_field, None) if plan.id_only else named.get(plan.id_field)
    record_id = _record_ids(raw_id, rows, ctx, rows_of)
    ordered = [
        (name, named[name])
        for name in FIELDS
        if name in named and not _absent_everywhere(named[name])
    ]
    return Normalized(rows, plan.kind, record_id, ordered, attributes)


def _attribute(key: str, columns: dict[str, Any], texts: dict[str, Any]) -> Attribute:
    text = texts.get(key)
    return Attribute(key, columns[key]) if text is None else Attribute(key, text, text=True)


def _slot_value(slot: VectorSlot, columns: dict[str, Any]) -> Value | None:
    value = first_non_empty([columns[key] for key in slot.keys])
    if slot.convert == TIMESTAMP:
        return to_utc(value)
    if slot.convert == EVENT_TYPE:
        return map_distinct(value, _event_type)
    return value


def _event_type(action: str) -> str:
    event_type = event_type_of(action)
    assert event_type is not None  # a string action always has one
    return event_type


def _slot_attributes(slot: VectorSlot, columns: dict[str, Any]) -> list[Attribute]:
    if slot.keep:
        return [Attribute(key, columns[key]) for key in slot.keys]
    out = []
    taken = _non_empty(columns[slot.keys[0]])
    for key in slot.keys[1:]:
        mine = _non_empty(columns[key])
        lost = pc.and_(mine, taken)
        if lost.true_count:
            out.append(Attribute(key, columns[key], lost))
        taken = pc.or_(taken, mine)
    return out


def _non_empty(values: Any) -> Any:
    """Non-empty and present (a JSON lines row may lack the key: null)."""
    mask = non_empty(values)
    return pc.fill_null(mask, False) if mask.null_count else mask


def _soft_bounces(
    event_types: Value, plan: VectorPlan, columns: dict[str, Any], nested: list[Any]
) -> Value | None:
    """``bounce_hard`` rows whose first non-empty bounce type is soft become ``bounce_soft``:
    the flat bounce type columns first, then the bounce type members of nested event data in
    their order. ``None``: a nested bounce type of another type (the row path decides)."""
    hard = pc.fill_null(pc.equal(event_types, _HARD), False)
    if not hard.true_count:
        return event_types
    candidates = [columns[key] for key in plan.bounce_keys]
    for data in nested:
        for index, member in enumerate(data.type):
            if member.name.lower() in BOUNCE_TYPE_KEYS:
                value = _scalar_text(pc.struct_field(data, [index]))
                if value is None:
                    return None
                candidates.append(value)
    if not candidates:
        return event_types
    bounce = first_non_empty(candidates)
    soft = pc.fill_null(map_distinct(bounce, is_soft_bounce, pa.bool_()), False)
    return pc.if_else(pc.and_(hard, soft), _SOFT, event_types)


def nested_url(url: Value | None, nested: list[Any]) -> Value | None:
    """The url field: its own columns' value, else the first non-empty ``rl`` or ``url``
    member of the nested event data (as the row path looks them up)."""
    candidates = [] if url is None else [url]
    for data in nested:
        for name in URL_KEYS:
            index = data.type.get_field_index(name)
            value = None if index < 0 else _scalar_text(pc.struct_field(data, [index]))
            if value is not None:  # objects and booleans are no URL (id_text)
                candidates.append(value)
    if not candidates:
        return None
    return first_non_empty(candidates)


def _scalar_text(values: Any) -> Any | None:
    """String members as they are, integers as decimal text (what ``str()`` gives the row
    path); ``None`` for other types."""
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_int64(values.type):
        return pc.cast(values, STRING)
    return None


def _record_ids(
    raw_id: Value | None,
    rows: int,
    ctx: ExportContext,
    rows_of: Callable[[Any], list[dict[str, Any]]],
) -> Any:
    """The id column, with a row hash wherever it is absent."""
    if raw_id is None:
        raw_id = pa.nulls(rows, STRING)
    missing = raw_id.is_null()
    if not missing.true_count:
        return raw_id
    hashes = [row_hash(ctx.stream, ctx.account, row) for row in rows_of(missing)]
    return pc.replace_with_mask(raw_id, missing, pa.array(hashes, STRING))


def _absent_everywhere(value: Value) -> bool:
    return not isinstance(value, str) and value.null_count == len(value)
