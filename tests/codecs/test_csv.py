"""CsvParser: any split points, strict quoting, quarantine, bounds, header handling."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamx.codecs.base import BadRow, ParsedItem, Row
from streamx.codecs.csv import CsvParser, unique_names
from streamx.exceptions import ConfigError, CorruptInputError, FieldTooLargeError


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length + 1, duplicates allowed)."""
    points = sorted(cut % (len(data) + 1) for cut in cuts)
    pieces, prev = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[prev:point])
        prev = point
    return pieces


def parse(pieces: list[bytes] | bytes, **options: object) -> list[ParsedItem]:
    parser = CsvParser(**options)  # type: ignore[arg-type]
    out: list[ParsedItem] = []
    for piece in [pieces] if isinstance(pieces, bytes) else pieces:
        out += parser.feed(piece)
    return out + parser.flush()


def rows(items: list[ParsedItem]) -> list[tuple[int, dict[str, object]]]:
    assert all(isinstance(item, Row) for item in items), items
    return [(item.line, item.data) for item in items if isinstance(item, Row)]


SAMPLE = (
    "\ufeffname,city,note\r\n"
    'Åsa,日本,"multi\nline ""quoted"" 😀"\r\n'
    "\r\n"
    'Bo,"Malmö, SE",\r\n'
    '"","",""\n'
    "Å,ö,last without newline"
).encode()

SAMPLE_ROWS = [
    (2, {"name": "Åsa", "city": "日本", "note": 'multi\nline "quoted" 😀'}),
    (5, {"name": "Bo", "city": "Malmö, SE", "note": ""}),
    (6, {"name": "", "city": "", "note": ""}),
    (7, {"name": "Å", "city": "ö", "note": "last without newline"}),
]


def test_sample_parses() -> None:
    assert rows(parse(SAMPLE)) == SAMPLE_ROWS


def test_every_two_way_split_gives_the_same_rows() -> None:
    for cut in range(len(SAMPLE) + 1):
        assert rows(parse([SAMPLE[:cut], SAMPLE[cut:]])) == SAMPLE_ROWS, cut


def test_byte_by_byte() -> None:
    assert rows(parse([SAMPLE[i : i + 1] for i in range(len(SAMPLE))])) == SAMPLE_ROWS


FIELD = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(',"\n\r;\t Åö日本😀')),
        st.characters(codec="utf-8", exclude_characters="\ufeff"),
    ),
    max_size=8,
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(1, 5))
    header = draw(st.lists(FIELD.filter(bool), min_size=width, max_size=width, unique=True))
    body = draw(st.lists(st.lists(FIELD, min_size=width, max_size=width), max_size=12))
    return header, body


def written(records: list[list[str]], terminator: str) -> tuple[bytes, list[int]]:
    """The CSV bytes ``csv.writer`` produces, and the line each record starts on."""
    text, lines, line = io.StringIO(), [], 1
    for record in records:
        one = io.StringIO()
        csv.writer(one, lineterminator=terminator).writerow(record)
        lines.append(line)
        line += one.getvalue().count("\n")
        text.write(one.getvalue())
    return text.getvalue().encode(), lines


@settings(max_examples=300, deadline=None)
@given(
    table=tables(),
    terminator=st.sampled_from(["\r\n", "\n"]),
    bom=st.booleans(),
    cuts=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_tables_written_by_csv_writer_read_back_exactly(
    table: tuple[list[str], list[list[str]]], terminator: str, bom: bool, cuts: list[int]
) -> None:
    header, body = table
    data, lines = written([header, *body], terminator)
    # csv.writer does not quote a lone CR when the terminator is LF: such output is ambiguous.
    assume(list(csv.reader(io.StringIO(data.decode(), newline=""))) == [header, *body])
    data = b"\xef\xbb\xbf" + data if bom else data
    expected = [
        (line, dict(zip(header, record, strict=True)))
        for line, record in zip(lines[1:], body, strict=True)
    ]
    assert rows(parse(split(data, cuts))) == expected


@settings(max_examples=150, deadline=None)
@given(table=tables(), cuts=st.lists(st.integers(0, 10**6), max_size=10))
def test_headerless_tables_read_back_exactly(
    table: tuple[list[str], list[list[str]]], cuts: list[int]
) -> None:
    _, body = table
    data, lines = written(body, "\r\n")
    names = [f"col_{index}" for index in range(1, len(body[0]) + 1)] if body else []
    expected = [
        (line, dict(zip(names, record, strict=True)))
        for line, record in zip(lines, body, strict=True)
    ]
    assert rows(parse(split(data, cuts), header=False)) == expected


def test_unclosed_quote_names_the_line_where_the_field_opened() -> None:
    data = b'a,b\n1,2\n3,"never closed\n4,5\n6,7\n'
    for pieces in ([data], [data[:13], data[13:]], [bytes([byte]) for byte in data]):
        with pytest.raises(CorruptInputError) as caught:
            parse(pieces)
        assert caught.value.line == 3
        assert "unclosed quoted field" in str(caught.value)
        assert "line 3" in str(caught.value.located("export.csv"))


def test_unclosed_quote_in_a_later_field_of_a_multi_line_record() -> None:
    with pytest.raises(CorruptInputError) as caught:
        parse(b'a,b,c\n"x\ny",z,"open\n\n')
    assert caught.value.line == 3


def test_unclosed_quote_stops_at_the_size_bound_not_the_end_of_the_file() -> None:
    parser = CsvParser(max_field_bytes=1000)
    parser.feed(b'a,b\n1,"oops\n')
    with pytest.raises(FieldTooLargeError, match="never closes") as caught:
        for _ in range(100):
            parser.feed(b"x,y\n" * 10)
    assert caught.value.line == 2


def test_ragged_rows_are_quarantined_with_line_and_raw_text() -> None:
    out = parse(b'a,b,c\n1,2,3\n4,5\n6,7,8,9\n"x\ny",8,9\n10,11,12\r\n')
    assert out == [
        Row(2, {"a": "1", "b": "2", "c": "3"}),
        BadRow(3, "expected 3 fields, got 2", "4,5"),
        BadRow(4, "expected 3 fields, got 4", "6,7,8,9"),
        Row(5, {"a": "x\ny", "b": "8", "c": "9"}),
        Row(7, {"a": "10", "b": "11", "c": "12"}),
    ]


def test_multi_line_ragged_row_keeps_its_raw_text() -> None:
    out = parse(b'a,b,c\n"x\r\ny",1\r\nok,1,2\r\n')
    assert out == [
        BadRow(2, "expected 3 fields, got 2", '"x\r\ny",1'),
        Row(4, {"a": "ok", "b": "1", "c": "2"}),
    ]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b'O"Brien,x', "quote character inside unquoted field 1"),
        (b'x,ab"c"', "quote character inside unquoted field 2"),
        (b'"q"z,1', "unexpected character after the closing quote of field 1"),
        (b'"q" ,1', "unexpected character after the closing quote of field 1"),
        (b"a\rb,1", "carriage return inside unquoted field 1"),
        (b'"m\nl"x,"2\n"', "unexpected character after the closing quote of field 1"),
        (b'x"y,"z"', "quote character inside unquoted field 1"),
    ],
)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_bad_quoting_is_quarantined_and_parsing_continues(
    record: bytes, reason: str, newline: bytes
) -> None:
    data = b"a,b\n1,2\n" + record + newline + b"3,4\n"
    expected = [
        Row(2, {"a": "1", "b": "2"}),
        BadRow(3, reason, record.decode()),
        Row(4 + record.count(b"\n"), {"a": "3", "b": "4"}),
    ]
    assert parse(data) == expected
    assert parse([data[i : i + 1] for i in range(len(data))]) == expected


def test_invalid_utf8_quarantines_only_that_record() -> None:
    data = b'a,b\n1,2\n\xff\xfe,3\n"\xc3",4\n5,\xe6\x97\xa5\n'
    out = parse(data)
    assert out[0] == Row(2, {"a": "1", "b": "2"})
    assert [(item.line, type(item).__name__) for item in out] == [
        (2, "Row"),
        (3, "BadRow"),
        (4, "BadRow"),
        (5, "Row"),
    ]
    bad = out[1]
    assert isinstance(bad, BadRow)
    assert "invalid utf-8" in bad.reason
    assert bad.raw == "\\xff\\xfe,3"
    assert out[3] == Row(5, {"a": "5", "b": "日"})
    assert parse(split(data, [9, 10, 19, 24])) == out


def test_bad_header_is_fatal() -> None:
    with pytest.raises(CorruptInputError, match="header") as caught:
        parse(b'id,na"me\n1,2\n')
    assert caught.value.line == 1


def test_bom_split_across_chunks_is_stripped() -> None:
    data = b"\xef\xbb\xbfid\n1\n"
    for cut in range(len(data) + 1):
        assert rows(parse([data[:cut], data[cut:]])) == [(2, {"id": "1"})]


def test_blank_lines_before_the_header_in_their_own_chunk() -> None:
    assert rows(parse([b"\n\r\n", b"a,b\n1,2\n"])) == [(4, {"a": "1", "b": "2"})]


def test_lf_crlf_and_blank_lines_count_for_line_numbers() -> None:
    data = b"\n\r\nid,v\r\n\r\n1,a\n\n2,b\r\n\n"
    assert rows(parse(data)) == [(5, {"id": "1", "v": "a"}), (7, {"id": "2", "v": "b"})]


def test_empty_and_header_only_inputs_yield_nothing() -> None:
    assert parse(b"") == []
    assert parse(b"a,b\r\n") == []
    assert parse(b"a,b") == []


def test_header_sequence_names_every_row_including_the_first() -> None:
    out = parse(b"1,2\n3,4\n", header=["x", "y"])
    assert rows(out) == [(1, {"x": "1", "y": "2"}), (2, {"x": "3", "y": "4"})]


def test_duplicate_and_empty_header_names_become_unique() -> None:
    assert rows(parse(b"id,name,name,,id\n1,a,b,c,2\n")) == [
        (2, {"id": "1", "name": "a", "name__2": "b", "col_4": "c", "id__2": "2"})
    ]
    assert unique_names(["a", "a", "a__2"]) == ["a", "a__3", "a__2"]
    assert unique_names(["x", "x", "x"]) == ["x", "x__2", "x__3"]


def test_field_larger_than_the_bound_in_one_chunk() -> None:
    data = b'a,b\n1,"' + b"x" * 5000 + b'"\n2,3\n'
    with pytest.raises(FieldTooLargeError) as caught:
        parse(data, max_field_bytes=1000)
    assert caught.value.line == 2


def test_record_larger_than_the_bound_without_a_newline() -> None:
    parser = CsvParser(max_field_bytes=1000)
    assert parser.feed(b"a,b\n1,2\n") == [Row(2, {"a": "1", "b": "2"})]
    with pytest.raises(FieldTooLargeError) as caught:
        for _ in range(30):
            parser.feed(b"y" * 100)
    assert caught.value.line == 3


def test_quoted_field_spanning_many_chunks() -> None:
    value = ('line\n"quoted" Å ' * 20_000)[:-1]
    data = b'a,b\n"' + value.replace('"', '""').encode() + b'",end\n1,2\n'
    out = parse(split(data, list(range(0, len(data), 997))))
    assert rows(out) == [
        (2, {"a": value, "b": "end"}),
        (2 + value.count("\n") + 1, {"a": "1", "b": "2"}),
    ]


def test_record_longer_than_one_batch_window() -> None:
    value = "v" * (5 * 1024 * 1024)
    data = b"a,b\n1," + value.encode() + b"\n2,3\n"
    assert rows(parse(data)) == [(2, {"a": "1", "b": value}), (3, {"a": "2", "b": "3"})]


def test_lone_cr_inside_quotes_is_data() -> None:
    assert rows(parse(b'a,b\n"x\ry",1\n')) == [(2, {"a": "x\ry", "b": "1"})]


def test_unicode_line_separators_inside_fields_are_data() -> None:
    data = "a,b\nx\u2028y,1\u0085\n\x0c,\x1c\n".encode()
    assert rows(parse(data)) == [
        (2, {"a": "x\u2028y", "b": "1\u0085"}),
        (3, {"a": "\x0c", "b": "\x1c"}),
    ]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters(delimiter: str) -> None:
    data = f'a{delimiter}b\n"x{delimiter}y"{delimiter}2\n'.encode()
    assert rows(parse(data, delimiter=delimiter)) == [(2, {"a": f"x{delimiter}y", "b": "2"})]


def test_latin1_encoding() -> None:
    assert rows(parse(b"name\n\xc5sa\n", encoding="latin-1")) == [(2, {"name": "Åsa"})]


@pytest.mark.parametrize(
    "options",
    [
        {"delimiter": '"'},
        {"delimiter": ",,"},
        {"encoding": "utf-16"},
        {"encoding": "nope"},
        {"header": "id,name"},
        {"header": []},
    ],
)
def test_invalid_configuration(options: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        CsvParser(**options)  # type: ignore[arg-type]


def test_columns_property() -> None:
    parser = CsvParser()
    assert parser.columns is None
    parser.feed(b"x,y\n")
    assert parser.columns == ["x", "y"]
