"""Cordial rows -> schema v1 records: contact activity, contacts, audience trends.

Facts used (vendor-docs/cordial-*.txt): activity rows carry ``cID`` (contact id), ``_id``,
``action`` (message-sent, open, click, optout, bounce, complaint, or a custom event name),
``time`` (``2017-03-13T22:48:40+0000``), ``email``, ``bmID``/``mdtID`` (batch / automation message
id; ``msID`` is the label the docs give bmID), ``mcID``, ``first``, ``message_name``, and
``properties.*`` / ``system_properties.*`` (``system_properties.rl`` is the redirect link, i.e. the
clicked URL; ``system_properties.link`` only the link key). ``columnHeaders`` may rename any of
them: :attr:`ExportContext.column_labels` maps each label back to the Cordial name. Contact rows
carry ``channels.email.*``, attributes, and one 1/0 column per requested list. Audience trends
files hold one row per audience and one column per day. docs/schema.md has the full mapping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from streamx.codecs.base import Row
from streamx.exceptions import ConfigError, RowError
from streamx.normalize.base import ExportContext
from streamx.normalize.plan import (
    Convert,
    Plan,
    PlanCache,
    insert_ordered,
    make_plan,
    record,
)
from streamx.normalize.record_id import id_text, key_hash, row_hash
from streamx.normalize.timestamps import local_midnight_to_utc, to_utc_rfc3339
from streamx.records import STREAMS

#: Documented actions -> schema event types; any other action is a custom event.
ACTIONS: Final[Mapping[str, str]] = {
    "message-sent": "sent",
    "open": "open",
    "click": "click",
    "optout": "optout",
    "bounce": "bounce_hard",
    "complaint": "complaint",
    "custom": "custom",
}

#: Cordial field name -> (record field, priority; lower wins).
_ACTIVITY_FIELDS: Final[Mapping[str, tuple[str, int]]] = {
    "_id": ("record_id", 0),
    "time": ("occurred_at", 0),
    "ats": ("occurred_at", 1),
    "action": ("event_type", 0),
    "a": ("event_type", 1),
    "cID": ("contact_id", 0),
    "email": ("email", 0),
    "channels.email.address": ("email", 1),
    "bmID": ("message_id", 0),
    "msID": ("message_id", 1),
    "mdtID": ("message_id", 2),
    "system_properties.rl": ("url", 0),
    "system_properties.url": ("url", 1),
    "properties.url": ("url", 2),
    "message_name": ("name", 0),
}
_CONTACT_FIELDS: Final[Mapping[str, tuple[str, int]]] = {
    "cID": ("contact_id", 0),
    "_id": ("contact_id", 1),
    "id": ("contact_id", 2),
    "channels.email.address": ("email", 0),
    "email": ("email", 1),
}
#: Nested JSON objects holding free-form event data, searched in this order.
_EVENT_DATA: Final = ("system_properties", "properties")
URL_KEYS: Final = ("rl", "url")
BOUNCE_TYPE_KEYS: Final = frozenset(("bt", "bouncetype", "bounce_type"))
_SOFT_BOUNCES: Final = frozenset(
    ("soft", "softbounce", "soft_bounce", "soft-bounce", "transient", "temporary")
)
_LIST_PREFIX: Final = "lists."
_AUDIENCE_NAME_COLUMNS: Final = ("audience", "audiencename", "audiencekey", "name", "key")
_MEMBERSHIP: Final[Mapping[object, bool]] = {"1": True, "0": False, "true": True, "false": False}


def _timestamp(raw: Any) -> str:
    return to_utc_rfc3339(raw)


def event_type_of(action: Any) -> str | None:
    """Schema event type of a Cordial action; unknown names are custom events."""
    if type(action) is not str:
        return None
    known = ACTIONS.get(action)
    return known if known is not None else ACTIONS.get(action.strip().lower(), "custom")


_ACTIVITY_SPECS: Final[Mapping[str, tuple[Convert, bool]]] = {
    "occurred_at": (_timestamp, True),
    "event_type": (event_type_of, True),
    "url": (id_text, True),
}


def _any_case(table: Mapping[str, tuple[str, int]]) -> Mapping[str, tuple[str, int]]:
    return {name.lower(): slot for name, slot in table.items()}


_ACTIVITY_ANY_CASE: Final = _any_case(_ACTIVITY_FIELDS)
_CONTACT_ANY_CASE: Final = _any_case(_CONTACT_FIELDS)


def _lookup(
    exact: Mapping[str, tuple[str, int]], any_case: Mapping[str, tuple[str, int]], field: str
) -> tuple[str, int] | None:
    """The Cordial name as written, else the same name in another letter case (``CID``)."""
    found = exact.get(field)
    return found if found is not None else any_case.get(field.lower())


def _kind_of(ctx: ExportContext, stream: str) -> str:
    """Check once per plan that the normalizer serves the stream it was given."""
    if ctx.stream != stream or ctx.source != "cordial":
        raise ConfigError(f"the {stream} normalizer cannot serve {ctx.source}/{ctx.stream}")
    return STREAMS[stream].kind


# --- contact activity ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ActivityPlan:
    base: Plan
    kind: str
    #: Flat columns that may hold a bounce type (system_properties first).
    bounce_keys: tuple[str, ...]
    #: Top-level keys holding nested event data (system_properties first).
    nested: tuple[str, ...]


def _activity_plan(ctx: ExportContext, keys: tuple[str, ...]) -> _ActivityPlan:
    kind = _kind_of(ctx, "cordial.contact_activity")
    labels = ctx.column_labels
    fields = {key: labels.get(key, key) for key in keys}
    bounce: list[tuple[int, str]] = []
    nested: list[tuple[int, str]] = []
    for key, field in fields.items():
        group, _, leaf = field.partition(".")
        if group in _EVENT_DATA:
            rank = _EVENT_DATA.index(group)
            if not leaf:
                nested.append((rank, key))
            elif leaf.lower() in BOUNCE_TYPE_KEYS:
                bounce.append((rank, key))
    base = make_plan(
        keys,
        lambda key: _lookup(_ACTIVITY_FIELDS, _ACTIVITY_ANY_CASE, fields[key]),
        _ACTIVITY_SPECS,
    )
    return _ActivityPlan(
        base, kind, tuple(key for _, key in sorted(bounce)), tuple(key for _, key in sorted(nested))
    )


_ACTIVITY_PLANS: Final = PlanCache(_activity_plan)


def normalize_contact_activity(row: Row, ctx: ExportContext) -> list[dict[str, Any]]:
    """One activity row -> one event record (stream ``cordial.contact_activity``)."""
    plan = _ACTIVITY_PLANS.get(row, ctx)
    data = row.data
    named, attributes = plan.base.run(data)
    if named.get("event_type") == "bounce_hard" and _soft_bounce(data, plan):
        named["event_type"] = "bounce_soft"
    if plan.nested and "url" not in named:
        url = _nested_url(data, plan.nested)
        if url is not None:
            named = insert_ordered(named, "url", url)
    record_id = named.pop("record_id", None) or row_hash(ctx.stream, ctx.account, data)
    return [record(ctx, plan.kind, record_id, named, attributes)]


def _soft_bounce(data: dict[str, Any], plan: _ActivityPlan) -> bool:
    """A bounce is soft when its bounce type property says so; hard otherwise (the default)."""
    for key in plan.bounce_keys:
        value = data[key]
        if value is not None and value != "":
            return is_soft_bounce(value)
    for key in plan.nested:
        properties = data[key]
        if isinstance(properties, dict):
            for name, value in properties.items():
                if name.lower() in BOUNCE_TYPE_KEYS and value is not None and value != "":
                    return is_soft_bounce(value)
    return False


def is_soft_bounce(value: Any) -> bool:
    """``soft``/``transient``/``temporary`` (any case), or an SMTP 4xx / 4.x.x status."""
    text = str(value).strip().lower()
    if text in _SOFT_BOUNCES:
        return True
    return text[:2] == "4." or (len(text) == 3 and text.isdigit() and text[0] == "4")


def _nested_url(data: dict[str, Any], nested: tuple[str, ...]) -> str | None:
    for key in nested:
        properties = data[key]
        if properties and isinstance(properties, dict):  # most rows: {} or no URL key at all
            for name in URL_KEYS:
                value = properties.get(name)
                if value is not None:
                    url = id_text(value)
                    if url is not None:
                        return url
    return None


# --- contacts --------------------------------------------------------------------------------


def list_column_labels(lists: Iterable[str | int]) -> dict[str, str]:
    """``column_labels`` entries declaring the 1/0 list columns of a contacts export.

    Cordial names each list column after the list name or id given in the request's ``lists``;
    nothing in the file tells a list column from a contact attribute, so the caller declares them
    (label ``monthly_newsletter`` -> field ``lists.monthly_newsletter``).
    """
    return {str(name): f"{_LIST_PREFIX}{name}" for name in lists}


@dataclass(frozen=True, slots=True)
class _ContactPlan:
    base: Plan
    kind: str
    #: (column, list name) of declared list columns; empty when the row has its own "lists".
    lists: tuple[tuple[str, str], ...]
    #: Top-level "channels" key of a nested JSON contact, if any.
    channels: str | None


def _contact_plan(ctx: ExportContext, keys: tuple[str, ...]) -> _ContactPlan:
    kind = _kind_of(ctx, "cordial.contacts")
    labels = ctx.column_labels
    fields = {key: labels.get(key, key) for key in keys}
    lists = tuple(
        (key, field[len(_LIST_PREFIX) :])
        for key, field in fields.items()
        if field.startswith(_LIST_PREFIX) and len(field) > len(_LIST_PREFIX)
    )
    if "lists" in keys:  # the source's own field of that name wins; columns stay as they are
        lists = ()
    list_keys = {key for key, _ in lists}
    channels = next((key for key, field in fields.items() if field == "channels"), None)

    def slot_of(key: str) -> tuple[str, int] | None:
        return (
            None if key in list_keys else _lookup(_CONTACT_FIELDS, _CONTACT_ANY_CASE, fields[key])
        )

    base = make_plan((key for key in keys if key not in list_keys), slot_of)
    return _ContactPlan(base, kind, lists, channels)


_CONTACT_PLANS: Final = PlanCache(_contact_plan)


def normalize_contact(row: Row, ctx: ExportContext) -> list[dict[str, Any]]:
    """One contact row -> one contact record (stream ``cordial.contacts``)."""
    plan = _CONTACT_PLANS.get(row, ctx)
    data = row.data
    named, attributes = plan.base.run(data)
    if plan.lists:
        attributes["lists"] = _memberships(data, plan.lists)
    if plan.channels is not None and "email" not in named:
        email = _nested_email(data[plan.channels])
        if email is not None:
            named = insert_ordered(named, "email", email)
    record_id = named.get("contact_id") or row_hash(ctx.stream, ctx.account, data)
    return [record(ctx, plan.kind, record_id, named, attributes)]


def _memberships(data: dict[str, Any], lists: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """List name -> True/False for 1/0 cells; other values kept verbatim; empty cells omitted."""
    members: dict[str, Any] = {}
    for key, name in lists:
        raw = data[key]
        if raw is None or raw == "":
            continue
        member = _MEMBERSHIP.get(raw.strip().lower()) if type(raw) is str else None
        if member is None and type(raw) in (int, bool) and raw in (0, 1):
            member = bool(raw)
        members[name] = raw if member is None else member
    return members


def _nested_email(channels: Any) -> str | None:
    if isinstance(channels, dict):
        email = channels.get("email")
        if isinstance(email, dict):
            return id_text(email.get("address"))
    return None


# --- audience trends -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TrendsPlan:
    kind: str
    name_key: str | None
    #: (column, YYYY-MM-DD, occurred_at) of each day column.
    days: tuple[tuple[str, str, str], ...]
    rest: tuple[str, ...]


def _trends_plan(ctx: ExportContext, keys: tuple[str, ...]) -> _TrendsPlan:
    kind = _kind_of(ctx, "cordial.audience_trends")
    days: list[tuple[str, str, str]] = []
    others: list[str] = []
    for key in keys:
        day = iso_day(key)
        if day is None:
            others.append(key)
        else:
            days.append((key, day, local_midnight_to_utc(day)))
    name_key = _audience_name_column(others)
    rest = tuple(key for key in others if key != name_key)
    return _TrendsPlan(kind, name_key, tuple(days), rest)


def _audience_name_column(columns: list[str]) -> str | None:
    squashed = {_squash(key): key for key in reversed(columns)}
    for candidate in _AUDIENCE_NAME_COLUMNS:
        if candidate in squashed:
            return squashed[candidate]
    return columns[0] if columns else None


def _squash(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "").replace("-", "")


_TRENDS_PLANS: Final = PlanCache(_trends_plan)


def normalize_audience_trends(row: Row, ctx: ExportContext) -> list[dict[str, Any]]:
    """One audience row -> one metric record per day column (stream ``cordial.audience_trends``).

    An empty day cell (no snapshot that day) yields no record for that day.
    """
    plan = _TRENDS_PLANS.get(row, ctx)
    data = row.data
    if not plan.days:
        raise RowError("audience trends row has no day columns (YYYY-MM-DD headers)")
    name = id_text(data[plan.name_key]) if plan.name_key is not None else None
    if name is None:
        raise RowError("audience trends row has no audience name")
    records = []
    for key, day, occurred_at in plan.days:
        raw = data[key]
        if raw is None or raw == "":
            continue
        named = {"occurred_at": occurred_at, "name": name, "value": _count(raw, key)}
        attributes = {other: data[other] for other in plan.rest}
        record_id = key_hash(ctx.stream, ctx.account, name, day)
        records.append(record(ctx, plan.kind, record_id, named, attributes))
    return records


#: Counts must fit a signed 64-bit integer: every writer (JSON, CSV, Parquet) can encode them.
_MAX_COUNT: Final = 2**63 - 1


def _count(raw: Any, column: str) -> int:
    text = raw.strip() if type(raw) is str else ""
    if type(raw) is int:
        count = raw
    elif text.isascii() and text.isdigit():
        # More than 19 digits cannot fit (and int() of 5000 digits raises ValueError).
        count = int(text) if len(text) <= 19 else _MAX_COUNT + 1
    else:
        raise RowError(f"column {column!r}: audience count {raw!r:.40} is not a whole number")
    if count < 0:
        raise RowError(f"column {column!r}: audience count {raw!r} is negative")
    if count > _MAX_COUNT:
        raise RowError(f"column {column!r}: audience count {raw!r:.40} is out of range")
    return count


def iso_day(header: str) -> str | None:
    """``YYYY-MM-DD`` of a day column header, or ``None`` when the header is no date.

    Accepted: ``2021-07-16``, ``2021/07/16``, and US month-first ``07/16/2021`` or ``7/16/2021``
    (Cordial is a US vendor; day-first dates are not accepted).
    """
    text = header.strip()
    parts = text.replace("/", "-").split("-")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    if len(parts[0]) == 4:
        year, month, day = parts
    elif len(parts[2]) == 4 and "/" in text:
        month, day, year = parts
    else:
        return None
    if len(month) > 2 or len(day) > 2:
        return None
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None
