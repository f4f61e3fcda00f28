"""Publisher: rolling parts, quarantine, manifest last, and nothing visible unless committed."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from streamx.bytes_like import Bytes
from streamx.exceptions import ConfigError, SinkError, StreamxError
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.publish import OutputOptions, Publisher
from streamx.records import FIELDS, SCHEMA_VERSION
from streamx.sinks.base import PartUpload
from streamx.sinks.local import LocalSink
from streamx.writers.encoders import get_encoder

REPO = Path(__file__).resolve().parents[2]
CTX = ExportContext(source="symplify", stream="symplify.opens", account="acme", export_id="101")
DT = "2024-05-01"
DIR = f"symplify/symplify.opens/dt={DT}"
RFC3339_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def make_records(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "source": "symplify",
            "stream": "symplify.opens",
            "kind": "event",
            "account": "acme",
            "export_id": "101",
            "record_id": f"r{i}",
            "occurred_at": "2024-05-01T10:00:00.000Z",
            "event_type": "open",
            "contact_id": str(i),
            "email": f"user{i}@example.com",
            "value": i,
            "attributes": {"i": i, "text": 'a,b "c"\nd'},
        }
        for i in range(start, start + count)
    ]


def read_stored(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def read_part(path: Path) -> list[dict[str, Any]]:
    text = read_stored(path)
    if ".jsonl" in path.name:
        return [orjson.loads(line) for line in text.splitlines()]
    rows = list(csv.DictReader(io.StringIO(text.decode(), newline="")))
    assert all(list(row) == list(FIELDS) for row in rows)
    return rows


def as_csv_row(record: dict[str, Any]) -> dict[str, str]:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return str(value)

    return {name: cell(record.get(name)) for name in FIELDS}


def visible(root: Path) -> list[str]:
    """Files a reader sees: everything not starting with '.'."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def publisher(root: Path, **options: Any) -> Publisher:
    return Publisher(LocalSink(root), CTX, OutputOptions(**options), dt=DT)


async def publish(
    root: Path, batches: list[list[dict[str, Any]]], **options: Any
) -> tuple[Manifest, Publisher]:
    async with publisher(root, **options) as pub:
        for batch in batches:
            await pub.write_records(batch)
        pub.count_source_file("in.csv", rows_read=sum(map(len, batches)), bytes_read=123)
        manifest = await pub.commit()
    return manifest, pub


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.asyncio
async def test_round_trip(tmp_path: Path, fmt: str, compression: str) -> None:
    records = make_records(250)
    batches = [records[i : i + 40] for i in range(0, 250, 40)]
    manifest, _ = await publish(
        tmp_path, batches, format=fmt, compression=compression, max_records_per_part=100
    )
    suffix = {"gzip": ".gz", "zstd": ".zst", "none": ""}[compression]
    names = [f"{DIR}/acme-101-part-{i:05d}.{fmt}{suffix}" for i in range(3)]
    assert [part.path for part in manifest.parts] == names
    assert visible(tmp_path) == sorted([*names, f"{DIR}/acme-101.manifest.json"])
    back = [row for part in manifest.parts for row in read_part(tmp_path / part.path)]
    expected = records if fmt == "jsonl" else [as_csv_row(r) for r in records]
    assert back == expected


@pytest.mark.asyncio
async def test_rolls_by_record_count(tmp_path: Path) -> None:
    records = make_records(35)
    manifest, _ = await publish(
        tmp_path, [records[i : i + 7] for i in range(0, 35, 7)], max_records_per_part=10
    )
    assert [part.records for part in manifest.parts] == [10, 10, 10, 5]
    assert [part.path for part in manifest.parts] == [
        f"{DIR}/acme-101-part-{i:05d}.jsonl.gz" for i in range(4)
    ]
    back = [row for part in manifest.parts for row in read_part(tmp_path / part.path)]
    assert back == records


@pytest.mark.asyncio
async def test_exact_multiple_makes_no_empty_part(tmp_path: Path) -> None:
    manifest, _ = await publish(tmp_path, [make_records(20)], max_records_per_part=10)
    assert [part.records for part in manifest.parts] == [10, 10]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.asyncio
async def test_rolls_by_uncompressed_bytes_at_record_boundaries(tmp_path: Path, fmt: str) -> None:
    records = make_records(300)
    limit = 4000
    manifest, _ = await publish(
        tmp_path, [records[:170], records[170:]], format=fmt, max_bytes_per_part=limit
    )
    assert len(manifest.parts) > 5
    encoder = get_encoder(fmt)
    back: list[dict[str, Any]] = []
    for part in manifest.parts:
        raw = read_stored(tmp_path / part.path)
        assert len(raw) == part.uncompressed_bytes <= limit
        rows = read_part(tmp_path / part.path)
        assert len(rows) == part.records
        back.extend(rows)
        if len(back) < len(records):  # packed tight: the next record would not have fit
            (next_record,) = encoder.encode([records[len(back)]])
            assert part.uncompressed_bytes + len(next_record) > limit
    assert back == (records if fmt == "jsonl" else [as_csv_row(r) for r in records])


@pytest.mark.asyncio
async def test_record_larger_than_a_part_gets_a_part_of_its_own(tmp_path: Path) -> None:
    records = make_records(5)
    records[2]["attributes"]["blob"] = "x" * 5000
    manifest, _ = await publish(tmp_path, [records], max_bytes_per_part=1000)
    assert [part.records for part in manifest.parts] == [2, 1, 2]
    assert manifest.parts[1].uncompressed_bytes > 5000
    back = [row for part in manifest.parts for row in read_part(tmp_path / part.path)]
    assert back == records


@pytest.mark.asyncio
async def test_manifest_matches_the_files_on_disk(tmp_path: Path) -> None:
    async with publisher(tmp_path, max_records_per_part=50) as pub:
        await pub.write_records(make_records(120))
        await pub.quarantine("a.csv", 7, "bad timestamp", "x,y,z")
        pub.count_source_file("a.csv", rows_read=61, bytes_read=1000)
        pub.count_source_file("b.csv", rows_read=60, bytes_read=900)
        manifest = await pub.commit()
    assert pub.manifest_relpath == f"{DIR}/acme-101.manifest.json"
    on_disk = Manifest.from_json((tmp_path / pub.manifest_relpath).read_bytes())
    assert on_disk == manifest
    assert Manifest.from_json(manifest.to_json()) == manifest
    for part in manifest.parts:
        stored = (tmp_path / part.path).read_bytes()
        assert part.bytes == len(stored)
        assert part.sha256 == hashlib.sha256(stored).hexdigest()
        assert part.uncompressed_bytes == len(gzip.decompress(stored))
    assert [part.records for part in manifest.parts] == [50, 50, 20]
    assert (manifest.schema_version, manifest.format, manifest.compression) == (
        SCHEMA_VERSION,
        "jsonl",
        "gzip",
    )
    assert (manifest.source, manifest.stream, manifest.account, manifest.export_id) == (
        "symplify",
        "symplify.opens",
        "acme",
        "101",
    )
    assert manifest.dt == DT
    assert (manifest.records, manifest.rows_read, manifest.rows_ok) == (120, 121, 120)
    assert manifest.rows_quarantined == 1
    assert manifest.quarantine == f"{DIR}/acme-101-quarantine.jsonl"
    assert manifest.source_files == [
        {"name": "a.csv", "rows_read": 61, "bytes_read": 1000},
        {"name": "b.csv", "rows_read": 60, "bytes_read": 900},
    ]
    assert RFC3339_MS.fullmatch(manifest.started_at)
    assert RFC3339_MS.fullmatch(manifest.finished_at)
    assert manifest.started_at <= manifest.finished_at
    assert manifest.streamx_version


@pytest.mark.asyncio
async def test_quarantine_file_lines(tmp_path: Path) -> None:
    bad = [
        ("a.csv", 3, "unclosed quote", 'x,"y'),
        ("a.csv", 9, "bad timestamp", "1,2,not-a-date"),
        ("b.jsonl", 1, "invalid JSON", "{oops \udcff"),
    ]
    async with publisher(tmp_path) as pub:
        await pub.write_records(make_records(4))
        for file, line, reason, raw in bad:
            await pub.quarantine(file, line, reason, raw)
        pub.count_source_file("a.csv", rows_read=6, bytes_read=10)
        pub.count_source_file("b.jsonl", rows_read=1, bytes_read=10)
        manifest = await pub.commit()
    assert manifest.quarantine is not None
    lines = (tmp_path / manifest.quarantine).read_bytes().splitlines()
    entries = [orjson.loads(line) for line in lines]
    assert [list(entry) for entry in entries] == [["file", "line", "reason", "raw"]] * 3
    assert [(e["file"], e["line"], e["reason"]) for e in entries] == [b[:3] for b in bad]
    assert [e["raw"] for e in entries[:2]] == ['x,"y', "1,2,not-a-date"]
    assert entries[2]["raw"] == "{oops \\udcff"  # undecodable byte kept visible, row not lost


@pytest.mark.asyncio
async def test_no_quarantine_file_when_nothing_was_quarantined(tmp_path: Path) -> None:
    manifest, _ = await publish(tmp_path, [make_records(3)])
    assert manifest.quarantine is None
    assert not any("quarantine" in name for name in visible(tmp_path))


@pytest.mark.asyncio
async def test_unpivoted_rows_count_source_rows_not_records(tmp_path: Path) -> None:
    async with publisher(tmp_path) as pub:
        await pub.write_records(make_records(30), rows=3)  # 3 audience rows x 10 days
        await pub.write_records([], rows=2)  # rows that produced no record
        pub.count_source_file("trends.csv", rows_read=5, bytes_read=10)
        manifest = await pub.commit()
    assert (manifest.records, manifest.rows_ok, manifest.rows_read) == (30, 5, 5)


@pytest.mark.asyncio
async def test_export_with_no_records_publishes_only_a_manifest(tmp_path: Path) -> None:
    async with publisher(tmp_path) as pub:
        pub.count_source_file("empty.csv", rows_read=0, bytes_read=0)
        manifest = await pub.commit()
    assert manifest.parts == [] and manifest.records == 0
    assert visible(tmp_path) == [f"{DIR}/acme-101.manifest.json"]


@pytest.mark.asyncio
async def test_accounting_mismatch_raises_and_publishes_nothing(tmp_path: Path) -> None:
    async with publisher(tmp_path, max_records_per_part=10) as pub:
        await pub.write_records(make_records(25))
        await pub.quarantine("a.csv", 2, "bad", "raw")
        pub.count_source_file("a.csv", rows_read=25, bytes_read=100)  # 25 + 1 != 25
        with pytest.raises(StreamxError, match=r"25 ok \+ 1 quarantined != 25 read"):
            await pub.commit()
    assert visible(tmp_path) == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.asyncio
async def test_parts_stay_hidden_until_commit_and_the_manifest_comes_last(tmp_path: Path) -> None:
    sink = _OrderRecordingSink(tmp_path)
    async with Publisher(sink, CTX, OutputOptions(max_records_per_part=10), dt=DT) as pub:
        await pub.write_records(make_records(35))
        await pub.quarantine("a.csv", 1, "bad", "raw")
        pub.count_source_file("a.csv", rows_read=36, bytes_read=1)
        assert visible(tmp_path) == []  # four parts written, none under a final name
        assert len([p for p in tmp_path.rglob(".*.tmp-*")]) == 5
        await pub.commit()
    assert sink.committed[-1] == pub.manifest_relpath
    assert sorted(sink.committed[:-1]) == sorted(visible(tmp_path)[:-1])
    assert len(sink.committed) == 6  # 4 parts + quarantine + manifest


@pytest.mark.asyncio
async def test_exception_inside_async_with_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with publisher(tmp_path, max_records_per_part=10) as pub:
            await pub.write_records(make_records(35))
            await pub.quarantine("a.csv", 1, "bad", "raw")
            raise RuntimeError("boom")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.asyncio
async def test_leaving_without_commit_aborts(tmp_path: Path) -> None:
    async with publisher(tmp_path, max_records_per_part=10) as pub:
        await pub.write_records(make_records(15))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(StreamxError, match="aborted"):
        await pub.write_records(make_records(1))


@pytest.mark.asyncio
async def test_sink_failure_mid_export_aborts_every_upload(tmp_path: Path) -> None:
    sink = _FailingSink(tmp_path, fail_on_open=3)
    with pytest.raises(SinkError, match="injected"):
        async with Publisher(sink, CTX, OutputOptions(max_records_per_part=10), dt=DT) as pub:
            await pub.write_records(make_records(50))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.asyncio
async def test_rerun_replaces_the_same_names(tmp_path: Path) -> None:
    await publish(tmp_path, [make_records(5)])
    manifest, _ = await publish(tmp_path, [make_records(5, start=100)])
    (part,) = manifest.parts
    assert [r["record_id"] for r in read_part(tmp_path / part.path)] == [
        f"r{i}" for i in range(100, 105)
    ]
    assert hashlib.sha256((tmp_path / part.path).read_bytes()).hexdigest() == part.sha256


@pytest.mark.asyncio
async def test_prefix_and_layout(tmp_path: Path) -> None:
    pub = Publisher(LocalSink(tmp_path), CTX, OutputOptions(format="csv"), dt=DT, prefix="/lake/")
    async with pub:
        await pub.write_records(make_records(1))
        pub.count_source_file("x", rows_read=1, bytes_read=1)
        await pub.commit()
    assert visible(tmp_path) == [
        f"lake/{DIR}/acme-101-part-00000.csv.gz",
        f"lake/{DIR}/acme-101.manifest.json",
    ]


def test_prefix_escaping_the_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="refusing path"):
        Publisher(LocalSink(tmp_path), CTX, OutputOptions(), dt=DT, prefix="../outside")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"account": "a/b"}, "account"),
        ({"export_id": ".."}, "export id"),
        ({"export_id": ""}, "export id"),
        ({"account": ".hidden"}, "account"),
        ({"stream": "x\ny"}, "stream"),
    ],
)
def test_names_unusable_in_paths_are_refused(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    ctx = _ctx(**change)
    with pytest.raises(ConfigError, match=message):
        Publisher(LocalSink(tmp_path), ctx, OutputOptions(), dt=DT)


@pytest.mark.parametrize(
    ("options", "dt", "message"),
    [
        ({"format": "xml"}, DT, "unknown output format"),
        ({"compression": "lz4"}, DT, "unknown compression"),
        ({"compression_level": 99}, DT, "level"),
        ({"max_records_per_part": 0}, DT, "max_records_per_part"),
        ({"max_bytes_per_part": 0}, DT, "max_bytes_per_part"),
        ({}, "2024-5-1", "dt must be"),
        ({}, "2024-02-30", "dt must be"),
    ],
)
def test_bad_options_are_config_errors(
    tmp_path: Path, options: dict[str, Any], dt: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Publisher(LocalSink(tmp_path), CTX, OutputOptions(**options), dt=dt)


@pytest.mark.asyncio
async def test_source_file_counts_add_up_per_name(tmp_path: Path) -> None:
    async with publisher(tmp_path) as pub:
        await pub.write_records(make_records(3))
        pub.count_source_file("a.csv", rows_read=1, bytes_read=10)
        pub.count_source_file("a.csv", rows_read=2, bytes_read=20)
        manifest = await pub.commit()
    assert manifest.source_files == [{"name": "a.csv", "rows_read": 3, "bytes_read": 30}]
    with pytest.raises(StreamxError, match="committed"):
        await pub.commit()


def test_manifest_from_json_rejects_malformed_input() -> None:
    with pytest.raises(StreamxError, match="not valid JSON"):
        Manifest.from_json(b"{")
    with pytest.raises(StreamxError, match="missing 'source'"):
        Manifest.from_json(b'{"schema_version": 1}')
    with pytest.raises(StreamxError, match="'records' has the wrong type"):
        Manifest.from_json(_manifest_json(records="12"))
    with pytest.raises(StreamxError, match="not a JSON object"):
        Manifest.from_json(b"[]")


def _manifest_json(**change: Any) -> bytes:
    data = {
        "schema_version": 1,
        "source": "cordial",
        "stream": "cordial.contacts",
        "account": "a",
        "export_id": "1",
        "dt": DT,
        "format": "jsonl",
        "compression": "gzip",
        "parts": [],
        "records": 0,
        "rows_read": 0,
        "rows_ok": 0,
        "rows_quarantined": 0,
        "quarantine": None,
        "source_files": [],
        "started_at": "2024-05-01T00:00:00.000Z",
        "finished_at": "2024-05-01T00:00:00.000Z",
        "streamx_version": "0.1.0",
    }
    data.update(change)
    return orjson.dumps(data)


def test_manifest_from_json_ignores_unknown_keys() -> None:
    manifest = Manifest.from_json(_manifest_json(added_in_v2=True))
    assert manifest.records == 0 and manifest.quarantine is None


_CRASH = """
import asyncio, sys
from streamx.normalize.base import ExportContext
from streamx.publish import OutputOptions, Publisher
from streamx.sinks.local import LocalSink
from streamx.writers.encoders import get_encoder

async def main() -> None:
    ctx = ExportContext("symplify", "symplify.opens", "acme", "101")
    options = OutputOptions(max_records_per_part=100)
    pub = Publisher(LocalSink(sys.argv[1]), ctx, options, dt="2024-05-01")
    for batch in range(5):
        await pub.write_records([{"record_id": f"r{batch}-{i}", "value": i} for i in range(90)])
    await pub.quarantine("a.csv", 1, "bad", "raw")
    pub.count_source_file("a.csv", rows_read=451, bytes_read=1)
    print("READY", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_killed_before_commit_leaves_no_final_names(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"READY\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(leftovers) == 6  # parts 00000-00004 (4 finished, 1 open) and the quarantine
    assert all(p.name.startswith(".") and ".tmp-" in p.name for p in leftovers)
    assert visible_names(tmp_path) == []


def visible_names(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]


def _ctx(**change: str) -> ExportContext:
    return ExportContext(
        source=change.get("source", CTX.source),
        stream=change.get("stream", CTX.stream),
        account=change.get("account", CTX.account),
        export_id=change.get("export_id", CTX.export_id),
    )


class _OrderRecordingSink(LocalSink):
    """A LocalSink that remembers the order in which objects were committed."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.committed: list[str] = []

    async def open(self, relpath: str) -> Any:
        upload = await super().open(relpath)
        return _Recorded(upload, relpath, self.committed)


class _Recorded:
    def __init__(self, inner: PartUpload, relpath: str, log: list[str]) -> None:
        self._inner, self._relpath, self._log = inner, relpath, log

    async def write(self, data: Bytes) -> None:
        await self._inner.write(data)

    async def finish(self) -> None:
        await self._inner.finish()

    async def commit(self) -> None:
        await self._inner.commit()
        self._log.append(self._relpath)

    async def abort(self) -> None:
        await self._inner.abort()


class _FailingSink(LocalSink):
    """A LocalSink whose n-th open fails, as a remote sink refusing a new upload would."""

    def __init__(self, root: Path, fail_on_open: int) -> None:
        super().__init__(root)
        self._left = fail_on_open

    async def open(self, relpath: str) -> Any:
        self._left -= 1
        if self._left == 0:
            raise SinkError(f"injected failure opening {relpath}")
        return await super().open(relpath)
