"""sniff_format, make_parser and SniffingParser."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs.base import ParsedItem, Row
from streamx.codecs.csv import CsvParser
from streamx.codecs.jsonarray import JsonArrayParser
from streamx.codecs.jsonl import JsonLinesParser
from streamx.codecs.sniff import SNIFF_BYTES, SniffingParser, make_parser, sniff_format
from streamx.exceptions import ConfigError, CorruptInputError


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length + 1, duplicates allowed)."""
    points = sorted(cut % (len(data) + 1) for cut in cuts)
    pieces, prev = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[prev:point])
        prev = point
    return pieces


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"id,name\n1,Ann\n", "csv"),
        (b'"quoted header",x\n', "csv"),
        (b"", "csv"),
        (b"\xef\xbb\xbf\r\n  id\tname\n", "csv"),
        (b"[]", "json_array"),
        (b'\xef\xbb\xbf \n\t[{"a": 1}', "json_array"),
        (b'{"a": 1}\n{"a": 2}\n', "jsonl"),
        (b'\xef\xbb\xbf\n\n {"a": 1}\r\n{"a": 2', "jsonl"),
        (b'{"a": 1}', "jsonl"),
        (b'{"a": 1}\n', "jsonl"),
        (b'{"a": 1, "tags": [1, 2], "empty": []}\n', "jsonl"),
        (b'{"meta": {"n": 2}, "data": [{"a": 1}, {"a": 2}]}', "json_object"),
        (b'{\n  "data": [\n    {"a": 1}\n  ]\n}\n', "json_object"),
        (b'{"data": [{"a": 1}, {"a": 2', "json_object"),
        (b'{"a": 1', "json_object"),
    ],
)
def test_sniff_format(prefix: bytes, expected: str) -> None:
    assert sniff_format(prefix) == expected


def test_sniff_ignores_the_file_name_and_looks_only_at_bytes() -> None:
    # A "_result.json" file whose content is CSV is CSV.
    assert sniff_format(b"eventId,contactId\n1,2\n") == "csv"


def test_make_parser() -> None:
    assert isinstance(make_parser("csv", header=False), CsvParser)
    assert isinstance(make_parser("jsonl", max_line_bytes=10), JsonLinesParser)
    assert isinstance(make_parser("json_array"), JsonArrayParser)
    assert isinstance(make_parser("json_object"), JsonArrayParser)
    with pytest.raises(ConfigError, match="unknown input format"):
        make_parser("xml")
    with pytest.raises(ConfigError, match="invalid options"):
        make_parser("jsonl", header=True)


def feed_all(parser: SniffingParser, pieces: list[bytes]) -> list[ParsedItem]:
    out: list[ParsedItem] = []
    for piece in pieces:
        out += parser.feed(piece)
    return out + parser.flush()


CSV = 'id,name\n1,Åsa\n2,"日本\nx"\n'.encode()
JSONL = '{"id": 1, "name": "Åsa"}\n\n{"id": 2, "name": "日本"}\n'.encode()
ARRAY = '[{"id": 1, "name": "Åsa"},\n {"id": 2, "name": "日本"}]'.encode()
ENVELOPE = (
    '{"meta": {"v": 1},\n "rows": [{"id": 1, "name": "Åsa"},\n {"id": 2, "name": "日本"}]}'.encode()
)


@settings(max_examples=100, deadline=None)
@given(
    case=st.sampled_from(
        [(CSV, "csv"), (JSONL, "jsonl"), (ARRAY, "json_array"), (ENVELOPE, "json_object")]
    ),
    bom=st.booleans(),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_sniffing_parser_matches_the_direct_parser(
    case: tuple[bytes, str], bom: bool, cuts: list[int]
) -> None:
    data, fmt = case
    data = b"\xef\xbb\xbf" + data if bom else data
    direct = make_parser(fmt)
    expected = direct.feed(data) + direct.flush()
    parser = SniffingParser()
    assert feed_all(parser, split(data, cuts)) == expected
    assert parser.format == fmt
    assert len(expected) == 2


def test_format_is_decided_at_flush_for_short_input() -> None:
    parser = SniffingParser()
    assert parser.feed(ARRAY) == []
    assert parser.format is None and parser.parser is None
    assert parser.flush() == [Row(1, {"id": 1, "name": "Åsa"}), Row(2, {"id": 2, "name": "日本"})]
    assert parser.format == "json_array"


def test_format_is_decided_once_sniff_bytes_arrived() -> None:
    records = b"".join(orjson.dumps({"i": index}) + b"\n" for index in range(20_000))
    assert len(records) > 2 * SNIFF_BYTES
    parser = SniffingParser()
    out = parser.feed(records[: SNIFF_BYTES - 1])
    assert out == [] and parser.parser is None
    out += parser.feed(records[SNIFF_BYTES - 1 : 2 * SNIFF_BYTES])
    assert parser.format == "jsonl"
    assert out and isinstance(out[0], Row) and out[0].data == {"i": 0}
    out += parser.feed(records[2 * SNIFF_BYTES :]) + parser.flush()
    assert [item.data for item in out if isinstance(item, Row)] == [{"i": i} for i in range(20_000)]


def test_options_go_to_the_chosen_parser() -> None:
    parser = SniffingParser(csv_options={"header": False}, jsonl_options={"max_line_bytes": 5})
    assert feed_all(parser, [b"1,2\n"]) == [Row(1, {"col_1": "1", "col_2": "2"})]


def test_envelope_is_exposed() -> None:
    parser = SniffingParser()
    feed_all(parser, [ENVELOPE])
    assert parser.envelope == {"meta": {"v": 1}}
    csv_parser = SniffingParser()
    feed_all(csv_parser, [CSV])
    assert csv_parser.envelope == {}


def test_errors_of_the_chosen_parser_propagate() -> None:
    with pytest.raises(CorruptInputError, match="truncated"):
        feed_all(SniffingParser(), [ARRAY[:-1]])
