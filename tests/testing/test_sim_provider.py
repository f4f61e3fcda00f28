"""Row shaping of the simulated exports (provider.py), without a server."""

from __future__ import annotations

import csv
import gzip
import io
from typing import Any

import orjson

from streamx.testing import StaticRows, SymplifyFormat
from streamx.testing.provider import (
    CordialFileSpec,
    cordial_file_chunks,
    cordial_file_spec,
    cordial_row_filter,
    flatten,
    parse_time,
    split_rows,
    symplify_file_chunks,
)

ROWS: list[dict[str, Any]] = [
    {"id": n, "action": "open", "properties": {"url": f"https://x/{n}", "tags": ["a", "b"]}}
    for n in range(5)
]


def test_split_rows_limits_and_boundaries() -> None:
    groups = [list(group) for group in split_rows(iter(range(7)), 3)]
    assert groups == [[0, 1, 2], [3, 4, 5], [6]]
    assert [list(g) for g in split_rows(iter(range(4)), 0)] == [[0, 1, 2, 3]]
    assert [list(g) for g in split_rows(iter(()), 3)] == [[]]


def test_split_rows_skips_what_a_consumer_left() -> None:
    starts = [next(group) for group in split_rows(iter(range(10)), 4)]
    assert starts == [0, 4, 8]


def test_flatten_uses_dotted_names() -> None:
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": None}}}) == {"a": 1, "b.c": 2, "b.d.e": None}


def test_symplify_json_array_gzip_round_trip() -> None:
    data = b"".join(symplify_file_chunks(iter(ROWS), SymplifyFormat("json_array", gzip=True)))
    assert orjson.loads(gzip.decompress(data)) == ROWS
    assert orjson.loads(b"".join(symplify_file_chunks(iter(()), SymplifyFormat()))) == []


def test_cordial_csv_with_labels_lists_and_delimiter() -> None:
    spec = CordialFileSpec(
        file_type="txt",
        columns=(
            ("id", "ID"),
            ("properties.url", "URL"),
            ("properties.tags", "tags"),
            ("vip", "vip"),
        ),
        show_header=True,
        delimiter=";",
        list_columns=frozenset({"vip"}),
    )
    rows = [{**row, "vip": n % 2 == 1} for n, row in enumerate(ROWS[:2])]
    text = b"".join(cordial_file_chunks(iter(rows), spec)).decode()
    assert list(csv.reader(io.StringIO(text), delimiter=";")) == [
        ["ID", "URL", "tags", "vip"],
        ["0", "https://x/0", '["a","b"]', "0"],
        ["1", "https://x/1", '["a","b"]', "1"],
    ]


def test_cordial_empty_file_still_has_its_header() -> None:
    spec = CordialFileSpec(file_type="csv", columns=(("a", "A"),), show_header=True)
    assert b"".join(cordial_file_chunks(iter(()), spec)) == b"A\r\n"


def test_file_spec_resolution() -> None:
    def columns() -> list[str]:
        return ["x", "y"]

    contacts = cordial_file_spec({"lists": [8756, "vip"]}, columns)
    assert contacts.columns == (
        ("channels.email.address", "channels.email.address"),
        ("8756", "8756"),
        ("vip", "vip"),
    )
    assert contacts.list_columns == {"8756", "vip"}
    assert cordial_file_spec({"exportType": "JSON"}, columns).columns is None
    plain = cordial_file_spec({"showHeader": "true", "limitRecordsPerFile": "5"}, columns)
    assert (plain.columns, plain.show_header, plain.limit_per_file) == (
        (("x", "x"), ("y", "y")),
        True,
        5,
    )


def test_activity_row_filter() -> None:
    keep = cordial_row_filter(
        "contactactivityexport",
        {
            "selected_action_names": ["open"],
            "selected_message_type": "automation",
            "selected_timeframe_start": "2019-03-24T00:00:00Z",
            "selected_timeframe_end": "2019-03-24T23:59:59Z",
        },
    )
    base = {"action": "open", "mdtID": "m", "time": "2019-03-24T10:00:00+0000"}
    assert keep(base)
    assert not keep({**base, "action": "click"})
    assert not keep({**base, "bmID": "45:x:ot"})
    assert not keep({**base, "time": "2019-03-25T00:00:01+0000"})


def test_parse_time_forms() -> None:
    assert parse_time("2017-03-13T22:48:40+0000") == parse_time("2017-03-13T22:48:40Z")
    assert parse_time("2017-03-13T18:48:40-04:00") == parse_time("2017-03-13T22:48:40.000Z")
    assert parse_time("2021-08-17") is not None
    assert parse_time("yesterday") is None


def test_static_rows_columns_are_the_union_in_order() -> None:
    provider = StaticRows([{"a": 1, "n": {"b": 2}}, {"c": 3, "a": 4}], repeat=2)
    assert provider.cordial_columns("k", "contactexports", {}, "j") == ["a", "n.b", "c"]
    assert len(list(provider.cordial_rows("k", "contactexports", {}, "j"))) == 4
