"""Symplify normalizers: the ten statistics exports (result content undocumented)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs.base import Row
from streamx.exceptions import ConfigError, RowError
from streamx.normalize.base import ExportContext
from streamx.normalize.record_id import id_text
from streamx.normalize.symplify import normalize_entity, normalize_event, squash
from streamx.records import FIELDS, STREAMS, streams_of

EVENT_STREAMS = [name for name in streams_of("symplify") if STREAMS[name].kind == "event"]
ENTITY_STREAMS = [name for name in streams_of("symplify") if STREAMS[name].kind == "entity"]


def ctx_for(stream: str, account: str = "5004", export_id: str = "101111") -> ExportContext:
    return ExportContext("symplify", stream, account, export_id)


def event(stream: str, data: dict[str, Any], **kw: str) -> dict[str, Any]:
    records = normalize_event(Row(2, data), ctx_for(stream, **kw))
    assert len(records) == 1
    return records[0]


def entity(stream: str, data: dict[str, Any]) -> dict[str, Any]:
    records = normalize_entity(Row(2, data), ctx_for(stream))
    assert len(records) == 1
    return records[0]


def assert_schema_order(record: dict[str, Any]) -> None:
    assert list(record) == [field for field in FIELDS if field in record]
    assert list(record)[-1] == "attributes"


def test_ten_streams_are_covered() -> None:
    assert len(EVENT_STREAMS) == 6 and len(ENTITY_STREAMS) == 4


@pytest.mark.parametrize("stream", EVENT_STREAMS)
def test_event_row_json(stream: str) -> None:
    row = {
        "eventId": "4095949568",
        "contactId": 82363094,
        "email": "anna.0@exempel.se",
        "campaignId": "55844",
        "messageId": "7364993",
        "messageType": "EMAIL",
        "timestamp": 1394636797030,
    }
    record = event(stream, row)
    assert record == {
        "source": "symplify",
        "stream": stream,
        "kind": "event",
        "account": "5004",
        "export_id": "101111",
        "record_id": "4095949568",
        "occurred_at": "2014-03-12T15:06:37.030Z",
        "event_type": STREAMS[stream].event_type,
        "contact_id": "82363094",
        "email": "anna.0@exempel.se",
        "message_id": "7364993",
        "campaign_id": "55844",
        "attributes": {"messageType": "EMAIL", "timestamp": 1394636797030},
    }
    assert_schema_order(record)


def test_click_csv_with_link_target_and_unicode() -> None:
    row = {
        "eventId": "1",
        "contactId": "2",
        "linkTarget": "https://www.example.se/kampanj?id=7&lang=sv,fi",
        "timestamp": "1394636797030",
        "campaignName": 'Vår "rea", 20%\nrabatt 🎉',
    }
    record = event("symplify.clicks", row)
    assert record["url"] == row["linkTarget"]
    assert record["event_type"] == "click"
    assert record["attributes"] == {
        "campaignName": row["campaignName"],
        "timestamp": "1394636797030",
    }


@pytest.mark.parametrize(
    "names",
    [
        ("contactId", "email", "listId", "projectId", "linkTarget"),
        ("contact_id", "EMAIL", "list_id", "Project-Id", "Link Target"),
        ("CONTACTID", "emailAddress", "ListID", "project id", "url"),
        ("subscriberId", "e-mail", "LIST_ID", "projectID", "linkUrl"),
    ],
)
def test_names_are_matched_liberally(names: tuple[str, ...]) -> None:
    contact, email, list_, project, link = names
    row = {contact: "c", email: "e@x", list_: "l", project: "p", link: "https://u/"}
    record = event("symplify.opens", row)
    assert (record["contact_id"], record["email"], record["list_id"]) == ("c", "e@x", "l")
    assert (record["project_id"], record["url"]) == ("p", "https://u/")
    assert record["attributes"] == {}


@pytest.mark.parametrize(
    ("stream", "row", "expected"),
    [
        # The event's own time wins over the generic one...
        ("symplify.opens", {"openedAt": "2020-01-02", "timestamp": 1}, "2020-01-02T00:00:00.000Z"),
        ("symplify.sent", {"sentTimestamp": 1394636797030}, "2014-03-12T15:06:37.030Z"),
        ("symplify.clicks", {"clickTime": "2020-01-02T03:04:05-04:00"}, "2020-01-02T07:04:05.000Z"),
        ("symplify.optouts", {"unsubscribeDate": "2020-01-02"}, "2020-01-02T00:00:00.000Z"),
        ("symplify.hard_bounces", {"bounceTimestamp": 1577934245000}, "2020-01-02T03:04:05.000Z"),
        ("symplify.soft_bounces", {"date": "2020-01-02 03:04:05"}, "2020-01-02T03:04:05.000Z"),
        ("symplify.opens", {"time": "2020-01-02T03:04:05Z"}, "2020-01-02T03:04:05.000Z"),
        ("symplify.opens", {"eventTimestamp": "1577934245"}, "2020-01-02T03:04:05.000Z"),
    ],
)
def test_event_time_names(stream: str, row: dict[str, Any], expected: str) -> None:
    record = event(stream, row)
    assert record["occurred_at"] == expected
    for key, value in row.items():  # every time column kept verbatim
        assert record["attributes"][key] == value


def test_sent_timestamp_is_context_on_an_open() -> None:
    record = event("symplify.opens", {"sentTimestamp": 1394630000000})
    assert "occurred_at" not in record
    assert record["attributes"] == {"sentTimestamp": 1394630000000}
    sent = event("symplify.sent", {"sentTimestamp": 1394630000000, "timestamp": 1394636797030})
    assert sent["occurred_at"] == "2014-03-12T13:13:20.000Z"  # sentTimestamp, not timestamp


def test_bad_time_is_a_row_error() -> None:
    with pytest.raises(RowError, match=r"column 'timestamp': unparseable timestamp"):
        event("symplify.opens", {"timestamp": "not yet"})


def test_message_name_and_bounce_reason() -> None:
    record = event(
        "symplify.soft_bounces",
        {"messageName": "Nyheter", "bounceReason": "mailbox full", "eventId": 7},
    )
    assert record["name"] == "Nyheter"
    assert record["record_id"] == "7"
    assert record["event_type"] == "bounce_soft"
    assert record["attributes"] == {"bounceReason": "mailbox full"}


def test_event_without_id_hashes_the_row_without_the_export_id() -> None:
    row = {"contactId": "1", "timestamp": 1394636797030}
    first = event("symplify.opens", row, export_id="1")
    assert len(first["record_id"]) == 32
    assert event("symplify.opens", dict(row), export_id="2")["record_id"] == first["record_id"]
    assert event("symplify.opens", {**row, "contactId": "2"})["record_id"] != first["record_id"]
    assert event("symplify.clicks", row)["record_id"] != first["record_id"]
    assert event("symplify.opens", row, account="6000")["record_id"] != first["record_id"]


def test_event_id_wins_over_id() -> None:
    record = event("symplify.opens", {"id": "a", "eventId": "b"})
    assert record["record_id"] == "b"
    assert record["attributes"] == {"id": "a"}


def test_empty_values() -> None:
    record = event("symplify.opens", {"contactId": "", "email": None, "extra": ""})
    assert "contact_id" not in record and "email" not in record
    assert record["attributes"] == {"extra": ""}


@pytest.mark.parametrize(
    ("stream", "id_name", "field"),
    [
        ("symplify.lists", "listId", "list_id"),
        ("symplify.campaigns", "campaignId", "campaign_id"),
        ("symplify.messages", "messageId", "message_id"),
        ("symplify.projects", "projectId", "project_id"),
    ],
)
def test_entity_rows(stream: str, id_name: str, field: str) -> None:
    row = {id_name: "10000", "name": 'Big "Spring" sale, 20% off #0', "created": 1793356583360}
    record = entity(stream, row)
    assert record == {
        "source": "symplify",
        "stream": stream,
        "kind": "entity",
        "account": "5004",
        "export_id": "101111",
        "record_id": "10000",
        field: "10000",
        "name": row["name"],
        "attributes": {"created": 1793356583360},
    }
    assert_schema_order(record)


def test_entity_generic_id_and_specific_name() -> None:
    record = entity("symplify.lists", {"id": 5, "listName": "VIP", "name": "other", "size": 3})
    assert record["list_id"] == record["record_id"] == "5"
    assert record["name"] == "VIP"
    assert record["attributes"] == {"name": "other", "size": 3}


def test_message_entity_carries_its_campaign() -> None:
    record = entity("symplify.messages", {"messageId": "9", "campaignId": "4", "subject": "Hej"})
    assert (record["message_id"], record["campaign_id"]) == ("9", "4")
    assert record["attributes"] == {"subject": "Hej"}
    assert "occurred_at" not in record


def test_entity_without_id_hashes_the_row() -> None:
    record = entity("symplify.projects", {"title": "Q3"})
    assert record["name"] == "Q3" and len(record["record_id"]) == 32


def test_wrong_normalizer_for_the_stream_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        normalize_event(Row(1, {}), ctx_for("symplify.lists"))
    with pytest.raises(ConfigError):
        normalize_entity(Row(1, {}), ctx_for("symplify.opens"))
    with pytest.raises(ConfigError):
        normalize_event(Row(1, {}), ExportContext("cordial", "symplify.opens", "a", "b"))


def test_simulator_rows_round_trip() -> None:
    from streamx.testing.data import Window, symplify_rows

    window = Window.days_back(3)
    for export_type in ("OPENS", "SENT", "CLICKS", "HARD_BOUNCES", "SOFT_BOUNCES", "OPTOUTS"):
        stream = f"symplify.{export_type.lower()}"
        for row in symplify_rows(7, export_type=export_type, rows=40, window=window):
            record = event(stream, row)
            assert record["record_id"] == row["eventId"]
            assert window.start.isoformat()[:10] <= record["occurred_at"][:10]
            assert ("url" in record) == (export_type == "CLICKS")


def test_squash() -> None:
    assert squash("Link_Target - URL") == "linktargeturl"


_NAMES = [
    "eventId",
    "id",
    "contactId",
    "email",
    "messageId",
    "campaignId",
    "listId",
    "projectId",
    "messageType",
    "linkTarget",
    "sentTimestamp",
    "name",
    "listName",
    "messageName",
    "Contact_ID",
]
_VALUES = st.one_of(
    st.text(max_size=10),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.one_of(st.sampled_from(_NAMES), st.text(max_size=8)), _VALUES),
    st.sampled_from(EVENT_STREAMS + ENTITY_STREAMS),
)
def test_every_source_key_lands_somewhere(data: dict[str, Any], stream: str) -> None:
    normalize = normalize_event if STREAMS[stream].kind == "event" else normalize_entity
    try:
        (record,) = normalize(Row(1, data), ctx_for(stream))
    except RowError as exc:
        assert exc.reason.startswith("column ")
        return
    named = [record[f] for f in FIELDS[5:-1] if f in record]
    for key, value in data.items():
        if key in record["attributes"]:
            assert record["attributes"][key] == value
        else:
            assert value is None or value == "" or id_text(value) in named, key
    assert set(record["attributes"]) <= set(data)
    assert record["kind"] == STREAMS[stream].kind
    assert_schema_order(record)


def test_a_plan_cached_for_one_source_is_not_served_to_another() -> None:
    """The plan cache once keyed on the stream alone: a Cordial context naming a Symplify
    stream got the plan a valid Symplify context had built, instead of a ConfigError."""
    normalize_event(Row(1, {}), ctx_for("symplify.opens"))
    with pytest.raises(ConfigError):
        normalize_event(Row(1, {}), ExportContext("cordial", "symplify.opens", "a", "b"))
