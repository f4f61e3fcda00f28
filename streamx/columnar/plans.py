"""Which streams the columnar path serves, and how: vector plans built from the row plans.

The mapping rules live in one place, the row normalizers (``streamx.normalize``): a
:class:`VectorPlan` is made from the very :class:`~streamx.normalize.plan.Plan` the row path
builds for the same header, plus the few per-stream rules around it (where the record_id comes
from, the constant event type of a Symplify export, Cordial's bounce type). A plan the columnar
path cannot reproduce exactly (an unknown converter, Cordial contacts with declared list
columns, audience trends' unpivot) is ``None``: those files take the row path.

In a CSV row every value is a string, which makes the rules about nested JSON objects (Cordial
``properties`` / ``channels`` objects) no-ops; a JSON lines block
(:mod:`streamx.columnar.jsonblock`) applies the nested-event-data rules to its object columns
and leaves nested contacts to the row path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from streamx.normalize import cordial, symplify
from streamx.normalize.base import ExportContext
from streamx.normalize.plan import Convert, Plan
from streamx.normalize.record_id import id_text
from streamx.records import STREAMS

TEXT: Final = "text"
TIMESTAMP: Final = "timestamp"
EVENT_TYPE: Final = "event_type"

#: Row-path converters the columnar path reproduces, by what they do.
_CONVERTERS: Final[Mapping[Convert, str]] = {
    id_text: TEXT,
    cordial._timestamp: TIMESTAMP,
    symplify._timestamp: TIMESTAMP,
    cordial.event_type_of: EVENT_TYPE,
}

#: Streams with a columnar plan (for files whose header it can serve).
STREAMS_SERVED: Final = frozenset(
    name
    for name, info in STREAMS.items()
    if info.source == "symplify" or name in ("cordial.contact_activity", "cordial.contacts")
)


@dataclass(frozen=True, slots=True)
class VectorSlot:
    """One record field: its source columns (best first), conversion and keep flag."""

    field: str
    keys: tuple[str, ...]
    convert: str
    keep: bool


@dataclass(frozen=True, slots=True)
class VectorPlan:
    """How every row of one CSV header becomes a record (see the row plan's rules)."""

    kind: str
    slots: tuple[VectorSlot, ...]
    rest: tuple[str, ...]
    #: The named field whose value is the record_id (else a hash of the row).
    id_field: str
    #: True when that field is the record_id only (not also a named field of the record).
    id_only: bool
    #: Constant event type of every record (Symplify event exports).
    event_type: str | None = None
    #: Columns holding a bounce type, best first (Cordial activity).
    bounce_keys: tuple[str, ...] = ()
    #: Columns of nested event data (URL, bounce type), best first: Cordial activity's
    #: ``system_properties`` / ``properties`` objects of a JSON lines row.
    nested: tuple[str, ...] = ()
    #: The column of a nested contact's ``channels`` object (Cordial contacts).
    channels: str | None = None


def vector_plan(ctx: ExportContext, keys: tuple[str, ...]) -> VectorPlan | None:
    """The columnar plan for rows with these ``keys`` (a CSV header), or ``None``."""
    stream = ctx.stream
    info = STREAMS.get(stream)
    if info is None or stream not in STREAMS_SERVED:
        return None
    if stream == "cordial.contact_activity":
        activity = cordial._activity_plan(ctx, keys)
        plan = _build(activity.base, activity.kind, "record_id", True, None, activity.bounce_keys)
        return None if plan is None else replace(plan, nested=activity.nested)
    if stream == "cordial.contacts":
        contacts = cordial._contact_plan(ctx, keys)
        if contacts.lists:  # declared list columns become a nested object: row path
            return None
        plan = _build(contacts.base, contacts.kind, "contact_id", False, None, ())
        return None if plan is None else replace(plan, channels=contacts.channels)
    if info.kind == "event":
        event = symplify._event_plan(ctx, keys)
        return _build(event.base, info.kind, "record_id", True, info.event_type, ())
    entity = symplify._entity_plan(ctx, keys)
    return _build(entity.base, info.kind, symplify._ENTITY_ID[stream], False, None, ())


def _build(
    plan: Plan,
    kind: str,
    id_field: str,
    id_only: bool,
    event_type: str | None,
    bounce_keys: tuple[str, ...],
) -> VectorPlan | None:
    slots = []
    for slot in plan.slots:
        convert = _CONVERTERS.get(slot.convert)
        if convert is None or (not slot.keep and convert != TEXT):
            return None  # a rule without a vectorized twin: the row path decides
        slots.append(VectorSlot(slot.field, slot.keys, convert, slot.keep))
    return VectorPlan(kind, tuple(slots), plan.rest, id_field, id_only, event_type, bounce_keys)
