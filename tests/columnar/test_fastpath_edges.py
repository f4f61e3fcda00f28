"""Columnar path == row path on hostile CSV: quoting, CR/LF mixes, BOM, bad rows, bad values,
multi-member gzip and any chunking, with tiny blocks so every lane switch is exercised.

Errors count as output: when the row path raises (an unclosed quote at the end, a record over
``max_field_bytes``), the columnar path must raise the same error with the same message.
"""

from __future__ import annotations

import csv
import gzip
import io
from typing import Any

from columnar_helpers import Published, assert_same, run_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamx.normalize.base import ExportContext

CTX = ExportContext("cordial", "cordial.contact_activity", "acct", "job-1")
HEADERS = (
    ["cID", "_id", "action", "time", "email", "bmID", "mdtID", "message_name", "bt", "x"],
    ["_id", "a", "ats", "system_properties.bt", "properties.url", "x", "x", ""],
    ["time", "action", "cID"],
)
TIMES = (
    "2017-03-13T22:48:40+0000",
    "2017-03-13T22:48:40Z",
    "2017-03-13T22:48:40-00:00",
    "2017-03-13T22:48:40.123Z",
    "2017-03-13T22:48:40.5+0000",
    "2017-03-13 22:48:40-04:00",
    "2016-02-29T23:59:59+0000",
    "1394636797030",
    "1394636797",
    "0",
    "2019-03-24",
    " 2017-03-13T22:48:40+0000",
)
BAD_TIMES = ("2017-02-30T00:00:00+0000", "2017-W11-1T22:48:40+0000", "9999999999999999", "soon")
WORDS = ("", "open", "bounce", " Bounce ", "click", "custom-x", "soft", "4.2.1", "hard", "421")
HOSTILE = st.text(alphabet=st.sampled_from('ab ,"\n\r\t\x0b\x00\x1fé\u2028\\/'), max_size=6)
PLAIN = st.sampled_from(WORDS) | st.text(alphabet="abc XYZ0189-_.:@", max_size=8)


@st.composite
def rows(draw: st.DrawFn, width: int, time_column: int | None) -> list[list[str]]:
    """Mostly plain rows (so blocks reach the columnar lane), some hostile cells and times."""
    hostile = draw(st.integers(0, 30))  # percent of hostile cells in this file
    out = []
    for _ in range(draw(st.integers(0, 40))):
        row = [draw(HOSTILE if draw(st.integers(0, 99)) < hostile else PLAIN) for _ in range(width)]
        if time_column is not None:
            pool = st.sampled_from(BAD_TIMES) | st.just("") | st.sampled_from(TIMES)
            good = draw(st.integers(0, 99)) >= hostile // 3
            row[time_column] = draw(st.sampled_from(TIMES) if good else pool)
        out.append(row)
    return out


JUNK = st.sampled_from(
    [
        b'a"b,c\n',  # quote inside an unquoted field
        b'"ab"c,d\n',  # text after a closing quote
        b"a\rb,c\n",  # bare CR
        b"only-one-field\n",  # wrong field count
        b"\xff\xfe,bad utf-8\n",
        b"\n",
        b"\r\n",
        b",,,,,,,,,,,,,,,,,,,\n",
    ]
)


@st.composite
def csv_inputs(draw: st.DrawFn) -> tuple[bytes, list[int], int, dict[str, Any]]:
    header = draw(st.sampled_from(HEADERS))
    time_column = header.index("time") if "time" in header else None
    body = draw(rows(len(header), time_column))
    terminator = draw(st.sampled_from(["\r\n", "\n"]))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(body)
    lines = text.getvalue().encode().splitlines(keepends=True)
    for _ in range(draw(st.sampled_from([0, 0, 1, 3]))):
        lines.insert(draw(st.integers(1, len(lines))), draw(JUNK))
    blob = b"".join(lines)
    if draw(st.booleans()):
        blob = b"\xef\xbb\xbf" + blob
    if draw(st.booleans()):
        blob = blob.rstrip(b"\r\n")  # no newline after the last record
    if draw(st.integers(0, 9)) == 0:
        blob += b'"never closed,\n'
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(blob)))
        blob = gzip.compress(blob[:cut]) + gzip.compress(blob[cut:])
    cuts = draw(st.lists(st.integers(0, len(blob)), max_size=8))
    options: dict[str, Any] = {}
    if draw(st.integers(0, 4)) == 0:
        options = {"csv_options": {"max_field_bytes": draw(st.integers(40, 400))}}
    return blob, cuts, draw(st.integers(48, 2048)), options


def outcome(fast: bool, blob: bytes, cuts: list[int], block: int, options: Any) -> Any:
    try:
        return run_path(blob, CTX, fast=fast, cuts=cuts, block_bytes=block, parser_options=options)
    except Exception as exc:  # the error itself is the outcome to compare
        return (type(exc), str(exc))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_inputs())
def test_hostile_csv_gives_the_row_paths_output(case: tuple[bytes, list[int], int, Any]) -> None:
    blob, cuts, block, options = case
    fast = outcome(True, blob, cuts, block, options)
    slow = outcome(False, blob, cuts, block, options)
    if isinstance(slow, Published) and isinstance(fast, Published):
        assert_same(fast, slow)
    else:
        assert fast == slow


def test_a_block_with_one_bad_row_quarantines_exactly_that_row() -> None:
    header = "cID,_id,action,time\r\n"
    good = "".join(f"c{i},id{i},open,2017-03-13T22:48:{i % 60:02d}+0000\r\n" for i in range(300))
    bad = "c,idX,open,2017-02-30T00:00:00+0000\r\n"
    blob = (header + good + bad + good).encode()
    fast = run_path(blob, CTX, fast=True, block_bytes=2048)
    slow = run_path(blob, CTX, fast=False)
    assert slow.counts[:3] == (601, 600, 1)
    assert b'"line":302' in slow.quarantine
    assert_same(fast, slow)
