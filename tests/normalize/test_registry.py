"""The stream -> normalizer registry, and properties every normalizer shares."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamx.codecs.base import Row
from streamx.exceptions import ConfigError
from streamx.normalize.base import ExportContext
from streamx.normalize.cordial import list_column_labels
from streamx.normalize.registry import NORMALIZERS, get_normalizer
from streamx.records import EVENT_TYPES, FIELDS, STREAMS
from streamx.testing import data as sample


def test_one_normalizer_per_stream() -> None:
    assert set(NORMALIZERS) == set(STREAMS)
    for stream in STREAMS:
        assert get_normalizer(stream) is NORMALIZERS[stream]


def test_unknown_stream_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        get_normalizer("symplify.unsubscribes")
    message = str(caught.value)
    assert "symplify.unsubscribes" in message
    assert all(stream in message for stream in STREAMS)


def _window() -> sample.Window:
    return sample.Window.days_back(2)


def _stringify(row: dict[str, Any]) -> dict[str, str]:
    """A JSON row as a CSV parser would hand it over: flat keys, text values."""
    return {key: "" if value is None else str(value) for key, value in sample.flatten(row).items()}


def sample_rows(stream: str, count: int) -> Iterator[dict[str, Any]]:
    info = STREAMS[stream]
    if stream == "cordial.contact_activity":
        yield from sample.cordial_activity_rows(3, rows=count, window=_window())
    elif stream == "cordial.contacts":
        yield from sample.cordial_contact_rows(3, rows=count)
    elif stream == "cordial.audience_trends":
        days = [dt.date(2024, 3, 8) + dt.timedelta(days=n) for n in range(5)]
        yield from sample.cordial_audience_trend_rows(3, days=days)
    else:
        yield from sample.symplify_rows(
            3, export_type=info.vendor_export, rows=count, window=_window()
        )


def context(stream: str, export_id: str = "exp-1") -> ExportContext:
    info = STREAMS[stream]
    labels = list_column_labels(sample.LISTS) if stream == "cordial.contacts" else {}
    return ExportContext(info.source, stream, "acct", export_id, labels)


def normalize_all(stream: str, rows: list[dict[str, Any]], export_id: str) -> list[dict[str, Any]]:
    normalizer = get_normalizer(stream)
    ctx = context(stream, export_id)
    out: list[dict[str, Any]] = []
    for line, row in enumerate(rows, 1):
        out.extend(normalizer(Row(line, row), ctx))
    return out


@pytest.mark.parametrize("stream", list(STREAMS))
@pytest.mark.parametrize("shape", ["json", "csv"])
def test_every_stream_yields_schema_records(stream: str, shape: str) -> None:
    info = STREAMS[stream]
    rows = list(sample_rows(stream, 60))
    if shape == "csv":
        rows = [_stringify(row) for row in rows]
    records = normalize_all(stream, rows, "exp-1")
    assert records
    for record in records:
        assert list(record) == [field for field in FIELDS if field in record]
        assert record["source"] == info.source and record["stream"] == stream
        assert record["kind"] == info.kind
        assert (record["account"], record["export_id"]) == ("acct", "exp-1")
        assert isinstance(record["attributes"], dict)
        assert all(value is not None for value in record.values())
        if info.kind in ("event", "metric"):
            assert record["occurred_at"].endswith("Z") and len(record["occurred_at"]) == 24
        if info.kind == "event":
            assert record["event_type"] in EVENT_TYPES
        if info.event_type is not None:
            assert record["event_type"] == info.event_type
    # record ids: unique within the export, identical when the same rows are exported again
    ids = [record["record_id"] for record in records]
    assert len(set(ids)) == len(ids)
    assert [r["record_id"] for r in normalize_all(stream, rows, "exp-2")] == ids


def test_csv_and_json_shapes_agree_on_named_fields() -> None:
    """The same activity rows as JSON lines and as CSV give the same named fields."""
    rows = list(sample_rows("cordial.contact_activity", 80))
    as_json = normalize_all("cordial.contact_activity", rows, "e")
    as_csv = normalize_all("cordial.contact_activity", [_stringify(r) for r in rows], "e")
    named = [f for f in FIELDS if f != "attributes"]
    for json_record, csv_record in zip(as_json, as_csv, strict=True):
        assert {f: json_record.get(f) for f in named} == {f: csv_record.get(f) for f in named}


#: The inputs behind the examples of docs/schema.md, in the order the examples appear.
DOC_EXAMPLES: list[tuple[ExportContext, dict[str, Any], int]] = [
    (
        ExportContext("cordial", "cordial.contact_activity", "acme", "5f1a0c2e9b1d4a0012ab34cd"),
        {
            "_id": "5c8995ee1a02a5007ec6ad6e",
            "cID": "5c8995ed8b1c4e3a2c2f1a11",
            "action": "click",
            "time": "2019-03-24T17:05:12+0000",
            "email": "anna@example.com",
            "bmID": "45:5a7d2a3cc7280b410:ot",
            "mcID": "45:5a7d2a3cc7280b410:ot:5c8995ed8b1c4e3a2c2f1a11",
            "mdtID": "",
            "first": "1",
            "message_name": "Spring sale",
            "properties.ref": "hero",
            "system_properties.rl": "https://shop.example.com/spring?utm_source=email",
            "system_properties.link": "hero-banner",
        },
        0,
    ),
    (
        ExportContext(
            "cordial",
            "cordial.contact_activity",
            "acme",
            "5f1a0c2e9b1d4a0012ab34ce",
            {"msID": "bmID", "system_properties_bt": "system_properties.bt"},
        ),
        {
            "_id": "5a8f0d2b1c9e77001f3e2a10",
            "action": "bounce",
            "email": "bo@example.org",
            "cID": "5a8f0c111c9e77001f3e29ff",
            "msID": "12:5a7d2a3cc7280b410:ot",
            "time": "2018-02-03T08:14:55+0000",
            "system_properties_bt": "soft",
        },
        0,
    ),
    (
        ExportContext("cordial", "cordial.contact_activity", "acme", "5f1a0c2e9b1d4a0012ab34cf"),
        {
            "_id": "5a8f0d2b1c9e77001f3e2a11",
            "action": "wishlist-add",
            "cID": "5a8f0c111c9e77001f3e29ff",
            "time": "2018-02-03T08:15:00-04:00",
            "properties": {"sku": "SKU-1", "price": 19.9},
        },
        0,
    ),
    (
        ExportContext(
            "cordial",
            "cordial.contacts",
            "acme",
            "61b7",
            list_column_labels(["monthly_newsletter", "weekly_specials"]),
        ),
        {
            "channels.email.address": "anna@example.com",
            "channels.email.subscribeStatus": "subscribed",
            "first_name": "Anna",
            "monthly_newsletter": "1",
            "weekly_specials": "0",
        },
        0,
    ),
    (
        ExportContext("cordial", "cordial.audience_trends", "acme", "61b8"),
        {"audience": "opened_last_30_days", "2024-03-09": "1200", "2024-03-10": "1250"},
        1,
    ),
    (
        ExportContext("symplify", "symplify.opens", "5004", "101111"),
        {
            "eventId": "4095949568",
            "contactId": "82363094",
            "email": "anna@example.se",
            "campaignId": "55844",
            "messageId": "7364993",
            "messageType": "EMAIL",
            "timestamp": 1394636797030,
            "sentTimestamp": 1394630000000,
        },
        0,
    ),
]


def test_schema_doc_examples_are_what_the_code_produces() -> None:
    """docs/schema.md is the contract: its example records must stay exactly true."""
    doc = (Path(__file__).parents[2] / "docs" / "schema.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", doc, flags=re.DOTALL)
    assert len(blocks) == len(DOC_EXAMPLES)
    for block, (ctx, row, index) in zip(blocks, DOC_EXAMPLES, strict=True):
        produced = get_normalizer(ctx.stream)(Row(1, row), ctx)[index]
        assert json.loads(block) == produced
        assert list(json.loads(block)) == list(produced)  # key order too
