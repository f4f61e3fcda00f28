"""Abuse: hostile input sizes, shapes, encodings and names never crash, leak or escape.

* a gzip bomb stops at the ratio cap with a clear error, in bounded memory;
* a 1 GB CSV field (or JSON line) is refused at the field bound, in flat memory: the input is
  generated lazily and only ~16 MiB of it is ever read;
* deep JSON nesting is quarantined or a clear error, never a ``RecursionError`` and never a
  crash of the writer;
* invalid UTF-8 is quarantined with its line (a data row) or a clear error (a CSV header);
* vendor-supplied names (batch and job ids, result URLs, landing files) and config paths never
  lead outside the output directory or the landing root, and symlinks in the local sink are
  not followed out of it.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from streamx.codecs.gzip import GzipDecoder
from streamx.codecs.jsonarray import JsonArrayParser
from streamx.config import AccountConfig, Config, ExportSpec, LandingConfig, OutputConfig
from streamx.engine.clock import FakeClock
from streamx.engine.runner import Engine, ExportResult
from streamx.exceptions import (
    CorruptInputError,
    DecompressionBombError,
    FieldTooLargeError,
    PermanentError,
    SinkError,
)
from streamx.landing import LocalLandingZone
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import FileStats, ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.sinks.local import LocalSink
from streamx.testing.harness import FAST_ENGINE, SimHarness
from streamx.testing.seeded import SeededProvider

MIB = 1 << 20
CTX = ExportContext("symplify", "symplify.opens", "acct", "101")


class Counted:
    """An async byte stream that remembers how much of it was consumed."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            self.consumed += len(chunk)
            yield chunk
            await asyncio.sleep(0)


async def ingest(
    out: Path,
    chunks: Any,
    *,
    ctx: ExportContext = CTX,
    name: str = "result.bin",
    fmt: str = "jsonl",
) -> tuple[FileStats, Manifest]:
    """One file through the real chain into a real local sink."""
    options = OutputOptions(format=fmt, compression="none")
    async with Publisher(LocalSink(out), ctx, options, dt="2026-11-01") as publisher:
        stats = await ingest_file(
            chunks, name=name, ctx=ctx, normalizer=get_normalizer(ctx.stream), publisher=publisher
        )
        return stats, await publisher.commit()


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() or path.is_symlink())


def quarantined(out: Path, manifest: Manifest) -> list[dict[str, Any]]:
    assert manifest.quarantine is not None
    return [orjson.loads(line) for line in (out / manifest.quarantine).read_bytes().splitlines()]


def peak_memory(run: Any) -> tuple[Any, int]:
    """Run the coroutine ``run`` under tracemalloc; its outcome (or exception) and peak bytes."""
    tracemalloc.start()
    try:
        try:
            outcome: Any = asyncio.run(run)
        except Exception as exc:
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- sizes -------------------------------------------------------------------------------------


def gzip_bomb(total: int) -> Iterator[bytes]:
    """``total`` zero bytes gzipped, produced lazily (the bomb is never in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    for _ in range(total // MIB):
        piece = compressor.compress(zeros)
        if piece:
            yield piece
    yield compressor.flush()


def test_a_gzip_bomb_stops_at_the_ratio_cap_in_bounded_memory() -> None:
    bomb = gzip_bomb(100 * 1024 * MIB)  # 100 GiB of zeros, ~100 MB gzipped, made lazily
    decoder = GzipDecoder()  # the pipeline's defaults: ratio 1000, checked past 64 MiB
    consumed = 0

    async def decode() -> None:
        nonlocal consumed
        for chunk in bomb:
            consumed += len(chunk)
            decoder.feed(chunk)  # output dropped: only the decoder's own memory counts
        decoder.flush()

    error, peak = peak_memory(decode())
    assert isinstance(error, DecompressionBombError), error
    assert "exceeds the allowed ratio 1000" in str(error) and error.offset is not None
    assert consumed < 2 * MIB  # stopped at once, not after reading the whole bomb
    assert peak < 160 * MIB  # the 64 MiB floor of the check plus one piece, never the bomb


def test_a_gzip_bomb_through_the_chain_fails_fast_and_publishes_nothing(tmp_path: Path) -> None:
    """Zeros are no CSV record either: whichever bound fires first, the error is clear, the
    memory bounded and almost none of the bomb is read."""
    bomb = Counted(gzip_bomb(100 * 1024 * MIB))
    error, peak = peak_memory(ingest(tmp_path / "out", bomb, name="bomb.json.gz"))
    assert isinstance(error, DecompressionBombError | FieldTooLargeError), error
    assert str(error).startswith("bomb.json.gz, ")
    assert bomb.consumed < 2 * MIB
    assert peak < 160 * MIB
    assert files_under(tmp_path / "out") == []


def huge_field(total: int, *, quoted: bool) -> Iterator[bytes]:
    """A CSV whose second record holds one ``total``-byte field, generated lazily."""
    yield b"eventId,note\n1," + (b'"' if quoted else b"")
    block = b"a" * MIB
    for _ in range(total // MIB):
        yield block
    yield (b'"' if quoted else b"") + b"\n"


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_a_1_gb_csv_field_is_refused_at_the_bound_in_flat_memory(
    tmp_path: Path, quoted: bool
) -> None:
    source = Counted(huge_field(1024 * MIB, quoted=quoted))
    error, peak = peak_memory(ingest(tmp_path / "out", source, name="opens.csv"))
    assert isinstance(error, FieldTooLargeError), error
    assert str(error).startswith("opens.csv, line 2: record exceeds 16777216 bytes")
    assert source.consumed < 20 * MIB  # ~16 MiB of the 1 GiB was ever read
    assert peak < 64 * MIB
    assert files_under(tmp_path / "out") == []


def test_a_1_gb_json_line_is_refused_at_the_bound_in_flat_memory(tmp_path: Path) -> None:
    def line() -> Iterator[bytes]:
        yield b'{"eventId": "1"}\n{"note": "'
        for _ in range(1024):
            yield b"a" * MIB

    source = Counted(line())
    error, peak = peak_memory(ingest(tmp_path / "out", source, name="opens.jsonl"))
    assert isinstance(error, FieldTooLargeError), error
    assert str(error).startswith("opens.jsonl, line 2: line exceeds 67108864 bytes")
    assert source.consumed < 70 * MIB
    assert peak < 200 * MIB  # the 64 MiB bound plus one chunk, never the gigabyte
    assert files_under(tmp_path / "out") == []


# --- nesting -----------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"eventId": "d%d", "deep": ' % depth + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.asyncio
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("depth", [300, 1_000, 1_100, 100_000])
async def test_deep_json_lines_are_quarantined_and_the_rest_published(
    tmp_path: Path, depth: int, fmt: str
) -> None:
    """Up to 1024 levels parse (orjson), but the CSV writer encodes at most 255 and the JSON
    lines writer's fallback about 990 (Python's recursion limit): such a row must be
    quarantined, not crash the writer and fail the whole export (fixed in codecs/jsonl.py)."""
    body = b'{"eventId": "a"}\n' + nested(depth) + b'\n{"eventId": "b"}\n'
    stats, manifest = await ingest(tmp_path, Counted(iter([body])), name="deep.jsonl", fmt=fmt)
    assert (stats.rows_read, stats.rows_ok, stats.rows_quarantined) == (3, 2, 1)
    (entry,) = quarantined(tmp_path, manifest)
    assert entry["line"] == 2 and entry["file"] == "deep.jsonl"
    assert "deeper than" in entry["reason"] or "depth limit" in entry["reason"]


@pytest.mark.asyncio
async def test_extreme_json_array_nesting_is_quarantined(tmp_path: Path) -> None:
    body = b'[{"eventId": "a"}, ' + nested(100_000) + b', {"eventId": "b"}]'
    stats, manifest = await ingest(tmp_path, Counted(iter([body])), name="deep.json")
    assert (stats.rows_ok, stats.rows_quarantined) == (2, 1)
    assert "nested deeper than 512" in quarantined(tmp_path, manifest)[0]["reason"]


@pytest.mark.asyncio
async def test_json_array_items_too_deep_to_write_never_fail_the_export(tmp_path: Path) -> None:
    body = b'[{"eventId": "a"}, ' + nested(300) + b"]"
    stats, manifest = await ingest(tmp_path, Counted(iter([body])), name="deep.json", fmt="csv")
    assert stats.rows_read == 2 and manifest.rows_read == 2


def test_deep_nesting_around_the_records_is_a_clear_error() -> None:
    parser = JsonArrayParser()
    parser.feed(b'{"meta": ' + b"[" * 100_000)
    with pytest.raises(CorruptInputError, match="deeper than 512"):
        parser.feed(b"]" * 100_000 + b', "data": []}')
        parser.flush()


# --- encodings ---------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "body", "line"),
    [
        ("opens.csv", b"eventId,email\n1,a@x.io\n2,caf\xe9@x.io\n3,c@x.io\n", 3),
        ("opens.jsonl", b'{"eventId":"1"}\n{"eventId":"caf\xe9"}\n{"eventId":"3"}\n', 2),
        ("opens.json", b'[{"eventId":"1"},\n{"eventId":"caf\xe9"},\n{"eventId":"3"}]', 2),
    ],
)
async def test_invalid_utf8_rows_are_quarantined_with_their_line(
    tmp_path: Path, name: str, body: bytes, line: int
) -> None:
    for gzipped in (False, True):
        data = gzip.compress(body) if gzipped else body
        out = tmp_path / str(gzipped)
        stats, manifest = await ingest(out, Counted(iter([data[:7], data[7:]])), name=name)
        assert (stats.rows_ok, stats.rows_quarantined) == (2, 1)
        (entry,) = quarantined(out, manifest)
        assert entry["line"] == line and entry["file"] == name
        assert "utf-8" in entry["reason"].lower()
        assert "\\xe9" in entry["raw"]  # the bad byte is kept, visibly


@pytest.mark.asyncio
async def test_an_undecodable_csv_header_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError) as caught:
        await ingest(tmp_path, Counted(iter([b"event\xffId,email\n1,a@x.io\n"])), name="h.csv")
    assert str(caught.value).startswith("h.csv, line 1: malformed CSV header")
    assert files_under(tmp_path) == []


def test_oversized_audience_counts_are_quarantined_not_written() -> None:
    """Found by the fuzz suite: a 25-digit count passed the normalizer and crashed the
    writers (orjson cannot encode it); 5000 digits made int() itself raise ValueError."""
    from streamx.codecs.base import Row
    from streamx.exceptions import RowError

    normalize = get_normalizer("cordial.audience_trends")
    ctx = ExportContext("cordial", "cordial.audience_trends", "acct", "1")
    for count in ("9" * 25, "1" * 5000, str(2**63)):
        with pytest.raises(RowError, match="audience count"):
            normalize(Row(2, {"audience": "vip", "2024-03-10": count}), ctx)
    (record,) = normalize(Row(2, {"audience": "vip", "2024-03-10": str(2**63 - 1)}), ctx)
    assert record["value"] == 2**63 - 1


# --- names from vendors and from the configuration -------------------------------------------


class HostileVendor:
    """A fake Symplify + Cordial that answers with hostile ids and file names.

    Symplify's batch id and Cordial's job id are whatever ``export_id`` says; the Symplify
    result URL's file name is ``url_name``; Cordial "writes" one JSON lines file into the
    landing path the request named.
    """

    def __init__(self, landing: Path, *, export_id: str, url_name: str) -> None:
        self.landing, self.export_id, self.url_name = landing, export_id, url_name
        self._runner: web.AppRunner | None = None
        self.base = ""
        self.paths: list[str] = []

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        self.paths.append(f"{request.method} {path}")
        cordial = "Authorization" in request.headers
        if request.method == "POST" and "statistics" in path:
            return web.json_response({"batchId": self.export_id})
        if request.method == "POST":
            body = await request.json()
            folder = self.landing / body["destination"]["path"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{body['name']}_1.json").write_bytes(b'{"_id":"x","action":"open"}\n')
            return web.json_response({"jobId": self.export_id})
        if path.endswith("/result/url"):
            return web.Response(text=f"{self.base}/files/{self.url_name}")
        if path.startswith("/files/"):
            return web.Response(body=b'[{"eventId": "e1"}]')
        if cordial:
            return web.json_response({"status": "Done", "totalItems": 1})
        return web.json_response({"status": "FINISHED"})


@pytest_asyncio.fixture
async def hostile(tmp_path: Path) -> AsyncIterator[tuple[HostileVendor, Config]]:
    vendor = HostileVendor(tmp_path / "landing", export_id="101", url_name="x_result.json")
    await vendor.start()
    config = Config(
        accounts={
            "sym": AccountConfig("sym", "symplify", "t", base_url=f"{vendor.base}/rest/5004"),
            "cor": AccountConfig(
                "cor",
                "cordial",
                "k",
                base_url=vendor.base,
                landing=LandingConfig("local", dir=str(tmp_path / "landing")),
            ),
        },
        output=OutputConfig(dir=str(tmp_path / "out")),
        engine=FAST_ENGINE,
    )
    yield vendor, config
    await vendor.stop()


SYMPLIFY = ExportSpec("opens", "sym", "opens", period="LAST_DAY", dt="2026-11-01")
CORDIAL = ExportSpec("contacts", "cor", "contacts", dt="2026-11-01")


async def run(config: Config, spec: ExportSpec) -> ExportResult:
    async with Engine(config, clock=FakeClock()) as engine:
        (result,) = await engine.run([spec])
    return result


def outside(tmp_path: Path) -> list[Path]:
    """Files anywhere under the test directory but outside out/ and landing/."""
    keep = (tmp_path / "out", tmp_path / "landing")
    return [path for path in files_under(tmp_path) if not path.is_relative_to(keep[0])
            and not path.is_relative_to(keep[1])]  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("export_id", ["../../../escape", "..", ".hidden", "a/b", "a\\b", "a\x00b"])
@pytest.mark.parametrize("spec", [SYMPLIFY, CORDIAL], ids=["symplify", "cordial"])
async def test_hostile_export_ids_never_name_an_output_path(
    hostile: tuple[HostileVendor, Config], tmp_path: Path, export_id: str, spec: ExportSpec
) -> None:
    vendor, config = hostile
    vendor.export_id = export_id
    result = await run(config, spec)
    assert result.status == "failed"
    assert result.error_type in ("ConfigError", "RequestRejectedError", "PermanentError")
    assert isinstance(result.exception, PermanentError)
    assert files_under(tmp_path / "out") == []
    assert outside(tmp_path) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("spec", [SYMPLIFY, CORDIAL], ids=["symplify", "cordial"])
async def test_a_hostile_export_id_stays_one_path_segment_of_the_poll_url(
    hostile: tuple[HostileVendor, Config], spec: ExportSpec
) -> None:
    vendor, config = hostile
    vendor.export_id = "../../../escape"
    await run(config, spec)
    polls = [path for path in vendor.paths if path.startswith("GET ")]
    assert polls and all("/jobs/" in path or "/batches/" in path for path in polls), polls


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url_name", ["..%2F..%2F..%2Fescape_result.json", "%2E%2E/escape.json", "..;x.json"]
)
async def test_a_hostile_result_url_is_only_a_label(
    hostile: tuple[HostileVendor, Config], tmp_path: Path, url_name: str
) -> None:
    vendor, config = hostile
    vendor.url_name = url_name
    result = await run(config, SYMPLIFY)
    assert result.ok, result.error
    assert result.manifest is not None and result.records == 1
    for path in files_under(tmp_path / "out"):
        assert path.parent == tmp_path / "out/symplify/symplify.opens/dt=2026-11-01"
    assert outside(tmp_path) == []


def test_a_landing_file_that_is_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    zone = LocalLandingZone(tmp_path / "landing")
    job = tmp_path / "landing" / "streamx" / "tok"
    job.mkdir(parents=True)
    (job / "streamx-tok_1.json").symlink_to(secret)

    async def read(name: str) -> bytes:
        return b"".join([chunk async for chunk in zone.open(name)])

    listed = asyncio.run(zone.list_files("streamx/tok"))
    assert [name for name, _ in listed] == ["streamx/tok/streamx-tok_1.json"]
    with pytest.raises(PermanentError, match="leads outside"):
        asyncio.run(read(listed[0][0]))
    for name in ("../secret.txt", "/etc/passwd", "streamx/../../secret.txt", "a\x00b"):
        with pytest.raises(PermanentError):
            asyncio.run(read(name))


@pytest.mark.asyncio
async def test_config_paths_never_escape_the_output_or_landing_root(tmp_path: Path) -> None:
    async with SimHarness(SeededProvider(rows=20), directory=tmp_path) as sims:
        base = sims.config()
        hostile_prefix = Config(
            accounts=base.accounts,
            output=OutputConfig(dir=str(sims.out), prefix="../../escape"),
            engine=base.engine,
        )
        landing = dict(base.accounts)
        landing["cor"] = AccountConfig(
            "cor",
            "cordial",
            sims.cordial.api_key,
            base_url=sims.cordial.base_url,
            landing=LandingConfig("local", dir=str(sims.landing), prefix="../../escape"),
        )
        hostile_landing = Config(accounts=landing, output=base.output, engine=base.engine)
        (by_prefix,) = await sims.run([SYMPLIFY], hostile_prefix)
        (by_landing,) = await sims.run([CORDIAL], hostile_landing)
    assert by_prefix.error_type == "SinkError" and "'..'" in (by_prefix.error or "")
    assert by_landing.error_type == "PermanentError" and "leads outside" in (by_landing.error or "")
    assert files_under(sims.out) == []
    assert not (tmp_path.parent / "escape").exists() and not (tmp_path / "escape").exists()


# --- the local sink and symlinks ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_symlinked_directory_leading_out_of_the_sink_is_refused(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "symplify").symlink_to(elsewhere)
    with pytest.raises(SinkError, match="leads outside the root"):
        await ingest(out, Counted(iter([b'[{"eventId": "1"}]'])))
    (out / "symplify").unlink()
    (out / "symplify").symlink_to(tmp_path / "missing")  # dangling: would be created outside
    with pytest.raises(SinkError, match="leads outside the root"):
        await ingest(out, Counted(iter([b'[{"eventId": "1"}]'])))
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "missing").exists()


@pytest.mark.asyncio
async def test_a_symlinked_output_file_is_replaced_not_followed(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = out / "symplify" / "symplify.opens" / "dt=2026-11-01"
    folder.mkdir(parents=True)
    part = folder / "acct-101-part-00000.jsonl"
    part.symlink_to(victim)
    (folder / "acct-101.manifest.json").symlink_to(victim)
    _, manifest = await ingest(out, Counted(iter([b'[{"eventId": "1"}]'])))
    assert victim.read_text() == "precious"
    assert not part.is_symlink() and part.is_file()
    assert orjson.loads(part.read_bytes())["record_id"] == "1"
    assert manifest.records == 1


@pytest.mark.asyncio
async def test_relative_paths_that_climb_are_refused_by_the_sink(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "out")
    for relpath in ("../x", "a/../../x", "/etc/x", "a//b", "a/./b", "a\\..\\b", "a\x00"):
        with pytest.raises(SinkError, match="refusing"):
            await sink.open(relpath)
    assert not os.path.exists(tmp_path / "x")
