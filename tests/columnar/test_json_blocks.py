"""JSON lines on the columnar path (streamx.columnar.jsonblock): the row path's output, exactly.

Each case converts the same bytes through the real pipeline twice, with Arrow blocks (tiny, so
a file has many) and with the fast path off, and compares everything a reader sees. The inputs
mix what Arrow reproduces (canonical orjson lines with missing keys, nested objects, numbers)
with what it must hand back (nulls, other key orders, escapes orjson writes differently,
exponents, arrays, bad lines), and the tests check that Arrow did serve the canonical blocks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import struct
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx import helper, offload
from streamx.codecs.jsonl import MAX_ROW_DEPTH
from streamx.columnar.jsonblock import encode_json_block
from streamx.columnar.jsontext import float_text
from streamx.normalize.base import ExportContext
from tests.columnar.columnar_helpers import Published, assert_same, run_path

ACTIVITY = ExportContext("cordial", "cordial.contact_activity", "acct", "exp-1")
CONTACTS = ExportContext("cordial", "cordial.contacts", "acct", "exp-1")
OPENS = ExportContext("symplify", "symplify.opens", "acct", "exp-1")


@contextlib.contextmanager
def arrow_blocks(block_bytes: int, served: list[int]) -> Iterator[None]:
    """Arrow blocks of ``block_bytes`` for every file, no helper process; ``served`` counts
    the blocks Arrow encoded itself."""
    saved = (offload.ARROW_BLOCK_BYTES, offload.MIN_FILE_BYTES, offload.arrow_block)
    saved_env = os.environ.get(helper.ENV_SWITCH)
    os.environ[helper.ENV_SWITCH] = "0"

    def counting(*args: Any) -> Any:
        encoded = saved[2](*args)
        served.append(0 if encoded is None else 1)
        return encoded

    offload.ARROW_BLOCK_BYTES, offload.MIN_FILE_BYTES = block_bytes, 0
    offload.arrow_block = counting
    try:
        yield
    finally:
        offload.ARROW_BLOCK_BYTES, offload.MIN_FILE_BYTES, offload.arrow_block = saved
        if saved_env is None:
            os.environ.pop(helper.ENV_SWITCH, None)
        else:
            os.environ[helper.ENV_SWITCH] = saved_env


def both_paths(
    blob: bytes, ctx: ExportContext = ACTIVITY, *, block_bytes: int = 2048, **kwargs: Any
) -> tuple[Published | str, list[int]]:
    """Convert with Arrow blocks and on the row path; assert they agree; the outcome and which
    blocks Arrow served (1) or handed back (0)."""
    served: list[int] = []
    with arrow_blocks(block_bytes, served):
        fast = _outcome(blob, ctx, True, kwargs)
    slow = _outcome(blob, ctx, False, kwargs)
    if isinstance(fast, Published) and isinstance(slow, Published):
        assert_same(fast, slow)
    else:
        assert fast == slow
    return fast, served


def _outcome(blob: bytes, ctx: ExportContext, fast: bool, kwargs: dict[str, Any]) -> Any:
    try:
        return run_path(blob, ctx, fast=fast, **kwargs)
    except Exception as exc:  # compared as text: both paths must fail the same way
        return f"{type(exc).__name__}: {exc}"


# --- rows --------------------------------------------------------------------------------------

KEYS = ("cID", "_id", "action", "time", "email", "bmID", "mdtID", "first", "message_name")
ACTIONS = ("open", "click", "message-sent", "bounce", "optout", "complaint", "browse", "Open")
TEXTS = st.one_of(
    st.sampled_from(["", "plain", "Zoë", 'quote " and \\ back', "tab\tnew\nline", "x\x01y"]),
    st.text(max_size=12),
)
SCALARS = st.one_of(
    TEXTS,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([19.99, 20.0, 0.5, -0.0, 1e-7, 1e16, 123456.789]),
    st.booleans(),
)
NESTED_KEYS = ("url", "rl", "bt", "bounceType", "bounce_type", "sku", "price", "reason", "ua")


@st.composite
def nested_objects(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(NESTED_KEYS), unique=True, max_size=4))
    values = st.one_of(SCALARS, st.just(None)) if depth else st.one_of(SCALARS, nested_objects(1))
    return {key: draw(values) for key in keys}


@st.composite
def activity_rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in KEYS:
        if draw(st.integers(0, 9)) == 0:
            continue  # this row lacks the key
        if key == "action":
            row[key] = draw(st.sampled_from(ACTIONS))
        elif key == "time":
            row[key] = draw(
                st.sampled_from(["2026-10-01T00:00:00+0000", "2026-10-02T12:30:00Z", ""])
            )
        else:
            row[key] = draw(st.sampled_from(["", "id-1", "id-2", "Zoë"]))
    if draw(st.booleans()):
        row["properties"] = draw(nested_objects())
    if draw(st.booleans()):
        row["system_properties"] = draw(nested_objects())
    return row


def canonical(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def variant(row: dict[str, Any], how: str) -> bytes:
    """A line orjson would write differently (the row path parses it all the same)."""
    if how == "spaces":
        return json.dumps(row).encode() + b"\n"
    if how == "ascii":
        return json.dumps(row, separators=(",", ":")).encode() + b"\n"
    if how == "reversed":
        return orjson.dumps(dict(reversed(list(row.items())))) + b"\n"
    if how == "null":
        return orjson.dumps({**row, "first": None}) + b"\n"
    if how == "array":
        return orjson.dumps({**row, "tags": [1, "a"]}) + b"\n"
    return b"not json\n"


@settings(max_examples=70, deadline=None)
@given(
    rows=st.lists(activity_rows(), min_size=1, max_size=60),
    odd=st.lists(
        st.tuples(
            st.integers(0, 59),
            st.sampled_from(["spaces", "ascii", "reversed", "null", "array", "broken"]),
        ),
        max_size=3,
    ),
    block=st.integers(300, 4000),
    fmt=st.sampled_from(["jsonl", "csv", "parquet"]),
)
def test_any_mix_of_rows_gives_the_row_paths_output(
    rows: list[dict[str, Any]], odd: list[tuple[int, str]], block: int, fmt: str
) -> None:
    lines = [orjson.dumps(row) + b"\n" for row in rows]
    for index, how in odd:
        if index < len(lines):
            lines[index] = variant(rows[index], how)
    both_paths(b"".join(lines), block_bytes=block, fmt=fmt)


def test_arrow_serves_canonical_blocks_with_missing_keys_nested_objects_and_numbers() -> None:
    rnd = random.Random(5)
    rows = []
    for number in range(400):
        row: dict[str, Any] = {"cID": f"c{number}", "_id": f"r{number}", "action": "click"}
        row["time"] = "2026-10-01T00:00:00+0000"
        if number % 3:
            row["bmID"] = f"b{number}"
        row["properties"] = (
            {"url": f"https://e.example/{number}", "price": round(rnd.uniform(0, 500), 2)}
            if number % 2
            else {}
        )
        row["system_properties"] = {"ua": "Mozilla/5.0", "n": number, "ok": bool(number % 2)}
        rows.append(row)
    for fmt in ("jsonl", "csv", "parquet"):
        published, served = both_paths(canonical(rows), block_bytes=4096, fmt=fmt)
        assert isinstance(published, Published)
        assert published.counts[:2] == (400, 400)
        assert len(served) > 10 and all(served), served


def test_arrow_serves_strings_with_rare_control_characters() -> None:
    """orjson writes \\b, \\f and \\u00XX for these: the block must be escaped for them, or it
    fails its byte-for-byte check and every block falls back to the row parser."""
    rows = []
    for number in range(300):
        odd = ["\x01", "\b", "\f", "\x1f", "\\u", "\\b"][number % 6]  # last two: plain text
        row: dict[str, Any] = {"cID": f"c{number}", "_id": f"r{number}", "action": "click"}
        row["time"] = "2026-10-01T00:00:00+0000"
        row["message_name"] = f"subject {odd} {number}"
        row["properties"] = {"note": f"n{odd}", "n": number}
        rows.append(row)
    for fmt in ("jsonl", "csv", "parquet"):
        published, served = both_paths(canonical(rows), block_bytes=4096, fmt=fmt)
        assert isinstance(published, Published)
        assert published.counts[:2] == (300, 300)
        assert len(served) > 5 and all(served), served


def test_nested_urls_and_bounce_types_follow_the_row_paths_rules() -> None:
    rows: list[dict[str, Any]] = [
        {"cID": "a", "_id": "1", "action": "click", "properties": {"url": "https://p/1"}},
        {
            "cID": "b",
            "_id": "2",
            "action": "click",
            "system_properties": {"rl": "https://s/2"},
            "properties": {"url": "https://p/2"},
        },
        {"cID": "c", "_id": "3", "action": "click", "properties": {"url": "", "rl": 7}},
        {"cID": "d", "_id": "4", "action": "bounce", "properties": {"bounceType": "soft"}},
        {
            "cID": "e",
            "_id": "5",
            "action": "bounce",
            "system_properties": {"bt": "550"},
            "properties": {"bt": "transient"},
        },
        {"cID": "f", "_id": "6", "action": "bounce", "properties": {"BT": 421}},
        {"cID": "g", "_id": "7", "action": "bounce", "properties": {}},
        {"cID": "h", "action": "open", "properties": {"url": ""}},
    ]
    order = ["cID", "_id", "action", "system_properties", "properties"]
    lines = [{key: row[key] for key in order if key in row} for row in rows]
    published, served = both_paths(canonical(lines * 20), block_bytes=1 << 20)
    assert isinstance(published, Published)
    assert served == [1]
    text = published.parts[0]
    assert b'"url":"https://s/2"' in text and b'"url":"7"' in text
    assert text.count(b'"event_type":"bounce_soft"') == 20 * 2  # d (soft) and f (4xx)


def test_blocks_arrow_cannot_reproduce_take_the_row_path_and_the_file_switches() -> None:
    rows = [{"cID": f"c{n}", "_id": f"r{n}", "action": "open", "first": None} for n in range(300)]
    published, served = both_paths(canonical(rows), block_bytes=1024)
    assert isinstance(published, Published)
    assert published.counts[:2] == (300, 300)
    assert served and not any(served)  # explicit nulls: every block handed back


@pytest.mark.parametrize(
    "ctx, row",
    [
        (CONTACTS, {"cID": "c1", "channels": {"email": {"address": "a@example.com"}}}),
        (CONTACTS, {"cID": "c1", "email": "a@example.com", "lists": {"news": True}}),
        (OPENS, {"eventId": "e1", "openTimestamp": "2026-10-01T00:00:00Z", "n": 4}),
    ],
)
def test_other_streams_give_the_row_paths_output(ctx: ExportContext, row: dict[str, Any]) -> None:
    rows = [{**row, "n": number} if "n" in row else row for number in range(200)]
    published, _ = both_paths(canonical(rows), ctx, block_bytes=2048)
    assert isinstance(published, Published)
    assert published.counts[0] == 200


def test_a_bom_truncated_line_and_blank_lines_are_handled_like_the_row_path() -> None:
    lines = canonical([{"cID": f"c{n}", "_id": f"r{n}", "action": "open"} for n in range(200)])
    both_paths(b"\xef\xbb\xbf" + lines)
    both_paths(lines + b'{"cID": "x", "_id"')
    both_paths(lines.replace(b"\n", b"\n\n", 5))
    both_paths(lines.replace(b"\n", b"\r\n"))


def test_invalid_utf8_and_deep_nesting_are_the_row_parsers_to_judge() -> None:
    lines = canonical([{"cID": f"c{n}", "_id": f"r{n}", "action": "open"} for n in range(100)])
    published, served = both_paths(lines + b'{"cID": "caf\xe9", "_id": "x"}\n' + lines)
    assert isinstance(published, Published) and published.counts[2] == 1
    deep = b'{"cID": "d", "_id": "y", "deep": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001
    published, served = both_paths(lines + deep + b"\n" + lines, block_bytes=1 << 20)
    assert isinstance(published, Published) and published.counts[2] == 1
    assert served == [0]


@pytest.mark.parametrize(("braces", "served"), [(MAX_ROW_DEPTH - 1, [1]), (MAX_ROW_DEPTH, [0])])
def test_a_line_with_more_openers_than_the_depth_limit_goes_to_the_row_parser(
    braces: int, served: list[int]
) -> None:
    """Openers are counted in the raw line (strings too): a bound, cheap to check before
    Arrow's recursive parser sees the line. The object's own ``{`` is the last one allowed."""
    rows = [{"cID": f"c{n}", "_id": f"r{n}", "action": "open"} for n in range(20)]
    rows[7]["note"] = "{" * (braces // 2) + "[" * (braces - braces // 2)
    assert both_paths(canonical(rows), block_bytes=1 << 20)[1] == served


def test_rows_without_an_id_get_the_row_paths_hash() -> None:
    rows = [{"cID": f"c{n}", "action": "open", "properties": {"k": n}} for n in range(100)]
    published, served = both_paths(canonical(rows), block_bytes=1 << 20)
    assert isinstance(published, Published) and served == [1]


# --- pieces ------------------------------------------------------------------------------------


def test_float_text_is_orjsons_text_whenever_it_answers() -> None:
    rnd = random.Random(11)
    values = [rnd.choice([1, -1]) * 10 ** rnd.uniform(-12, 22) for _ in range(6000)]
    values += [round(value, rnd.randint(0, 6)) for value in values[:3000]]
    values += [float(round(value)) for value in values[:3000]]
    bits = [rnd.getrandbits(64).to_bytes(8, "little") for _ in range(6000)]
    values += [struct.unpack("d", pattern)[0] for pattern in bits]
    values = [value for value in values if math.isfinite(value)]
    answered = 0
    for value in values:
        text = float_text(pa.array([value], pa.float64()))
        if text is not None:
            answered += 1
            assert text[0].as_py() == orjson.dumps(value).decode(), value
    assert answered > 4000
    assert float_text(pa.array([1e-7], pa.float64())) is None
    assert float_text(pa.array([1.0, None, 2.5], pa.float64())).to_pylist() == ["1.0", None, "2.5"]


def test_a_block_whose_first_row_lacks_keys_keeps_the_lines_key_order() -> None:
    rows = [{"cID": "a", "action": "open"}] + [
        {"cID": f"c{n}", "_id": f"r{n}", "action": "open", "email": "e@x"} for n in range(5)
    ]
    encoded = encode_json_block(canonical(rows), ACTIVITY, "jsonl")
    assert encoded is not None and encoded.rows == 6


def test_a_second_file_with_another_key_order_is_served_too() -> None:
    first = canonical([{"cID": f"c{n}", "_id": f"r{n}", "action": "open"} for n in range(100)])
    second = canonical([{"action": "click", "_id": f"s{n}", "cID": f"d{n}"} for n in range(100)])
    files = [(first, ()), (second, ())]
    served: list[int] = []
    with arrow_blocks(1 << 20, served):
        fast = run_path(files, ACTIVITY, fast=True)
    assert_same(fast, run_path(files, ACTIVITY, fast=False))
    assert served == [1, 1]
