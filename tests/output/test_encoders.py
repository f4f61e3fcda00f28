"""Record encoders: JSON lines and CSV produce what standard readers read back unchanged."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamx.exceptions import ConfigError, StreamxError
from streamx.records import FIELDS
from streamx.writers.csv import CsvEncoder
from streamx.writers.encoders import ENCODERS, get_encoder
from streamx.writers.jsonl import JsonLinesEncoder


def _record(i: int, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "source": "cordial",
        "stream": "cordial.contact_activity",
        "kind": "event",
        "account": "acme",
        "export_id": "job-1",
        "record_id": f"r{i}",
        "occurred_at": "2024-05-01T10:00:00.000Z",
        "event_type": "open",
        "contact_id": str(i),
        "email": f"user{i}@example.com",
        "attributes": {"n": i, "text": 'comma, "quote"\nnewline', "nested": {"a": [1, None]}},
    }
    record.update(extra)
    return record


def _read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_jsonl_one_line_per_record_in_field_order() -> None:
    records = [_record(i) for i in range(5)]
    lines = JsonLinesEncoder().encode(records)
    assert len(lines) == 5
    for line, record in zip(lines, records, strict=True):
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        decoded = orjson.loads(line)
        assert decoded == record
        assert list(decoded) == [name for name in FIELDS if name in record]


def test_jsonl_has_no_header_or_footer() -> None:
    encoder = JsonLinesEncoder()
    assert encoder.header() == b"" and encoder.footer() == b""
    assert encoder.encode([]) == []


def test_jsonl_integer_wider_than_64_bits_is_written_not_refused() -> None:
    records = [_record(0), _record(1, value=2**70), _record(2)]
    lines = JsonLinesEncoder().encode(records)
    assert [json.loads(line) for line in lines] == records


def test_csv_header_once_then_one_row_per_record() -> None:
    encoder = CsvEncoder()
    header = encoder.header()
    assert header == (",".join(FIELDS) + "\r\n").encode()
    records = [_record(i, value=i * 10) for i in range(3)]
    rows = encoder.encode(records)
    assert len(rows) == 3
    for row in rows:  # every element is a complete CSV row on its own
        assert len(list(csv.reader(io.StringIO(row.decode(), newline="")))) == 1
    parsed = _read_csv(header + b"".join(rows))
    for cells, record in zip(parsed, records, strict=True):
        assert list(cells) == list(FIELDS)
        assert json.loads(cells["attributes"]) == record["attributes"]
        assert cells["value"] == str(record["value"])
        assert cells["email"] == record["email"]


def test_csv_none_and_missing_are_empty_cells() -> None:
    record = {"source": "symplify", "record_id": "x", "email": None}
    (row,) = _read_csv(CsvEncoder().header() + b"".join(CsvEncoder().encode([record])))
    assert row["source"] == "symplify" and row["record_id"] == "x"
    assert row["email"] == "" and row["attributes"] == "" and row["value"] == ""


def test_csv_non_string_values() -> None:
    records = [_record(0, value=1.5), _record(1, value=True), _record(2, value=[1, "a"])]
    rows = _read_csv(CsvEncoder().header() + b"".join(CsvEncoder().encode(records)))
    assert [row["value"] for row in rows] == ["1.5", "true", '[1,"a"]']


@pytest.mark.parametrize("text", ["a\rb", "x\r", "\n", "a\r\nb", '"', ",", " lead"])
def test_csv_line_breaks_and_quotes_in_fields_survive(text: str) -> None:
    record = _record(0, email=text, name=text)
    (row,) = _read_csv(CsvEncoder().header() + b"".join(CsvEncoder().encode([record])))
    assert row["email"] == text and row["name"] == text


def test_csv_refuses_keys_outside_the_schema() -> None:
    with pytest.raises(StreamxError, match="unexpected_key"):
        CsvEncoder().encode([_record(0, unexpected_key="lost?")])


def test_registry_and_unknown_format() -> None:
    assert set(ENCODERS) >= {"jsonl", "csv"}
    assert isinstance(get_encoder("jsonl"), JsonLinesEncoder)
    assert get_encoder("csv").extension == "csv"
    with pytest.raises(ConfigError, match="known: csv, jsonl"):
        get_encoder("xml")


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@example(email="\r", name="a\r\n", attributes={"\r": "\n"})
@given(email=_text, name=_text, attributes=st.dictionaries(_text, _json_value, max_size=4))
def test_round_trip_arbitrary_text(email: str, name: str, attributes: dict[str, Any]) -> None:
    record = _record(0, email=email, name=name, attributes=attributes)
    (line,) = JsonLinesEncoder().encode([record])
    assert orjson.loads(line) == record
    (row,) = _read_csv(CsvEncoder().header() + b"".join(CsvEncoder().encode([record])))
    assert row["email"] == email and row["name"] == name
    assert json.loads(row["attributes"]) == attributes
