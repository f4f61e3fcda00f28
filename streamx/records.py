"""Record schema v1: the one shape every vendor row is normalized into.

``docs/schema.md`` is the contract; this module is its executable form. Records are plain ``dict``
objects (cheap to build, cheap to serialize with orjson); :class:`Record` documents their keys for
type checkers. A field absent in the source is omitted, never invented. Every source field that has
no named field lands in ``attributes`` under its original name, so normalization is lossless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict

SCHEMA_VERSION: Final = 1

Source = Literal["symplify", "cordial"]
Kind = Literal["event", "contact", "entity", "metric"]
EventType = Literal[
    "sent", "open", "click", "bounce_hard", "bounce_soft", "optout", "complaint", "custom"
]

EVENT_TYPES: Final[tuple[str, ...]] = (
    "sent",
    "open",
    "click",
    "bounce_hard",
    "bounce_soft",
    "optout",
    "complaint",
    "custom",
)

#: Field order used by every writer (CSV columns, Parquet schema, JSON key order).
FIELDS: Final[tuple[str, ...]] = (
    "source",
    "stream",
    "kind",
    "account",
    "export_id",
    "record_id",
    "occurred_at",
    "event_type",
    "contact_id",
    "email",
    "message_id",
    "campaign_id",
    "list_id",
    "project_id",
    "url",
    "name",
    "value",
    "attributes",
)


class Record(TypedDict, total=False):
    """One normalized record (schema v1). See docs/schema.md for the meaning of each key."""

    source: str
    stream: str
    kind: str
    account: str
    export_id: str
    record_id: str
    occurred_at: str | None
    event_type: str | None
    contact_id: str | None
    email: str | None
    message_id: str | None
    campaign_id: str | None
    list_id: str | None
    project_id: str | None
    url: str | None
    name: str | None
    value: Any
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What streamx knows about one export stream."""

    name: str
    source: Source
    kind: Kind
    #: The vendor's name for the export (Symplify exportType, Cordial endpoint).
    vendor_export: str
    #: The event type every row of this stream has, when the stream implies one.
    event_type: str | None = None


def _symplify(short: str, kind: Kind, event_type: str | None = None) -> StreamInfo:
    return StreamInfo(f"symplify.{short}", "symplify", kind, short.upper(), event_type)


STREAMS: Final[dict[str, StreamInfo]] = {
    info.name: info
    for info in (
        _symplify("lists", "entity"),
        _symplify("campaigns", "entity"),
        _symplify("messages", "entity"),
        _symplify("projects", "entity"),
        _symplify("opens", "event", "open"),
        _symplify("sent", "event", "sent"),
        _symplify("clicks", "event", "click"),
        _symplify("hard_bounces", "event", "bounce_hard"),
        _symplify("soft_bounces", "event", "bounce_soft"),
        _symplify("optouts", "event", "optout"),
        StreamInfo("cordial.contact_activity", "cordial", "event", "contactactivityexport"),
        StreamInfo("cordial.contacts", "cordial", "contact", "contactexports"),
        StreamInfo("cordial.audience_trends", "cordial", "metric", "audiencetrendsexport"),
    )
}


def stream_info(name: str) -> StreamInfo:
    """Look up a stream by its full name (``symplify.opens``) or raise ``KeyError``."""
    return STREAMS[name]


def streams_of(source: str) -> list[str]:
    """All stream names of one source, in registry order."""
    return [name for name, info in STREAMS.items() if info.source == source]
