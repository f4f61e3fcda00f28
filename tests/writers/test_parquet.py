"""Parquet output: read back with pyarrow and DuckDB, it holds exactly the JSON lines records.

Both conversions of one input (``--format jsonl`` and ``--format parquet``) are compared record
for record: every named field, ``occurred_at`` as a UTC instant, ``attributes`` as the same JSON
object, absent fields as nulls. Parts roll, row groups stay bounded, the manifest names and
hashes every part, the compression codec is Parquet's own, parts land on S3 too, and without
pyarrow the error names the extra to install.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamx.codecs.base import Row
from streamx.convert import convert_files
from streamx.exceptions import ConfigError, StreamxError
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.publish import OutputOptions, Publisher
from streamx.records import FIELDS
from streamx.s3 import S3Config, open_client
from streamx.sinks.s3 import S3Sink
from streamx.testing import data
from streamx.testing.files import csv_chunks, csv_view, write_file
from streamx.writers.parquet import ParquetEncoder, arrow_schema, records_to_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures.servers import moto_config, moto_server

WINDOW = data.Window.days_back(2)
ROWS = 900


@pytest.fixture(scope="module")
def activity_csv() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "activity.csv.gz"
        rows = data.cordial_activity_rows(21, rows=ROWS, window=WINDOW)
        write_file(str(path), csv_chunks(rows, columns=data.ACTIVITY_CSV_COLUMNS), compress=True)
        yield path


def convert(path: Path, out: Path, fmt: str, **options: Any) -> Manifest:
    result = asyncio.run(
        convert_files(
            [str(path)],
            source="cordial",
            stream="contact_activity",
            out=str(out),
            options=OutputOptions(format=fmt, **options),
            export_id="job-3",
            day="2026-11-01",
        )
    )
    return result.manifest


def jsonl_records(out: Path, manifest: Manifest) -> list[dict[str, Any]]:
    records = []
    for part in manifest.parts:
        with gzip.open(out / part.path) as handle:
            records.extend(orjson.loads(line) for line in handle)
    return records


def as_record(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row in the JSON lines shape: nulls omitted, instants as RFC 3339 text."""
    record: dict[str, Any] = {}
    for name in FIELDS:
        value = row[name]
        if value is None:
            continue
        if name == "occurred_at" and not isinstance(value, str):  # DuckDB: text already
            value = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
                f"{value.microsecond // 1000:03d}Z"
            )
        elif name == "attributes":
            value = orjson.loads(value)
        record[name] = value
    return record


@pytest.mark.parametrize("fast", ["1", "0"])
def test_parquet_holds_the_jsonl_records(
    activity_csv: Path, tmp_path: Path, fast: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMX_FASTPATH", fast)
    expected = jsonl_records(tmp_path / "j", convert(activity_csv, tmp_path / "j", "jsonl"))
    manifest = convert(activity_csv, tmp_path / "p", "parquet", max_records_per_part=400)
    assert manifest.format == "parquet" and manifest.compression == "zstd"
    assert [part.records for part in manifest.parts] == [400, 400, 100]
    paths = [tmp_path / "p" / part.path for part in manifest.parts]
    assert all(path.name.endswith(".parquet") for path in paths)

    table = pa.concat_tables(pq.read_table(path) for path in paths)
    assert table.schema.equals(arrow_schema(), check_metadata=True)
    assert [as_record(row) for row in table.to_pylist()] == expected

    files = ", ".join(f"'{path}'" for path in paths)
    instant = "strftime(timezone('UTC', occurred_at), '%Y-%m-%dT%H:%M:%S.%gZ') AS occurred_at"
    relation = duckdb.sql(
        f"SELECT * EXCLUDE (filename, file_row_number) REPLACE ({instant}) FROM read_parquet("
        f"[{files}], filename = true, file_row_number = true) ORDER BY filename, file_row_number"
    )
    rows = [dict(zip(relation.columns, values, strict=True)) for values in relation.fetchall()]
    assert [as_record(row) for row in rows] == expected
    first = duckdb.sql(f"SELECT attributes->>'$.first' FROM read_parquet([{files}]) LIMIT 1")
    assert first.fetchall() == [(expected[0]["attributes"]["first"],)]


def test_manifest_names_and_hashes_each_part(activity_csv: Path, tmp_path: Path) -> None:
    manifest = convert(activity_csv, tmp_path, "parquet", max_records_per_part=500)
    for part in manifest.parts:
        stored = (tmp_path / part.path).read_bytes()
        assert part.bytes == len(stored)
        assert part.sha256 == hashlib.sha256(stored).hexdigest()
        assert pq.ParquetFile(tmp_path / part.path).metadata.num_rows == part.records
    assert manifest.records == ROWS
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("codec", ["zstd", "snappy", "gzip", "none"])
def test_compression_is_the_parquet_codec(activity_csv: Path, tmp_path: Path, codec: str) -> None:
    manifest = convert(activity_csv, tmp_path, "parquet", compression=codec)
    metadata = pq.ParquetFile(tmp_path / manifest.parts[0].path).metadata
    assert metadata.row_group(0).column(0).compression == (
        "UNCOMPRESSED" if codec == "none" else codec.upper()
    )
    assert manifest.compression == codec


def test_bad_codec_or_level_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parquet compression must be one of"):
        convert(tmp_path / "none.csv", tmp_path, "parquet", compression="lz77")
    with pytest.raises(ConfigError, match="takes no level"):
        convert(
            tmp_path / "none.csv", tmp_path, "parquet", compression="snappy", compression_level=3
        )


def test_row_groups_are_bounded(
    activity_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ParquetEncoder, "row_group_rows", 128)
    manifest = convert(activity_csv, tmp_path, "parquet")
    metadata = pq.ParquetFile(tmp_path / manifest.parts[0].path).metadata
    sizes = [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)]
    assert sum(sizes) == ROWS and max(sizes) == 128


def test_metrics_keep_integer_values(tmp_path: Path) -> None:
    days = [dt.date(2026, 10, 30), dt.date(2026, 10, 31)]
    path = tmp_path / "trends.csv"
    write_file(str(path), csv_chunks(data.cordial_audience_trend_rows(4, days=days)))
    result = asyncio.run(
        convert_files(
            [str(path)],
            source="cordial",
            stream="audience_trends",
            out=str(tmp_path / "out"),
            options=OutputOptions(format="parquet"),
            day="2026-11-01",
        )
    )
    table = pq.read_table(tmp_path / "out" / result.manifest.parts[0].path)
    assert table.schema.field("value").type == pa.int64()
    assert table.num_rows == len(data.AUDIENCES) * len(days)
    assert all(isinstance(value, int) for value in table.column("value").to_pylist())


def test_records_outside_the_schema_are_refused() -> None:
    with pytest.raises(StreamxError, match="outside schema v1"):
        records_to_batch([{"source": "cordial", "surprise": 1}])


def test_without_pyarrow_the_error_names_the_extra(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from streamx.cli import main\n"
        f"raise SystemExit(main(['convert', {str(tmp_path / 'x.csv')!r}, '--source', 'cordial',"
        f" '--stream', 'contact_activity', '--out', {str(tmp_path)!r}, '--format', 'parquet']))"
    )
    (tmp_path / "x.csv").write_text("cID,time\n1,2017-03-13T22:48:40+0000\n")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "pip install 'streamx[parquet]'" in result.stderr


def test_parquet_parts_land_on_s3() -> None:
    """The S3 multipart sink gets each part streamed through, readable and hashed."""
    ctx = ExportContext("cordial", "cordial.contact_activity", "acct", "job-9")
    normalize = get_normalizer(ctx.stream)
    rows = data.cordial_activity_rows(2, rows=300, window=WINDOW)
    records = [
        record
        for line, row in enumerate(rows, 2)
        for record in normalize(Row(line, csv_view(row, data.ACTIVITY_CSV_COLUMNS)), ctx)
    ]

    async def run(config: S3Config) -> tuple[Manifest, list[bytes]]:
        async with open_client(config) as client:
            await client.create_bucket(Bucket="parquet-test")
            sink = S3Sink("parquet-test", "out", client=client)
            options = OutputOptions(format="parquet", max_records_per_part=200)
            async with Publisher(sink, ctx, options, dt="2026-11-01") as publisher:
                await publisher.write_records(records)
                publisher.count_source_file("f", rows_read=len(records), bytes_read=0)
                manifest = await publisher.commit()
            blobs = []
            for part in manifest.parts:
                answer = await client.get_object(Bucket="parquet-test", Key=f"out/{part.path}")
                async with answer["Body"] as body:
                    blobs.append(await body.read())
            await sink.close()
        return manifest, blobs

    with moto_server() as endpoint:
        manifest, blobs = asyncio.run(run(moto_config(endpoint)))
    assert [part.records for part in manifest.parts] == [200, 100]
    for part, blob in zip(manifest.parts, blobs, strict=True):
        assert hashlib.sha256(blob).hexdigest() == part.sha256
        assert pq.read_table(pa.BufferReader(blob)).num_rows == part.records


def test_columns_that_never_repeat_get_no_dictionary_and_no_statistics(
    activity_csv: Path, tmp_path: Path
) -> None:
    manifest = convert(activity_csv, tmp_path, "parquet")
    group = pq.ParquetFile(tmp_path / manifest.parts[0].path).metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    for name in ("record_id", "attributes"):
        assert "RLE_DICTIONARY" not in columns[name].encodings
        assert not columns[name].is_stats_set
    # The columns queries filter on keep both: pruning by time and by event type works.
    for name in ("occurred_at", "event_type", "contact_id"):
        assert columns[name].is_stats_set
    assert "RLE_DICTIONARY" in columns["event_type"].encodings
    occurred = columns["occurred_at"].statistics
    assert occurred.has_min_max and occurred.min <= occurred.max
