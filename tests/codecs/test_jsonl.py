"""JsonLinesParser: any split points, blank and bad lines, bounds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs.base import BadRow, ParsedItem, Row
from streamx.codecs.jsonl import JsonLinesParser, json_kind
from streamx.exceptions import FieldTooLargeError


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length + 1, duplicates allowed)."""
    points = sorted(cut % (len(data) + 1) for cut in cuts)
    pieces, prev = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[prev:point])
        prev = point
    return pieces


def parse(pieces: list[bytes] | bytes, **options: int) -> list[ParsedItem]:
    parser = JsonLinesParser(**options)
    out: list[ParsedItem] = []
    for piece in [pieces] if isinstance(pieces, bytes) else pieces:
        out += parser.feed(piece)
    return out + parser.flush()


TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(list('Å日本😀"\\\n{}[],')), st.characters(codec="utf-8"))
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=10,
)
OBJECTS = st.dictionaries(TEXT, JSON, max_size=5)


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(
        st.tuples(OBJECTS, st.sampled_from(["\n", "\r\n", "\n\n", "\n \t\n"])), max_size=8
    ),
    bom=st.booleans(),
    last_newline=st.booleans(),
    cuts=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_any_split_reads_every_object_with_its_line(
    records: list[tuple[dict[str, Any], str]], bom: bool, last_newline: bool, cuts: list[int]
) -> None:
    data, expected, line = b"\xef\xbb\xbf" if bom else b"", [], 1
    for record, ending in records:
        data += orjson.dumps(record) + ending.encode()
        expected.append(Row(line, record))
        line += ending.count("\n")
    if not last_newline and data.endswith(b"\n") and records:
        data = data.rstrip(b"\r\n \t")
    assert parse(split(data, cuts)) == expected


def test_bad_lines_are_quarantined_and_blank_lines_counted() -> None:
    data = b'{"a":1}\n\n[1,2]\n  \n"text"\n{"a":\n\xff{}\n{"a":2}\r\n42'
    out = parse(data)
    assert [(item.line, type(item).__name__) for item in out] == [
        (1, "Row"),
        (3, "BadRow"),
        (5, "BadRow"),
        (6, "BadRow"),
        (7, "BadRow"),
        (8, "Row"),
        (9, "BadRow"),
    ]
    assert out[1] == BadRow(3, "expected a JSON object, got array", "[1,2]")
    assert out[2] == BadRow(5, "expected a JSON object, got string", '"text"')
    bad_json = out[3]
    assert isinstance(bad_json, BadRow) and bad_json.reason.startswith("invalid JSON")
    assert bad_json.raw == '{"a":'
    bad_utf8 = out[4]
    assert isinstance(bad_utf8, BadRow) and bad_utf8.raw == "\\xff{}"
    assert out[5] == Row(8, {"a": 2})
    assert out[6] == BadRow(9, "expected a JSON object, got number", "42")
    assert parse([data[i : i + 1] for i in range(len(data))]) == out


def test_bom_split_and_crlf() -> None:
    data = b'\xef\xbb\xbf{"x":"\xc3\x85"}\r\n{"x":"\xe6\x97\xa5"}\r\n'
    for cut in range(len(data) + 1):
        assert parse([data[:cut], data[cut:]]) == [Row(1, {"x": "Å"}), Row(2, {"x": "日"})]


def test_empty_input() -> None:
    assert parse(b"") == []
    assert parse(b"\n\n  \n") == []


def test_line_longer_than_the_bound_in_one_chunk() -> None:
    data = b'{"a":1}\n{"a":"' + b"x" * 500 + b'"}\n'
    with pytest.raises(FieldTooLargeError) as caught:
        parse(data, max_line_bytes=100)
    assert caught.value.line == 2


def test_line_longer_than_the_bound_fails_before_the_end() -> None:
    parser = JsonLinesParser(max_line_bytes=1000)
    assert parser.feed(b'{"a":1}\n\n') == [Row(1, {"a": 1})]
    with pytest.raises(FieldTooLargeError) as caught:
        for _ in range(100):
            parser.feed(b"x" * 100)
    assert caught.value.line == 3


def test_deep_nesting_is_a_bad_row_not_a_recursion_error() -> None:
    data = b"[" * 100_000 + b"]" * 100_000 + b'\n{"ok":true}\n'
    out = parse(data)
    assert out[1] == Row(2, {"ok": True})
    assert isinstance(out[0], BadRow)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "null"),
        (True, "boolean"),
        (1, "number"),
        (1.5, "number"),
        ("s", "string"),
        ([], "array"),
        ({}, "object"),
    ],
)
def test_json_kind(value: object, kind: str) -> None:
    assert json_kind(value) == kind
