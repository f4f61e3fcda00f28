"""The whole chain for one file: any chunking of the bytes gives the same published records."""

from __future__ import annotations

import asyncio
import gzip
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamx.codecs.base import Row
from streamx.exceptions import CorruptInputError
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.sinks.local import LocalSink
from streamx.testing import data
from streamx.testing.files import csv_view, encode_chunks

CTX = ExportContext("cordial", "cordial.contact_activity", "acct", "job-1")
ROWS = list(data.cordial_activity_rows(11, rows=120, window=data.Window.days_back(1)))
CSV = b"".join(encode_chunks(ROWS, "csv", columns=data.ACTIVITY_CSV_COLUMNS))
# Two gzip members, split inside a quoted field with a newline: real exports are concatenated.
MIDDLE = CSV.index(b"\n", len(CSV) // 2) - 3
GZ_MULTI = gzip.compress(CSV[:MIDDLE]) + gzip.compress(CSV[MIDDLE:])


async def chunked(blob: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    previous = 0
    for cut in [*sorted(set(cuts)), len(blob)]:
        if cut > previous:
            yield blob[previous:cut]
            previous = cut


async def convert(blob: bytes, cuts: list[int], root: Path) -> tuple[Manifest, list[bytes]]:
    sink = LocalSink(root)
    options = OutputOptions(compression="none", max_records_per_part=50)
    async with Publisher(sink, CTX, options, dt="2026-11-01") as publisher:
        stats = await ingest_file(
            chunked(blob, cuts),
            name="multi.csv.gz",
            ctx=CTX,
            normalizer=get_normalizer(CTX.stream),
            publisher=publisher,
        )
        manifest = await publisher.commit()
    assert stats.compressed and stats.format == "csv"
    lines = [
        line for part in manifest.parts for line in (root / part.path).read_bytes().splitlines()
    ]
    return manifest, lines


def expected_records() -> list[bytes]:
    """The generator's rows normalized in memory: what the chain must publish, byte for byte."""
    normalize = get_normalizer(CTX.stream)
    whole: list[bytes] = []
    for line, row in enumerate(ROWS, start=2):
        view = csv_view(row, data.ACTIVITY_CSV_COLUMNS)
        whole.extend(orjson.dumps(r) for r in normalize(Row(line, view), CTX))
    return whole


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=len(GZ_MULTI)), max_size=40))
def test_any_chunking_publishes_the_same_records(cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manifest, lines = asyncio.run(convert(GZ_MULTI, cuts, Path(tmp)))
    assert manifest.rows_read == manifest.rows_ok == len(ROWS)
    assert len(manifest.parts) == 3  # 120 records, 50 per part
    assert lines == EXPECTED


EXPECTED: list[bytes] = []


def setup_module() -> None:
    EXPECTED.extend(expected_records())


@pytest.mark.asyncio
async def test_truncated_member_is_an_error_and_nothing_is_published(tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError) as caught:
        await convert(GZ_MULTI[:-5], [4096], tmp_path)
    assert "multi.csv.gz" in str(caught.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
