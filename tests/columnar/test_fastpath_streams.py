"""Columnar path == row path on generated exports of every stream it serves, in every format."""

from __future__ import annotations

import asyncio
import gzip
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from columnar_helpers import assert_same, chunked, fast_path, run_path

from streamx.codecs.base import ParsedItem
from streamx.columnar import open_fast_path
from streamx.columnar.plans import STREAMS_SERVED, vector_plan
from streamx.normalize.base import ExportContext
from streamx.normalize.cordial import list_column_labels
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import FileStats
from streamx.publish import OutputOptions, Publisher
from streamx.records import STREAMS
from streamx.sinks.local import LocalSink
from streamx.testing import data
from streamx.testing.files import csv_chunks

WINDOW = data.Window.days_back(3)
ROWS = 1500
SYMPLIFY_TYPES = {info.name: info.vendor_export for info in STREAMS.values()}


def rows_of(stream: str, seed: int = 5, rows: int = ROWS) -> Iterator[dict[str, Any]]:
    if stream == "cordial.contact_activity":
        return data.cordial_activity_rows(seed, rows=rows, window=WINDOW)
    if stream == "cordial.contacts":
        return data.cordial_contact_rows(seed, rows=rows)
    return data.symplify_rows(seed, export_type=SYMPLIFY_TYPES[stream], rows=rows, window=WINDOW)


def csv_file(stream: str, **options: Any) -> bytes:
    columns = data.ACTIVITY_CSV_COLUMNS if stream == "cordial.contact_activity" else None
    return b"".join(csv_chunks(rows_of(stream, **options), columns=columns))


def context(stream: str, labels: dict[str, str] | None = None) -> ExportContext:
    return ExportContext(stream.split(".")[0], stream, "acct 1", "job-7", labels or {})


@pytest.mark.parametrize("stream", sorted(STREAMS_SERVED))
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_served_stream_matches_the_row_path(stream: str, fmt: str) -> None:
    blob = gzip.compress(csv_file(stream))
    ctx = context(stream)
    cuts = [1000, 5000, 23_456]
    fast = run_path(blob, ctx, fast=True, fmt=fmt, cuts=cuts, block_bytes=16 * 1024)
    slow = run_path(blob, ctx, fast=False, fmt=fmt, cuts=cuts)
    assert slow.counts[0] == ROWS and slow.counts[2] == 0
    assert_same(fast, slow)


def test_rolling_parts_cut_at_the_same_records() -> None:
    ctx = context("cordial.contact_activity")
    blob = csv_file("cordial.contact_activity")
    fast = run_path(blob, ctx, fast=True, block_bytes=8 * 1024, records_per_part=97)
    slow = run_path(blob, ctx, fast=False, records_per_part=97)
    assert len(slow.parts) == -(-ROWS // 97)
    assert_same(fast, slow)


def test_renamed_columns_and_rows_without_ids() -> None:
    """column_labels rename columns; without ``_id`` every record_id is a row hash."""
    columns = [c for c in data.ACTIVITY_CSV_COLUMNS if c != "_id"]
    renamed = {"bmID": "msID", "time": "Event Time", "cID": "Contact"}
    rows = data.cordial_activity_rows(9, rows=800, window=WINDOW)
    header = [renamed.get(name, name) for name in columns]
    blob = b"".join(csv_chunks(_renamed(_without(rows, "_id"), renamed), columns=header))
    labels = {"msID": "bmID", "Event Time": "time", "Contact": "cID"}
    ctx = context("cordial.contact_activity", labels)
    assert_same(run_path(blob, ctx, fast=True, block_bytes=4096), run_path(blob, ctx, fast=False))


def _without(rows: Iterator[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for row in rows:
        row.pop(key, None)
        yield row


def _renamed(rows: Iterator[dict[str, Any]], names: dict[str, str]) -> Iterator[dict[str, Any]]:
    for row in rows:
        yield {names.get(key, key): value for key, value in row.items()}


def test_contacts_with_declared_lists_take_the_row_path() -> None:
    ctx = context("cordial.contacts", list_column_labels(data.LISTS))
    keys = tuple(next(data.cordial_contact_rows(1, rows=1)))
    assert vector_plan(ctx, keys) is None
    blob = csv_file("cordial.contacts")
    assert_same(run_path(blob, ctx, fast=True), run_path(blob, ctx, fast=False))


def test_audience_trends_and_json_inputs_are_left_to_the_row_path() -> None:
    assert "cordial.audience_trends" not in STREAMS_SERVED
    ctx = context("cordial.contact_activity")
    rows = list(data.cordial_activity_rows(2, rows=300, window=WINDOW))
    from streamx.testing.files import json_array_chunks, jsonl_chunks

    for blob in (b"".join(jsonl_chunks(rows)), b"".join(json_array_chunks(rows))):
        fast = run_path(blob, ctx, fast=True, block_bytes=2048)
        assert fast.counts[1] == 300
        assert_same(fast, run_path(blob, ctx, fast=False))


class _Spy:
    """Collects what the fast path hands to the row consumer (the pipeline's ``_consume``)."""

    def __init__(self) -> None:
        self.items: list[ParsedItem] = []

    async def __call__(self, items: list[ParsedItem]) -> None:
        self.items.extend(items)


def test_clean_blocks_are_taken_by_the_fast_lane() -> None:
    """Only the header goes through the row parser: every row is parsed by pyarrow."""
    blob = csv_file("symplify.opens")
    ctx = context("symplify.opens")

    async def run() -> tuple[FileStats, _Spy]:
        with tempfile.TemporaryDirectory() as tmp:
            sink = LocalSink(Path(tmp))
            stats, spy = FileStats("f"), _Spy()
            async with Publisher(sink, ctx, OutputOptions(), dt="2026-11-01") as publisher:
                fast = open_fast_path(ctx, get_normalizer(ctx.stream), publisher, {}, stats, spy)
                assert fast is not None
                async for chunk in chunked(blob, [100, 70_000]):
                    assert await fast.feed(chunk) is None
                assert await fast.finish() is None
                publisher.count_source_file("f", rows_read=stats.rows_read, bytes_read=0)
                await publisher.commit()
            await sink.close()
            return stats, spy

    with fast_path(True, block_bytes=32 * 1024):
        stats, spy = asyncio.run(run())
    assert spy.items == []
    assert stats.rows_read == stats.rows_ok == stats.records == ROWS
    assert stats.format == "csv"


def test_fast_path_switch_and_unserved_setups() -> None:
    ctx = context("symplify.opens")

    async def opened(options: dict[str, Any], normalizer: Any = None) -> object:
        with tempfile.TemporaryDirectory() as tmp:
            sink = LocalSink(Path(tmp))
            async with Publisher(sink, ctx, OutputOptions(), dt="2026-11-01") as publisher:
                chosen = normalizer or get_normalizer(ctx.stream)
                return open_fast_path(ctx, chosen, publisher, options, FileStats("f"), _Spy())

    with fast_path(True):
        assert asyncio.run(opened({})) is not None
        assert asyncio.run(opened({"csv_options": {"delimiter": ";"}})) is not None
        assert asyncio.run(opened({"csv_options": {"encoding": "latin-1"}})) is None
        assert asyncio.run(opened({}, normalizer=lambda row, ctx: [])) is None
    with fast_path(False):
        assert asyncio.run(opened({})) is None
