"""The RE2 block check may only ever say yes where the row parser's validator takes the whole
block, and the lanes must cut exactly the same blocks with it as without it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs.base import ParsedItem
from streamx.codecs.csv import CsvParser, valid_run
from streamx.columnar.csvcheck import whole_records_check
from streamx.columnar.csvlanes import Block, CsvLanes
from streamx.exceptions import StreamxError

CHECK = whole_records_check(",")
#: Text rich in what CSV validation is about: quotes, delimiters, CR, LF, and non-ASCII bytes.
SHARDS = st.sampled_from(['"', '""', ",", "\n", "\r\n", "\r", "a", "bc", "é", "\xff", ";"])
anything = st.lists(SHARDS, max_size=60).map(lambda parts: "".join(parts).encode("latin-1"))

unquoted = st.text(alphabet="ab é\t;'", max_size=6).map(str.encode)
quoted = st.text(alphabet='ab,"\r\n é', max_size=8).map(
    lambda text: b'"' + text.encode().replace(b'"', b'""') + b'"'
)
record = st.tuples(
    st.lists(st.one_of(unquoted, quoted), min_size=1, max_size=4),
    st.sampled_from([b"\n", b"\r\n"]),
).map(lambda parts: b",".join(parts[0]) + parts[1])
records = st.lists(record, max_size=12).map(b"".join)


def test_only_a_one_character_ascii_delimiter_gets_a_check() -> None:
    assert CHECK is not None and whole_records_check("\t") is not None
    assert whole_records_check("ab") is None and whole_records_check("§") is None


@given(anything)
@settings(max_examples=400)
def test_a_yes_means_the_validator_takes_the_whole_block(block: bytes) -> None:
    assert CHECK is not None
    if CHECK(block):
        assert valid_run(bytearray(block), 0, len(block))[0] == len(block)


@given(records)
@settings(max_examples=200)
def test_well_formed_records_get_a_yes(block: bytes) -> None:
    assert CHECK is not None and CHECK(block)
    assert valid_run(bytearray(block), 0, len(block))[0] == len(block)


@pytest.mark.parametrize(
    "block",
    [
        b'a"b,c\n',  # a quote inside an unquoted field
        b'"a"b,c\n',  # text after a closing quote
        b"a\rb,c\n",  # a bare CR outside quotes
        b'"a,b\n',  # a quoted field still open at the end
        b"a,b",  # no line end
    ],
)
def test_malformed_or_unfinished_records_get_a_no(block: bytes) -> None:
    assert CHECK is not None and not CHECK(block)


def _steps(text: bytes, cuts: list[int], check: bool) -> list[Block | list[ParsedItem]]:
    lanes = CsvLanes(
        CsvParser(),
        delimiter=",",
        max_record_bytes=200,
        block_bytes=48,
        whole_records=CHECK if check else None,
    )
    steps: list[Block | list[ParsedItem]] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        if cut >= previous:
            steps.extend(lanes.feed(text[previous:cut]))
            previous = cut
    return [*steps, *lanes.flush()]


@given(
    st.lists(st.one_of(records, anything), max_size=8).map(b"".join),
    st.lists(st.integers(0, 400), max_size=5),
)
@settings(max_examples=300)
def test_the_lanes_cut_the_same_blocks_with_and_without_the_check(
    body: bytes, cuts: list[int]
) -> None:
    text = b"h1,h2,h3\n" + body
    try:
        expected = _steps(text, cuts, check=False)
    except StreamxError as error:
        with pytest.raises(type(error), match=re.escape(str(error))):
            _steps(text, cuts, check=True)
        return
    assert _steps(text, cuts, check=True) == expected
