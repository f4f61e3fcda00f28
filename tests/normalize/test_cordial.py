"""Cordial normalizers: contact activity, contacts, audience trends (vendor-docs/cordial-*.txt)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs.base import Row
from streamx.exceptions import ConfigError, RowError
from streamx.normalize.base import ExportContext, Normalizer
from streamx.normalize.cordial import (
    iso_day,
    list_column_labels,
    normalize_audience_trends,
    normalize_contact,
    normalize_contact_activity,
)
from streamx.normalize.record_id import id_text
from streamx.normalize.timestamps import to_utc_rfc3339
from streamx.records import EVENT_TYPES, FIELDS

ACTIVITY = "cordial.contact_activity"
CONTACTS = "cordial.contacts"
TRENDS = "cordial.audience_trends"

#: The bounce example request of cordial-contactactivityexport.txt: name -> label.
BOUNCE_EXAMPLE_HEADERS = {
    "_id": "_id",
    "action": "action",
    "email": "email",
    "cID": "cID",
    "bmID": "msID",
    "mcID": "mcID",
    "mdtID": "mdtID",
    "time": "time",
    "first": "first",
    "message_name": "message_name",
    "system_properties.bt": "system_properties_bt",
    "system_properties.link": "system_properties_link_key",
    "system_properties.rl": "system_properties_redirect_link",
    "properties.custom_per_client_and_not_required": (
        "properties_custom_per_client_and_not_required"
    ),
}


#: The same request as ExportContext.column_labels: label in the file -> Cordial name.
BOUNCE_EXAMPLE_LABELS = {label: name for name, label in BOUNCE_EXAMPLE_HEADERS.items()}


def ctx_for(stream: str, labels: Mapping[str, str] | None = None, **kw: str) -> ExportContext:
    return ExportContext(
        "cordial", stream, kw.get("account", "acme"), kw.get("export_id", "job-1"), labels or {}
    )


def one(normalizer: Normalizer, data: dict[str, Any], ctx: ExportContext) -> dict[str, Any]:
    records = normalizer(Row(2, data), ctx)
    assert len(records) == 1
    return records[0]


def activity(data: dict[str, Any], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return one(normalize_contact_activity, data, ctx_for(ACTIVITY, labels))


def assert_schema_order(record: dict[str, Any]) -> None:
    keys = list(record)
    assert keys == [field for field in FIELDS if field in record]
    assert keys[:6] == ["source", "stream", "kind", "account", "export_id", "record_id"]
    assert keys[-1] == "attributes"
    assert all(value is not None for value in record.values())


# --- contact activity ------------------------------------------------------------------------


def test_documented_sent_row_csv() -> None:
    row = {
        "cID": "5c8995ed8b1c4e3a2c2f1a11",
        "_id": "5c8995ee1a02a5007ec6ad6e",
        "action": "message-sent",
        "time": "2017-03-13T22:48:40+0000",
        "email": "msmith@example.com",
        "bmID": "45:5a7d2a3cc7280b410:ot",
        "mcID": "45:5a7d2a3cc7280b410:ot:5c8995ed8b1c4e3a2c2f1a11",
        "mdtID": "",
        "first": "1",
        "message_name": "activities_batch_march25",
    }
    record = activity(row)
    assert record == {
        "source": "cordial",
        "stream": ACTIVITY,
        "kind": "event",
        "account": "acme",
        "export_id": "job-1",
        "record_id": "5c8995ee1a02a5007ec6ad6e",
        "occurred_at": "2017-03-13T22:48:40.000Z",
        "event_type": "sent",
        "contact_id": "5c8995ed8b1c4e3a2c2f1a11",
        "email": "msmith@example.com",
        "message_id": "45:5a7d2a3cc7280b410:ot",
        "name": "activities_batch_march25",
        "attributes": {
            "mcID": "45:5a7d2a3cc7280b410:ot:5c8995ed8b1c4e3a2c2f1a11",
            "first": "1",
            "time": "2017-03-13T22:48:40+0000",
            "action": "message-sent",
        },
    }
    assert_schema_order(record)


def test_bounce_example_with_renamed_labels_csv() -> None:
    labels = BOUNCE_EXAMPLE_LABELS
    row = {
        "_id": "5a8f0d2b1c9e77001f3e2a10",
        "action": "bounce",
        "email": "bo@example.org",
        "cID": "5a8f0c111c9e77001f3e29ff",
        "msID": "12:5a7d2a3cc7280b410:ot",
        "mcID": "12:5a7d2a3cc7280b410:ot:5a8f0c111c9e77001f3e29ff",
        "mdtID": "5a7d2a3cc7280b410aaaaaaa",
        "time": "2018-02-03T08:14:55+0000",
        "first": "",
        "message_name": "Feb newsletter",
        "system_properties_bt": "soft",
        "system_properties_link_key": "",
        "system_properties_redirect_link": "",
        "properties_custom_per_client_and_not_required": "x",
    }
    record = activity(row, labels)
    assert record["event_type"] == "bounce_soft"
    assert record["message_id"] == "12:5a7d2a3cc7280b410:ot"  # bmID (label msID) beats mdtID
    assert record["occurred_at"] == "2018-02-03T08:14:55.000Z"
    assert "url" not in record  # redirect link column empty
    assert record["attributes"] == {
        "mcID": "12:5a7d2a3cc7280b410:ot:5a8f0c111c9e77001f3e29ff",
        "first": "",
        "system_properties_bt": "soft",
        "system_properties_link_key": "",
        "system_properties_redirect_link": "",  # event data is always kept, even empty
        "properties_custom_per_client_and_not_required": "x",
        "time": "2018-02-03T08:14:55+0000",
        "action": "bounce",
        "mdtID": "5a7d2a3cc7280b410aaaaaaa",
    }
    assert_schema_order(record)


def test_bounce_example_json_all_columns() -> None:
    """JSON export of the same request: labels apply to JSON keys as well."""
    labels = BOUNCE_EXAMPLE_LABELS
    row = {
        "_id": "a1",
        "action": "click",
        "email": "e@example.com",
        "cID": "c1",
        "msID": "m1",
        "mcID": "mc1",
        "mdtID": None,
        "time": "2018-02-03T08:14:55+0000",
        "first": True,
        "message_name": None,
        "system_properties_bt": None,
        "system_properties_link_key": "hero",
        "system_properties_redirect_link": "https://example.com/x?a=1&b=2",
        "properties_custom_per_client_and_not_required": {"deep": [1, 2]},
    }
    record = activity(row, labels)
    assert record["url"] == "https://example.com/x?a=1&b=2"
    assert (
        record["attributes"]["system_properties_redirect_link"]
        == row["system_properties_redirect_link"]
    )  # a copy: the property stays complete in attributes
    assert record["attributes"]["first"] is True
    assert record["attributes"]["properties_custom_per_client_and_not_required"] == {"deep": [1, 2]}
    assert "name" not in record and "mdtID" not in record["attributes"]


def test_docs_gcs_example_labels_action_contact_email_contact_id() -> None:
    labels = {"Action": "action", "Contact Email": "email", "Contact ID": "cID"}
    row = {"Action": "message-sent", "Contact Email": "Zoë@exempel.se", "Contact ID": "c-9"}
    record = activity(row, labels)
    assert record["event_type"] == "sent"
    assert record["email"] == "Zoë@exempel.se"
    assert record["contact_id"] == "c-9"
    assert record["attributes"] == {"Action": "message-sent"}  # the file's label is the key
    assert "occurred_at" not in record


@pytest.mark.parametrize(
    ("action", "event_type"),
    [
        ("message-sent", "sent"),
        ("open", "open"),
        ("click", "click"),
        ("optout", "optout"),
        ("bounce", "bounce_hard"),
        ("complaint", "complaint"),
        ("custom", "custom"),
        ("OPEN", "open"),
        (" Message-Sent ", "sent"),
        ("browse", "custom"),
        ("wishlist-add", "custom"),
        ("cart", "custom"),
        ("köp 🛒", "custom"),
    ],
)
def test_every_action(action: str, event_type: str) -> None:
    record = activity({"_id": "1", "action": action})
    assert record["event_type"] == event_type
    assert record["attributes"]["action"] == action  # custom names are never lost


def test_short_action_and_timestamp_names() -> None:
    """The docs name the database fields a (action) and ats (action timestamp) too."""
    record = activity({"a": "open", "ats": "2019-03-24T00:00:00.000Z", "sp": "x"})
    assert record["event_type"] == "open"
    assert record["occurred_at"] == "2019-03-24T00:00:00.000Z"
    assert record["attributes"] == {"sp": "x", "a": "open", "ats": "2019-03-24T00:00:00.000Z"}


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"system_properties.bt": "soft"}, "bounce_soft"),
        ({"system_properties.bt": "hard"}, "bounce_hard"),
        ({"system_properties.bt": "Transient"}, "bounce_soft"),
        ({"system_properties.bt": "4.2.2"}, "bounce_soft"),
        ({"system_properties.bt": "421"}, "bounce_soft"),
        ({"system_properties.bt": "5.1.1"}, "bounce_hard"),
        ({"properties.bounceType": "soft"}, "bounce_soft"),
        ({"properties.BounceType": "SOFT"}, "bounce_soft"),
        ({"properties.bounce_type": "hard", "system_properties.bt": "soft"}, "bounce_soft"),
        ({"properties.reason": "550 5.1.1 user unknown"}, "bounce_hard"),
        ({"system_properties.bt": ""}, "bounce_hard"),
        ({}, "bounce_hard"),
    ],
)
def test_bounce_type_flat(properties: dict[str, str], expected: str) -> None:
    record = activity({"_id": "1", "action": "bounce", **properties})
    assert record["event_type"] == expected
    assert record["attributes"] == {**properties, "action": "bounce"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"properties": {"bounceType": "soft", "reason": "mailbox full"}}, "bounce_soft"),
        ({"properties": {"bounceType": "hard"}}, "bounce_hard"),
        (
            {"system_properties": {"bt": "soft"}, "properties": {"bounceType": "hard"}},
            "bounce_soft",
        ),
        ({"system_properties": {"ua": "x"}}, "bounce_hard"),
        ({"system_properties": None}, "bounce_hard"),
    ],
)
def test_bounce_type_nested(row: dict[str, Any], expected: str) -> None:
    record = activity({"_id": "1", "action": "bounce", **row})
    assert record["event_type"] == expected
    for key, value in row.items():
        assert record["attributes"][key] == value  # nested objects stay whole


def test_soft_bounce_only_applies_to_bounces() -> None:
    assert activity({"action": "open", "system_properties.bt": "soft"})["event_type"] == "open"


@pytest.mark.parametrize(
    ("row", "url"),
    [
        ({"system_properties.rl": "https://a.example/1"}, "https://a.example/1"),
        ({"properties.url": "https://b.example/2?x=1,2"}, "https://b.example/2?x=1,2"),
        (
            {"properties.url": "https://b.example/", "system_properties.rl": "https://a/"},
            "https://a/",
        ),
        ({"system_properties": {"rl": "https://n.example/"}}, "https://n.example/"),
        ({"properties": {"url": "https://p.example/"}}, "https://p.example/"),
        (
            {
                "properties": {"url": "https://p.example/"},
                "system_properties": {"rl": "https://s/"},
            },
            "https://s/",
        ),
        ({"properties.url": "", "properties": {"url": "https://n/"}}, "https://n/"),
    ],
)
def test_click_url(row: dict[str, Any], url: str) -> None:
    record = activity({"_id": "1", "action": "click", **row})
    assert record["url"] == url
    assert_schema_order(record)
    for key, value in row.items():  # the properties stay complete in attributes
        assert record["attributes"][key] == value


def test_nested_url_keeps_field_order_with_name() -> None:
    record = activity({"action": "click", "message_name": "M", "properties": {"url": "https://u/"}})
    assert list(record)[-3:] == ["url", "name", "attributes"]


def test_link_key_is_not_a_url() -> None:
    record = activity({"action": "click", "system_properties.link": "hero-banner"})
    assert "url" not in record
    assert record["attributes"]["system_properties.link"] == "hero-banner"


@pytest.mark.parametrize(
    ("ids", "winner", "kept"),
    [
        ({"bmID": "b", "mdtID": "m"}, "b", {"mdtID": "m"}),
        ({"mdtID": "m", "bmID": "b"}, "b", {"mdtID": "m"}),
        ({"bmID": "", "mdtID": "m"}, "m", {}),
        ({"mdtID": "m"}, "m", {}),
        ({"msID": "s", "mdtID": "m"}, "s", {"mdtID": "m"}),
    ],
)
def test_message_id_priority(ids: dict[str, str], winner: str, kept: dict[str, str]) -> None:
    record = activity({"_id": "1", **ids})
    assert record["message_id"] == winner
    assert record["attributes"] == kept


def test_minimal_row_omits_absent_fields() -> None:
    record = activity({"action": "open"})
    assert set(record) == {
        "source",
        "stream",
        "kind",
        "account",
        "export_id",
        "record_id",
        "event_type",
        "attributes",
    }


def test_empty_row_still_gets_an_id_and_attributes() -> None:
    record = activity({})
    assert len(record["record_id"]) == 32
    assert record["attributes"] == {}


def test_empty_and_null_named_columns_are_absent_but_other_columns_are_kept() -> None:
    record = activity({"cID": "", "email": None, "first": "", "mcID": None, "time": ""})
    assert "contact_id" not in record and "email" not in record and "occurred_at" not in record
    # time feeds a transformed field, so its column is always kept (rule 1), even empty.
    assert record["attributes"] == {"first": "", "mcID": None, "time": ""}


def test_values_pass_through_verbatim() -> None:
    tricky = 'Quote "inside", comma, and\r\nCRLF 🎉 Åsa 山田'
    record = activity(
        {"message_name": tricky, "email": " Mixed.Case@Example.COM ", "properties.note": tricky}
    )
    assert record["name"] == tricky
    assert record["email"] == " Mixed.Case@Example.COM "
    assert record["attributes"]["properties.note"] == tricky


def test_json_integers_become_text_and_other_types_stay_attributes() -> None:
    record = activity({"cID": 12345, "_id": 99, "email": ["a@b"], "message_name": 1.5})
    assert record["contact_id"] == "12345"
    assert record["record_id"] == "99"
    assert "email" not in record and "name" not in record
    assert record["attributes"] == {"email": ["a@b"], "message_name": 1.5}


def test_huge_json_integers_survive() -> None:
    record = activity({"cID": 2**70, "count": 2**80})
    assert record["contact_id"] == str(2**70)
    assert record["attributes"] == {"count": 2**80}
    assert len(record["record_id"]) == 32


def test_case_insensitive_field_names() -> None:
    record = activity({"CID": "c", "Email": "e@x", "TIME": "2019-03-24"})
    assert record["contact_id"] == "c"
    assert record["email"] == "e@x"
    assert record["occurred_at"] == "2019-03-24T00:00:00.000Z"


def test_bad_time_is_a_row_error_naming_the_column() -> None:
    with pytest.raises(RowError, match=r"column 'Event Time': unparseable timestamp 'soon'"):
        activity({"Event Time": "soon"}, {"Event Time": "time"})


def test_every_timestamp_form_in_time() -> None:
    for value in ("2017-03-13T22:48:40+0000", "2017-03-13T18:48:40-04:00", 1489445320000):
        assert activity({"time": value})["occurred_at"] == "2017-03-13T22:48:40.000Z"


def test_record_id_is_the_vendor_id_else_a_stable_hash() -> None:
    row = {"cID": "c1", "action": "open", "time": "2017-03-13T22:48:40+0000"}
    first = one(normalize_contact_activity, row, ctx_for(ACTIVITY, export_id="job-1"))
    again = one(normalize_contact_activity, dict(row), ctx_for(ACTIVITY, export_id="job-2"))
    assert first["record_id"] == again["record_id"]  # same event, overlapping exports
    reordered = dict(reversed(list(row.items())))
    assert activity(reordered)["record_id"] == first["record_id"]
    assert activity({**row, "cID": "c2"})["record_id"] != first["record_id"]
    other_account = one(normalize_contact_activity, row, ctx_for(ACTIVITY, account="other"))
    assert other_account["record_id"] != first["record_id"]
    assert activity({**row, "_id": "vendor-id"})["record_id"] == "vendor-id"


def test_plans_follow_each_rows_keys() -> None:
    """Rows with different key sets (JSON lines) in one export, many times over."""
    ctx = ctx_for(ACTIVITY)
    for _ in range(40):  # past the compile threshold
        a = one(normalize_contact_activity, {"_id": "1", "action": "open", "cID": "c"}, ctx)
        b = one(normalize_contact_activity, {"cID": "c", "_id": "2", "x": "y"}, ctx)
        assert a["contact_id"] == b["contact_id"] == "c"
        assert a["event_type"] == "open" and "event_type" not in b
        assert b["attributes"] == {"x": "y"}


def test_labels_change_the_plan() -> None:
    row = {"Who": "c1"}
    assert activity(row)["attributes"] == {"Who": "c1"}
    assert activity(row, {"Who": "cID"})["contact_id"] == "c1"


def test_wrong_stream_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cordial\.contact_activity"):
        normalize_contact_activity(Row(1, {"a": "1"}), ctx_for(CONTACTS))


# --- contacts --------------------------------------------------------------------------------


def contact(data: dict[str, Any], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return one(normalize_contact, data, ctx_for(CONTACTS, labels))


def test_documented_contact_fields_and_lists() -> None:
    """The docs' S3 example: two fields and two lists, CSV with 1/0 list columns."""
    labels = list_column_labels(["monthly_newsletter", "weekly_specials"])
    row = {
        "channels.email.address": "msmith@example.com",
        "channels.email.subscribeStatus": "subscribed",
        "monthly_newsletter": "1",
        "weekly_specials": "0",
    }
    record = contact(row, labels)
    assert record == {
        "source": "cordial",
        "stream": CONTACTS,
        "kind": "contact",
        "account": "acme",
        "export_id": "job-1",
        "record_id": record["record_id"],
        "email": "msmith@example.com",
        "attributes": {
            "channels.email.subscribeStatus": "subscribed",
            "lists": {"monthly_newsletter": True, "weekly_specials": False},
        },
    }
    assert len(record["record_id"]) == 32
    assert_schema_order(record)


def test_list_ids_and_odd_membership_values() -> None:
    labels = list_column_labels([8756, 8757, 8758, 8759, 8760])
    row = {"email": "a@x", "8756": 1, "8757": "0", "8758": "", "8759": "yes", "8760": True}
    record = contact(row, labels)
    assert record["attributes"]["lists"] == {
        "8756": True,
        "8757": False,
        "8759": "yes",
        "8760": True,
    }


def test_undeclared_list_columns_stay_raw() -> None:
    record = contact({"email": "a@x", "monthly_newsletter": "1", "vip": "0"})
    assert record["attributes"] == {"monthly_newsletter": "1", "vip": "0"}


def test_a_source_field_named_lists_wins() -> None:
    labels = list_column_labels(["vip"])
    record = contact({"email": "a@x", "lists": ["vip", "news"], "vip": "1"}, labels)
    assert record["attributes"] == {"lists": ["vip", "news"], "vip": "1"}


@pytest.mark.parametrize(
    ("ids", "contact_id"),
    [
        ({"cID": "c", "_id": "o", "id": "i"}, "c"),
        ({"_id": "o", "id": "i"}, "o"),
        ({"id": "i"}, "i"),
        ({"id": 42}, "42"),
    ],
)
def test_contact_id_priority(ids: dict[str, Any], contact_id: str) -> None:
    record = contact({"email": "a@x", **ids})
    assert record["contact_id"] == record["record_id"] == contact_id
    assert "contact_id" in record and len(record["attributes"]) == len(ids) - 1


def test_simulator_style_contact_row() -> None:
    labels = list_column_labels(["monthly_newsletter", "weekly_specials", "vip", "nyhetsbrev"])
    row = {
        "id": "5c89",
        "channels.email.address": "anna.0@exempel.se",
        "channels.email.subscribeStatus": "unsubscribed",
        "first_name": "Åsa",
        "last_name": 'van "Dutch" Berg',
        "lastModified": "2026-10-15T16:24:14+0000",
        "monthly_newsletter": "1",
        "weekly_specials": "0",
        "vip": "0",
        "nyhetsbrev": "1",
    }
    record = contact(row, labels)
    assert "occurred_at" not in record
    assert record["attributes"]["lastModified"] == "2026-10-15T16:24:14+0000"
    assert record["attributes"]["last_name"] == 'van "Dutch" Berg'
    assert record["attributes"]["lists"] == {
        "monthly_newsletter": True,
        "weekly_specials": False,
        "vip": False,
        "nyhetsbrev": True,
    }


def test_nested_json_contact() -> None:
    row = {
        "_id": "5c89",
        "channels": {"email": {"address": "a@x", "subscribeStatus": "subscribed"}},
        "attributes": {"first_name": "Zoë"},
        "lists": ["vip"],
    }
    record = contact(row)
    assert record["email"] == "a@x"
    assert record["contact_id"] == "5c89"
    assert record["attributes"] == {k: v for k, v in row.items() if k != "_id"}
    assert_schema_order(record)


def test_contact_without_id_hashes_the_row() -> None:
    a = contact({"email": "a@x", "first_name": "A"})
    b = contact({"email": "a@x", "first_name": "B"})
    assert a["record_id"] != b["record_id"]
    assert contact({"email": "a@x", "first_name": "A"})["record_id"] == a["record_id"]


# --- audience trends -------------------------------------------------------------------------


def trends(data: dict[str, Any], **kw: str) -> list[dict[str, Any]]:
    return normalize_audience_trends(Row(2, data), ctx_for(TRENDS, **kw))


def test_unpivot_one_record_per_audience_and_day_across_dst() -> None:
    row = {"audience": "opened_last_30_days", "2024-03-09": "10", "2024-03-10": "11"}
    row |= {"2024-03-11": "12", "2024-11-03": "13", "2024-11-04": "0"}
    records = trends(row)
    assert [(r["occurred_at"], r["value"]) for r in records] == [
        ("2024-03-09T08:00:00.000Z", 10),
        ("2024-03-10T08:00:00.000Z", 11),
        ("2024-03-11T07:00:00.000Z", 12),
        ("2024-11-03T07:00:00.000Z", 13),
        ("2024-11-04T08:00:00.000Z", 0),
    ]
    for record in records:
        assert record["kind"] == "metric"
        assert record["name"] == "opened_last_30_days"
        assert record["attributes"] == {}
        assert_schema_order(record)
    assert len({record["record_id"] for record in records}) == len(records)


def test_docs_timeframe_and_audiences() -> None:
    """The docs' request: 2021-07-16 .. 2021-08-16, audiences audience1 and audience2."""
    import datetime as dt

    days = [dt.date(2021, 7, 16) + dt.timedelta(days=n) for n in range(32)]
    out = []
    for audience in ("audience1", "audience2"):
        out += trends({"Audience": audience, **{day.isoformat(): "5" for day in days}})
    assert len(out) == 64
    assert out[0]["occurred_at"] == "2021-07-16T07:00:00.000Z"
    assert out[-1]["occurred_at"] == "2021-08-16T07:00:00.000Z"
    assert {r["name"] for r in out} == {"audience1", "audience2"}


def test_other_columns_go_to_every_records_attributes() -> None:
    row = {"Total": "9", "Audience Name": "vip", "07/16/2021": "4", "7/17/2021": "5"}
    records = trends(row)
    assert [r["occurred_at"] for r in records] == [
        "2021-07-16T07:00:00.000Z",
        "2021-07-17T07:00:00.000Z",
    ]
    assert all(r["attributes"] == {"Total": "9"} and r["name"] == "vip" for r in records)
    assert records[0]["attributes"] is not records[1]["attributes"]


def test_first_non_day_column_names_the_audience_when_unlabelled() -> None:
    records = trends({"segment": "vip 🎉", "2021-07-16": "4"})
    assert records[0]["name"] == "vip 🎉" and records[0]["attributes"] == {}


def test_empty_day_cell_yields_no_record() -> None:
    records = trends({"audience": "a", "2021-07-16": "", "2021-07-17": "3"})
    assert [r["value"] for r in records] == [3]


@pytest.mark.parametrize("bad", ["1.5", "-3", "n/a", "1,234", "١٢"])
def test_non_numeric_count_is_a_row_error(bad: str) -> None:
    with pytest.raises(RowError, match="2021-07-16"):
        trends({"audience": "a", "2021-07-16": bad})


def test_rows_without_name_or_days_are_row_errors() -> None:
    with pytest.raises(RowError, match="no audience name"):
        trends({"audience": "", "2021-07-16": "1"})
    with pytest.raises(RowError, match="no audience name"):
        trends({"2021-07-16": "1"})
    with pytest.raises(RowError, match="no day columns"):
        trends({"audience": "a", "total": "1"})


def test_trend_record_id_is_account_audience_day() -> None:
    base = trends({"audience": "a", "2021-07-16": "1"}, export_id="j1")[0]["record_id"]
    assert trends({"audience": "a", "2021-07-16": "99"}, export_id="j2")[0]["record_id"] == base
    assert trends({"audience": "b", "2021-07-16": "1"})[0]["record_id"] != base
    assert trends({"audience": "a", "2021-07-17": "1"})[0]["record_id"] != base
    assert trends({"audience": "a", "2021-07-16": "1"}, account="x")[0]["record_id"] != base


@pytest.mark.parametrize(
    ("header", "day"),
    [
        ("2021-07-16", "2021-07-16"),
        ("2021/07/16", "2021-07-16"),
        ("07/16/2021", "2021-07-16"),
        ("7/6/2021", "2021-07-06"),
        (" 2021-07-16 ", "2021-07-16"),
        ("16-07-2021", None),
        ("2021-02-30", None),
        ("audience", None),
        ("2021-07", None),
        ("123/4/2021", None),
    ],
)
def test_day_headers(header: str, day: str | None) -> None:
    assert iso_day(header) == day


# --- losslessness (property) -----------------------------------------------------------------

_KNOWN = [
    *BOUNCE_EXAMPLE_HEADERS,
    *BOUNCE_EXAMPLE_LABELS,
    "a",
    "ats",
    "channels.email.address",
    "properties.url",
    "system_properties",
    "properties",
    "Contact Email",
    "system_properties_bt",
]
_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**12), max_value=10**14),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    st.sampled_from(["", "open", "bounce", "2017-03-13T22:48:40+0000", "https://x/"]),
)
_ROWS = st.dictionaries(st.one_of(st.sampled_from(_KNOWN), st.text(max_size=10)), _VALUES)


def assert_lossless(data: dict[str, Any], record: dict[str, Any], derived: set[str]) -> None:
    """Every non-empty source value is in attributes under its key, or verbatim in a field."""
    attributes = record["attributes"]
    named_values = [record[f] for f in FIELDS[5:-1] if f in record]
    for key, value in data.items():
        if key in attributes:
            assert attributes[key] == value or (key in derived and key == "lists")
            continue
        assert value is None or value == "" or id_text(value) in named_values, key
    assert set(attributes) <= set(data) | derived


@settings(max_examples=300, deadline=None)
@given(
    _ROWS, st.sampled_from([{}, {label: name for name, label in BOUNCE_EXAMPLE_HEADERS.items()}])
)
def test_activity_is_lossless(data: dict[str, Any], labels: dict[str, str]) -> None:
    try:
        record = activity(data, labels)
    except RowError as exc:
        assert exc.reason.startswith("column ")
        return
    assert_lossless(data, record, set())
    assert_schema_order(record)
    if "event_type" in record:
        assert record["event_type"] in EVENT_TYPES
    if "occurred_at" in record:
        assert to_utc_rfc3339(record["occurred_at"]) == record["occurred_at"]


@settings(max_examples=200, deadline=None)
@given(_ROWS, st.lists(st.sampled_from([*_KNOWN, "vip", "8756"]), max_size=3))
def test_contacts_are_lossless(data: dict[str, Any], lists: list[str]) -> None:
    record = contact(data, list_column_labels(lists))
    declared = {name for name in lists if name in data} if "lists" not in data else set()
    for name in declared:  # declared list columns are regrouped under attributes.lists
        value = data[name]
        if value is not None and value != "":
            assert name in record["attributes"]["lists"]
    rest = {k: v for k, v in data.items() if k not in declared}
    assert_lossless(rest, record, {"lists"} if declared else set())
