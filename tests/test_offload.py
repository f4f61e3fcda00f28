"""JSON lines through the helper process and worker threads: the row path's output, exactly.

Each case converts the same bytes twice through :func:`~streamx.pipeline.ingest_file` into a
real publisher and local sink, with the offload on (tiny blocks, the helper used from the first
block) and off, and compares everything a reader sees: parts, quarantine, counts, errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import os
import signal
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx import helper, offload
from streamx.exceptions import FieldTooLargeError, TransientError
from streamx.normalize.base import ExportContext
from streamx.testing.data import Window, cordial_activity_rows
from tests.columnar.columnar_helpers import Published, run_path

CTX = ExportContext("cordial", "cordial.contact_activity", "acct", "exp-1")


@contextlib.contextmanager
def offloaded(enabled: bool, *, block_bytes: int = 4096, warm: int = 0) -> Iterator[None]:
    """The offload switched on (every file, ``block_bytes`` blocks, helper from block
    ``warm + 1``) or off, through its documented environment switch."""
    saved = (offload.BLOCK_BYTES, offload.WARM_BLOCKS, offload.MIN_FILE_BYTES)
    saved_env = os.environ.get(helper.ENV_SWITCH)
    os.environ[helper.ENV_SWITCH] = "1" if enabled else "0"
    offload.BLOCK_BYTES, offload.WARM_BLOCKS, offload.MIN_FILE_BYTES = block_bytes, warm, 0
    try:
        yield
    finally:
        offload.BLOCK_BYTES, offload.WARM_BLOCKS, offload.MIN_FILE_BYTES = saved
        if saved_env is None:
            os.environ.pop(helper.ENV_SWITCH, None)
        else:
            os.environ[helper.ENV_SWITCH] = saved_env


def convert(enabled: bool, blob: bytes, **kwargs: Any) -> Published | str:
    """The published result, or the error's type and message."""
    block_bytes = kwargs.pop("block_bytes", 4096)
    with offloaded(enabled, block_bytes=block_bytes):
        try:
            return run_path(blob, CTX, fast=False, **kwargs)
        except Exception as exc:  # compared as text: both paths must fail the same way
            return f"{type(exc).__name__}: {exc}"


def assert_same_as_row_path(blob: bytes, **kwargs: Any) -> Published | str:
    fast = convert(True, blob, **dict(kwargs))
    slow = convert(False, blob, **dict(kwargs))
    assert fast == slow
    return fast


def activity_lines(count: int) -> list[bytes]:
    window = Window(
        dt.datetime(2026, 10, 1, tzinfo=dt.UTC), dt.datetime(2026, 10, 8, tzinfo=dt.UTC)
    )
    rows = cordial_activity_rows(7, rows=count, window=window)
    return [orjson.dumps(row) + b"\n" for row in rows]


GOOD = activity_lines(40)
ODD = [
    b"\n",
    b"   \r\n",
    b"not json\n",
    b"[1, 2]\n",
    b'{"cID": "c1", "_id": "x1", "action": "open", "time": "yesterday"}\n',  # RowError
    b'\xef\xbb\xbf{"cID": "c2", "_id": "x2", "action": "open"}\n',  # a BOM mid-file is data
    b'{"cID": "c3", "_id": "x3", "action": "open", "bad": "\xff"}\n',  # invalid UTF-8
    b'{"cID": "c4", "_id": "x4", "action": "click", "time": "2026-10-01T00:00:00+0000"}\r\n',
]


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(GOOD) + len(ODD) - 1), min_size=1, max_size=80),
    bom=st.booleans(),
    newline_at_end=st.booleans(),
    block=st.integers(16, 3000),
    cuts=st.lists(st.integers(0, 40_000), max_size=6),
    fmt=st.sampled_from(["jsonl", "csv"]),
)
def test_any_mix_of_lines_blocks_and_chunks_gives_the_row_paths_output(
    picks: list[int],
    bom: bool,
    newline_at_end: bool,
    block: int,
    cuts: list[int],
    fmt: str,
) -> None:
    pool = GOOD + ODD
    blob = (b"\xef\xbb\xbf" if bom else b"") + b"".join(pool[i] for i in picks)
    if not newline_at_end:
        blob = blob.rstrip(b"\r\n")
    assert_same_as_row_path(blob, cuts=cuts, block_bytes=block, fmt=fmt)


def test_quarantined_lines_keep_their_numbers_across_many_blocks() -> None:
    lines = [*activity_lines(200)]
    bad_at = [3, 50, 51, 120, 199]
    for index in bad_at:
        lines[index] = ODD[2] if index % 2 else ODD[3]
    lines.insert(100, b"\n")  # a blank line is counted too
    published = assert_same_as_row_path(b"".join(lines), block_bytes=700)
    assert isinstance(published, Published)
    numbers = [
        int(entry.split(b'"line":')[1].split(b",")[0])
        for entry in published.quarantine.splitlines()
    ]
    assert numbers == [4, 51, 52, 122, 201]


def test_a_large_gzipped_file_through_the_helper_is_the_row_paths_output() -> None:
    blob = gzip.compress(b"".join(activity_lines(6000)))
    published = assert_same_as_row_path(blob, cuts=[1000, 70_000], block_bytes=64 * 1024)
    assert isinstance(published, Published)
    assert published.counts[0] == 6000
    assert helper._pool is not None, "the helper process was never used"


def test_parts_roll_at_the_same_records() -> None:
    blob = b"".join(activity_lines(500))
    assert_same_as_row_path(blob, records_per_part=37)


def test_a_line_over_the_limit_fails_the_same_way_on_both_paths() -> None:
    lines = activity_lines(50)
    long_line = b'{"cID": "c", "_id": "long", "note": "' + b"x" * 3000 + b'"}\n'
    for position in (0, 20, 50):
        blob = b"".join([*lines[:position], long_line, *lines[position:]])
        outcome = assert_same_as_row_path(
            blob, parser_options={"jsonl_options": {"max_line_bytes": 2048}}
        )
        assert isinstance(outcome, str) and FieldTooLargeError.__name__ in outcome
        assert f"line {position + 1}" in outcome


def test_a_last_line_without_newline_over_the_limit_fails_the_same_way() -> None:
    blob = b"".join(activity_lines(30)) + b'{"note": "' + b"y" * 5000
    outcome = assert_same_as_row_path(
        blob, parser_options={"jsonl_options": {"max_line_bytes": 2048}}
    )
    assert isinstance(outcome, str) and "line 31" in outcome


def test_a_helper_that_dies_fails_the_file_clearly_and_the_next_file_gets_a_new_one() -> None:
    blob = b"".join(activity_lines(300))
    assert isinstance(convert(True, blob), Published)  # the helper is running now
    pool = helper._pool
    assert pool is not None
    for pid in list(pool._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    outcome = convert(True, blob)
    assert isinstance(outcome, str)
    assert outcome.startswith(TransientError.__name__)
    assert "helper process died" in outcome
    assert convert(True, blob) == convert(False, blob)


def test_the_offload_stays_off_unless_enabled_and_for_parquet_output() -> None:
    saved_env = os.environ.pop(helper.ENV_SWITCH, None)
    saved_enabled = helper._enabled
    try:
        helper._enabled = False
        assert not helper.helper_available()
        helper.enable()
        assert helper.helper_available()
        os.environ[helper.ENV_SWITCH] = "0"
        assert not helper.helper_available()
    finally:
        helper._enabled = saved_enabled
        os.environ.pop(helper.ENV_SWITCH, None)
        if saved_env is not None:
            os.environ[helper.ENV_SWITCH] = saved_env


def test_the_helper_ignores_the_signals_meant_for_its_parent() -> None:
    blob = b"".join(activity_lines(300))
    assert isinstance(convert(True, blob), Published)
    pool = helper._pool
    assert pool is not None
    pids = list(pool._processes)  # type: ignore[attr-defined]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
    asyncio.run(asyncio.sleep(0.2))
    assert convert(True, blob) == convert(False, blob)
    assert list(pool._processes) == pids  # type: ignore[attr-defined]
