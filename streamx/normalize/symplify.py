"""Symplify (formerly Carma) statistics-export rows -> schema v1 records.

The content of the result file is not documented, only the ten export types. So field names are
matched liberally: case, ``_``, ``-`` and spaces are ignored (``contactId``, ``contact_id`` and
``Contact ID`` are one name), known ids, e-mail, link and time names map to record fields, and
every other field is kept in ``attributes`` under the name it has in the file. The four entity
exports (LISTS, CAMPAIGNS, MESSAGES, PROJECTS) become ``entity`` records identified by the
entity's id; the six event exports become ``event`` records whose ``event_type`` is the export's
(an OPENS row is an ``open``). docs/schema.md has the full table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from streamx.codecs.base import Row
from streamx.exceptions import ConfigError
from streamx.normalize.base import ExportContext
from streamx.normalize.plan import Convert, Plan, PlanCache, make_plan, record
from streamx.normalize.record_id import row_hash
from streamx.normalize.timestamps import to_utc_rfc3339
from streamx.records import STREAMS, StreamInfo

#: Squashed field name -> (record field, priority; lower wins), for every Symplify stream.
_COMMON: Final[Mapping[str, tuple[str, int]]] = {
    "contactid": ("contact_id", 0),
    "subscriberid": ("contact_id", 1),
    "recipientid": ("contact_id", 2),
    "email": ("email", 0),
    "emailaddress": ("email", 1),
    "contactemail": ("email", 2),
    "messageid": ("message_id", 0),
    "campaignid": ("campaign_id", 0),
    "listid": ("list_id", 0),
    "projectid": ("project_id", 0),
    "linktarget": ("url", 0),
    "url": ("url", 1),
    "linkurl": ("url", 2),
    "targeturl": ("url", 3),
    "link": ("url", 4),
}
#: Event time names tried after the event-specific ones (``openedAt`` before ``timestamp``).
_EVENT_TIMES: Final = ("timestamp", "eventtimestamp", "eventtime", "eventdate", "occurredat")
_GENERIC_TIMES: Final = ("datetime", "time", "date")
_TIME_WORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "sent": ("sent", "send"),
    "open": ("open", "opened"),
    "click": ("click", "clicked"),
    "bounce_hard": ("bounce", "bounced", "hardbounce"),
    "bounce_soft": ("bounce", "bounced", "softbounce"),
    "optout": ("optout", "optedout", "unsubscribe", "unsubscribed"),
}
_TIME_SUFFIXES: Final = ("timestamp", "at", "time", "date", "datetime")
#: Entity stream -> the record field holding the entity's own id.
_ENTITY_ID: Final[Mapping[str, str]] = {
    "symplify.lists": "list_id",
    "symplify.campaigns": "campaign_id",
    "symplify.messages": "message_id",
    "symplify.projects": "project_id",
}


def squash(name: str) -> str:
    """The matching form of a field name: lower case, without ``_``, ``-`` and spaces."""
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


def _timestamp(raw: Any) -> str:
    return to_utc_rfc3339(raw)


_EVENT_SPECS: Final[Mapping[str, tuple[Convert, bool]]] = {"occurred_at": (_timestamp, True)}


def event_fields(event_type: str) -> dict[str, tuple[str, int]]:
    """The name table of an event stream: common names, event id, message name and times.

    A time column only counts as the event's time when it is about this event: ``sentTimestamp``
    is the occurrence of a SENT row but merely context on an OPENS row (it stays in attributes).
    """
    table = dict(_COMMON)
    table |= {"eventid": ("record_id", 0), "id": ("record_id", 1), "messagename": ("name", 0)}
    specific = [word + suffix for word in _TIME_WORDS[event_type] for suffix in _TIME_SUFFIXES]
    for rank, name in enumerate((*specific, *_EVENT_TIMES, *_GENERIC_TIMES)):
        table.setdefault(name, ("occurred_at", rank))
    return table


def entity_fields(stream: str) -> dict[str, tuple[str, int]]:
    """The name table of an entity stream: common names, plus ``id`` and ``name`` synonyms."""
    id_field = _ENTITY_ID[stream]
    entity = id_field.removesuffix("_id")
    table = dict(_COMMON)
    table |= {"id": (id_field, 1), f"{entity}name": ("name", 0), "name": ("name", 1)}
    table["title"] = ("name", 2)
    return table


@dataclass(frozen=True, slots=True)
class _SymplifyPlan:
    base: Plan
    info: StreamInfo


def _stream_info(ctx: ExportContext, kind: str) -> StreamInfo:
    info = STREAMS.get(ctx.stream)
    if info is None or info.source != "symplify" or info.kind != kind or ctx.source != "symplify":
        raise ConfigError(f"the Symplify {kind} normalizer cannot serve {ctx.source}/{ctx.stream}")
    return info


def _event_plan(ctx: ExportContext, keys: tuple[str, ...]) -> _SymplifyPlan:
    info = _stream_info(ctx, "event")
    table = event_fields(info.event_type or "")
    base = make_plan(keys, lambda key: table.get(squash(key)), _EVENT_SPECS)
    return _SymplifyPlan(base, info)


def _entity_plan(ctx: ExportContext, keys: tuple[str, ...]) -> _SymplifyPlan:
    info = _stream_info(ctx, "entity")
    table = entity_fields(info.name)
    return _SymplifyPlan(make_plan(keys, lambda key: table.get(squash(key))), info)


_EVENT_PLANS: Final = PlanCache(_event_plan)
_ENTITY_PLANS: Final = PlanCache(_entity_plan)


def normalize_event(row: Row, ctx: ExportContext) -> list[dict[str, Any]]:
    """One row of OPENS, SENT, CLICKS, HARD_BOUNCES, SOFT_BOUNCES or OPTOUTS -> one event."""
    plan = _EVENT_PLANS.get(row, ctx)
    data = row.data
    named, attributes = plan.base.run(data)
    record_id = named.pop("record_id", None) or row_hash(ctx.stream, ctx.account, data)
    occurred_at = named.pop("occurred_at", None)
    head = {"occurred_at": occurred_at} if occurred_at is not None else {}
    head["event_type"] = plan.info.event_type
    return [record(ctx, plan.info.kind, record_id, head | named, attributes)]


def normalize_entity(row: Row, ctx: ExportContext) -> list[dict[str, Any]]:
    """One row of LISTS, CAMPAIGNS, MESSAGES or PROJECTS -> one entity record."""
    plan = _ENTITY_PLANS.get(row, ctx)
    data = row.data
    named, attributes = plan.base.run(data)
    record_id = named.get(_ENTITY_ID[plan.info.name]) or row_hash(ctx.stream, ctx.account, data)
    return [record(ctx, plan.info.kind, record_id, named, attributes)]
