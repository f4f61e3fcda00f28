"""JsonArrayParser: any split points, envelopes, structure errors, bounds, depth."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs.base import BadRow, ParsedItem, Row
from streamx.codecs.jsonarray import JsonArrayParser
from streamx.exceptions import CorruptInputError, FieldTooLargeError


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length + 1, duplicates allowed)."""
    points = sorted(cut % (len(data) + 1) for cut in cuts)
    pieces, prev = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[prev:point])
        prev = point
    return pieces


def parse(pieces: list[bytes] | bytes, **options: int) -> tuple[list[ParsedItem], dict[str, Any]]:
    parser = JsonArrayParser(**options)
    out: list[ParsedItem] = []
    for piece in [pieces] if isinstance(pieces, bytes) else pieces:
        out += parser.feed(piece)
    out += parser.flush()
    return out, parser.envelope


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(list('Å日本😀"\\\n{}[],:')), st.characters(codec="utf-8"))
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=12,
)
OBJECTS = st.dictionaries(TEXT, JSON, max_size=5)


def document(items: list[dict[str, Any]], pretty: bool) -> tuple[bytes, list[int]]:
    """A JSON array of ``items`` and the line each item starts on."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    data, lines = b"[", []
    for index, item in enumerate(items):
        data += (b",\n " if pretty else b",") if index else (b"\n " if pretty else b"")
        lines.append(data.count(b"\n") + 1)
        data += orjson.dumps(item, option=option)
    return data + (b"\n]\n" if pretty else b"]"), lines


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(OBJECTS, max_size=8),
    pretty=st.booleans(),
    cuts=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_any_split_reads_every_item_with_its_line(
    items: list[dict[str, Any]], pretty: bool, cuts: list[int]
) -> None:
    data, lines = document(items, pretty)
    expected = [Row(line, item) for line, item in zip(lines, items, strict=True)]
    assert parse(split(data, cuts)) == (expected, {})


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(OBJECTS, max_size=5),
    before=st.dictionaries(TEXT, JSON, max_size=3),
    after=st.dictionaries(TEXT, JSON, max_size=3),
    cuts=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_envelope_object_streams_its_record_array(
    items: list[dict[str, Any]],
    before: dict[str, Any],
    after: dict[str, Any],
    cuts: list[int],
) -> None:
    # Members before the records must not themselves look like a record array.
    before = {key: value for key, value in before.items() if not _record_array(value)}
    after = {key: value for key, value in after.items() if key not in before}
    records_key = "records-" + "".join(before) + "".join(after)
    body = orjson.dumps(before)[:-1]
    data = body + (b"," if before else b"") + orjson.dumps(records_key) + b":"
    data += orjson.dumps(items) + (b"," if after else b"") + orjson.dumps(after)[1:]
    expected = [Row(1, item) for item in items]
    assert parse(split(data, cuts)) == (expected, {**before, **after})


def _record_array(value: object) -> bool:
    return isinstance(value, list) and (not value or isinstance(value[0], dict))


SAMPLE = (
    '\ufeff {\n  "meta": {"count": 3, "list": [1, 2]},\n  "names": ["x"],\n  "data": [\n'
    '    {"id": 1, "s": "Å}]\\"\\\\"},\n'
    '    {"id": 2, "nested": {"a": [{"b": "日本"}]}},\n'
    "    7,\n"
    '    {"id": tru},\n'
    '    {"id": 3, "emoji": "😀"}\n'
    "  ],\n"
    '  "after": null\n'
    "}\n"
).encode()


def test_sample_with_every_kind_of_item() -> None:
    out, envelope = parse(SAMPLE)
    assert envelope == {"meta": {"count": 3, "list": [1, 2]}, "names": ["x"], "after": None}
    assert out[0] == Row(5, {"id": 1, "s": 'Å}]"\\'})
    assert out[1] == Row(6, {"id": 2, "nested": {"a": [{"b": "日本"}]}})
    assert out[2] == BadRow(7, "expected a JSON object, got number", "7")
    bad = out[3]
    assert isinstance(bad, BadRow) and bad.line == 8 and bad.raw == '{"id": tru}'
    assert bad.reason.startswith("invalid JSON")
    assert out[4] == Row(9, {"id": 3, "emoji": "😀"})
    assert len(out) == 5


def test_sample_every_two_way_split_and_byte_by_byte() -> None:
    whole = parse(SAMPLE)
    for cut in range(len(SAMPLE) + 1):
        assert parse([SAMPLE[:cut], SAMPLE[cut:]]) == whole, cut
    assert parse(bytewise(SAMPLE)) == whole


def test_every_truncation_is_an_error_at_flush() -> None:
    data = b'{"m": 1, "data": [{"a": 1}, {"b": "x]"}]}'
    for cut in range(len(data)):
        with pytest.raises(CorruptInputError, match=r"truncated|empty"):
            parse(data[:cut])


def test_truncated_item_names_the_line_it_starts_on() -> None:
    with pytest.raises(CorruptInputError, match="inside an array item") as caught:
        parse(b'[\n{"a": 1},\n{"a": "cut')
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"a":1}] {"b":2}', "after the end"),
        (b'{"data":[{"a":1}]}x', "after the end"),
        (b'[{"a":1} {"b":2}]', "expected ',' or ']'"),
        (b'[{"a":1},]', "expected an array item"),
        (b'[,{"a":1}]', "expected an array item"),
        (b'{"a": 1}', "no array of records"),
        (b"{}", "no array of records"),
        (b'{"a": [1, 2]}', "no array of records"),
        (b'{"data": [{"a":1}] "x": 1}', "expected ',' or '}'"),
        (b'{"data" [{"a":1}]}', "expected ':'"),
        (b"{data: []}", "member name"),
        (b'{"x": }', "expected a value"),
        (b'{"x": tru, "data": []}', "invalid JSON in the top-level object"),
        (b"a,b\n1,2\n", "expected a JSON array or object"),
        (b"", "empty document"),
        (b"  \n ", "empty document"),
    ],
)
def test_broken_structure_is_corrupt_input(data: bytes, message: str) -> None:
    for pieces in ([data], bytewise(data)):
        with pytest.raises(CorruptInputError, match=message):
            parse(pieces)


def test_empty_record_arrays() -> None:
    assert parse(b"[]") == ([], {})
    assert parse(b" [ \n ] \n") == ([], {})
    assert parse(b'{"meta": 1, "data": []}') == ([], {"meta": 1})


def test_first_array_of_objects_is_the_record_array() -> None:
    data = b'{"ids": [1, 2], "data": [{"a": 1}], "more": [{"b": 2}]}'
    assert parse(data) == ([Row(1, {"a": 1})], {"ids": [1, 2], "more": [{"b": 2}]})


def test_non_object_and_invalid_items_are_quarantined() -> None:
    data = b'[{"a":1}, [1], "s", null, 3.5, {"a":}, {"a":2}]'
    out, _ = parse(data)
    assert [type(item).__name__ for item in out] == ["Row", *["BadRow"] * 5, "Row"]
    assert [item.raw for item in out if isinstance(item, BadRow)] == [
        "[1]",
        '"s"',
        "null",
        "3.5",
        '{"a":}',
    ]
    assert parse(bytewise(data)) == (out, {})


def test_deep_nesting_is_quarantined_without_recursion() -> None:
    deep = b'{"x":' * 100_000 + b"1" + b"}" * 100_000
    out, _ = parse(b"[" + deep + b', {"ok": 1}]')
    assert isinstance(out[0], BadRow) and "deeper than 512" in out[0].reason
    assert out[1] == Row(1, {"ok": 1})


def test_deep_nesting_in_the_envelope_is_corrupt_input() -> None:
    with pytest.raises(CorruptInputError, match="deeper than 512"):
        parse(b'{"meta": ' + b"[" * 600 + b"]" * 600 + b', "data": []}')


def test_nesting_at_the_limit_is_fine() -> None:
    item = b'{"x":' + b"[" * 510 + b"]" * 510 + b"}"
    assert parse(b"[" + item + b"]") == ([Row(1, {"x": orjson.loads(item)["x"]})], {})


def test_item_larger_than_the_bound_complete_in_one_chunk() -> None:
    data = b'[\n{"a": 1},\n{"a": "' + b"x" * 500 + b'"}]'
    with pytest.raises(FieldTooLargeError) as caught:
        parse(data, max_item_bytes=100)
    assert caught.value.line == 3


def test_item_larger_than_the_bound_fails_before_the_end() -> None:
    parser = JsonArrayParser(max_item_bytes=1000)
    assert parser.feed(b'[{"a": 1},\n{"a": "') == [Row(1, {"a": 1})]
    with pytest.raises(FieldTooLargeError) as caught:
        for _ in range(100):
            parser.feed(b"x" * 100)
    assert caught.value.line == 2


def test_envelope_member_larger_than_the_bound() -> None:
    with pytest.raises(FieldTooLargeError, match="top-level member"):
        parse(b'{"meta": "' + b"m" * 500 + b'", "data": []}', max_item_bytes=100)


def test_large_item_spanning_many_chunks() -> None:
    value = 'Å\\"}]' * 50_000
    item = {"big": value, "n": [{"k": value[:10]}]}
    data = b'[{"a": 0}, ' + orjson.dumps(item) + b', {"a": 1}]'
    out, _ = parse(split(data, list(range(0, len(data), 1001))))
    assert out == [Row(1, {"a": 0}), Row(1, item), Row(1, {"a": 1})]


def test_many_items_in_small_chunks_keep_line_numbers() -> None:
    items = [{"i": index, "s": "x" * (index % 7)} for index in range(2000)]
    data = b"[\n" + b",\n".join(orjson.dumps(item) for item in items) + b"\n]"
    out, _ = parse(split(data, list(range(0, len(data), 333))))
    assert out == [Row(index + 2, item) for index, item in enumerate(items)]
