"""Property tests: hostile bytes and hostile rows never crash streamx, and nothing is lost.

For every codec (gzip, CSV, JSON lines, JSON array, the sniffer) and the whole chain
(decode -> parse -> normalize -> publish), arbitrary bytes split at arbitrary points either
parse or raise a :class:`~streamx.exceptions.StreamxError` subclass: never an ``IndexError``,
a ``RecursionError``, a ``UnicodeDecodeError`` or a hang. Where parsing succeeds, every line
is accounted for: good rows + quarantined rows = rows read. For every normalizer, arbitrary
rows either normalize into well-formed schema v1 records (lossless: every non-empty source
field lands in a named field or in ``attributes``) or raise :class:`RowError` (quarantine).

Inputs mix pure noise with mutated valid documents, so the parsers are also driven deep into
their states. ``scripts/fuzz`` runs the same targets for as long as it is given.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamx.bytes_like import Bytes
from streamx.codecs.base import BadRow, ParsedItem, Row, RowParser
from streamx.codecs.csv import CsvParser
from streamx.codecs.gzip import GzipDecoder
from streamx.codecs.jsonarray import JsonArrayParser
from streamx.codecs.jsonl import JsonLinesParser
from streamx.codecs.sniff import SniffingParser
from streamx.exceptions import InputError, RowError, SinkError, StreamxError
from streamx.normalize.base import ExportContext
from streamx.normalize.record_id import id_text
from streamx.normalize.registry import NORMALIZERS, get_normalizer
from streamx.pipeline import ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.records import EVENT_TYPES, FIELDS, STREAMS

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL = dict(max_field_bytes=2048)  # small bounds: the bound errors are reachable too
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

# --- inputs ----------------------------------------------------------------------------------

SEEDS = [
    b'id,email,time\n1,a@x.io,2024-01-01T00:00:00Z\n2,"b,""q""@x.io",1403187484000\n',
    b'{"eventId":"e1","contactId":7,"timestamp":"2017-03-13T22:48:40+0000"}\n{"a":[1,{"b":2}]}\n',
    b'[{"id":1,"name":"x"},{"id":"2","nested":{"k":[1,2,3]}}]',
    b'{"meta":{"n":2},"data":[{"a":1},{"b":"\\u00e9"}],"more":[1]}',
    b'\xef\xbb\xbf"a","b"\r\n"1\r\n2","3"\r\n',
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed document with a few bytes flipped, inserted, deleted or duplicated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "repeat"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.sampled_from([b'"', b"\n", b"{", b"[", b",", b"\\", b"\xff"]))
        elif action == "delete":
            del data[at]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 8))] * draw(st.integers(2, 50))
    return bytes(data)


def _gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1)


raw_inputs = st.one_of(
    st.binary(max_size=600),
    mutated(),
    mutated().map(_gzipped),
    st.tuples(mutated().map(_gzipped), st.integers(0, 100)).map(lambda t: t[0][: -t[1] or None]),
)
cuts = st.lists(st.integers(0, 2000), max_size=12)


def pieces(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` split at ``points`` (taken modulo its length + 1)."""
    marks = sorted({point % (len(data) + 1) for point in points})
    out, previous = [], 0
    for mark in [*marks, len(data)]:
        out.append(data[previous:mark])
        previous = mark
    return out


def run_parser(parser: RowParser, chunks: list[bytes]) -> list[ParsedItem]:
    items: list[ParsedItem] = []
    for chunk in chunks:
        items += parser.feed(chunk)
    return items + parser.flush()


def outcome(parse: Callable[[], list[ParsedItem]]) -> list[ParsedItem] | type[StreamxError]:
    """The parsed items, or the StreamxError class raised; anything else fails the test."""
    try:
        return parse()
    except StreamxError as exc:
        return type(exc)


PARSERS: dict[str, Callable[[], RowParser]] = {
    "csv": lambda: CsvParser(**SMALL),  # type: ignore[arg-type]
    "csv-headerless-tab": lambda: CsvParser(header=False, delimiter="\t"),
    "jsonl": lambda: JsonLinesParser(max_line_bytes=2048),
    "json-array": lambda: JsonArrayParser(max_item_bytes=2048),
    "sniffing": lambda: SniffingParser(csv_options=SMALL),
}

# --- codecs ----------------------------------------------------------------------------------


@FUZZ
@given(raw_inputs, cuts)
def test_gzip_decoder_never_crashes_and_never_depends_on_chunking(
    data: bytes, points: list[int]
) -> None:
    def decode(chunks: list[bytes]) -> bytes | type[StreamxError]:
        decoder = GzipDecoder(max_ratio=50, min_bomb_bytes=4096)
        try:
            return b"".join(decoder.feed(chunk) for chunk in chunks) + decoder.flush()
        except StreamxError as exc:
            return type(exc)

    whole, split = decode([data]), decode(pieces(data, points))
    assert whole == split
    if isinstance(whole, bytes) and len(data) > 20:  # a decodable stream round-trips
        assert gzip.decompress(data) == whole


@FUZZ
@pytest.mark.parametrize("name", list(PARSERS))
@given(data=raw_inputs, points=cuts)
def test_parsers_never_crash_and_never_depend_on_chunking(
    name: str, data: bytes, points: list[int]
) -> None:
    make = PARSERS[name]
    whole = outcome(lambda: run_parser(make(), [data]))
    split = outcome(lambda: run_parser(make(), pieces(data, points)))
    assert whole == split
    if isinstance(whole, list):
        lines = [item.line for item in whole]
        assert lines == sorted(lines) and all(line >= 1 for line in lines)
        for item in whole:
            assert isinstance(item, Row | BadRow)
            if isinstance(item, Row):
                assert isinstance(item.data, dict)


@FUZZ
@given(st.lists(st.binary(max_size=80).filter(lambda b: b"\n" not in b), max_size=30), cuts)
def test_json_lines_accounts_for_every_non_blank_line(
    lines: list[bytes], points: list[int]
) -> None:
    data = b"\n".join(lines)
    items = run_parser(JsonLinesParser(), pieces(data, points))
    if lines:  # a UTF-8 byte order mark opening the file is a signature, not content
        lines = [lines[0].removeprefix(b"\xef\xbb\xbf"), *lines[1:]]
    expected = [number for number, line in enumerate(lines, 1) if line.strip(b" \t\r")]
    assert [item.line for item in items] == expected  # one Row or BadRow per line, no loss


@FUZZ
@given(st.lists(st.lists(st.text(max_size=6), min_size=1, max_size=4), min_size=1, max_size=25))
def test_csv_accounts_for_every_record_written(table: list[list[str]]) -> None:
    """Records of any width written by the stdlib writer: every one is a row or quarantined."""
    import csv
    import io

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180: CRs in fields get quoted
    header = [f"c{index}" for index in range(len(table[0]))]
    writer.writerow(header)
    records = table  # the writer spells a lone empty field '""', never a blank line
    writer.writerows(records)
    items = run_parser(CsvParser(), [buffer.getvalue().encode()])
    assert len(items) == len(records)
    good = [item for item in items if isinstance(item, Row)]
    assert [list(item.data.values()) for item in good] == [
        row for row in records if len(row) == len(header)
    ]


# --- the whole chain -------------------------------------------------------------------------


class MemoryUpload:
    """A part kept in memory (the pipeline and publisher are under test, not the disk)."""

    def __init__(self, sink: MemorySink, relpath: str) -> None:
        self._sink, self._relpath, self._data = sink, relpath, bytearray()

    async def write(self, data: Bytes) -> None:
        self._data += data

    async def finish(self) -> None:
        return None

    async def commit(self) -> None:
        self._sink.files[self._relpath] = bytes(self._data)

    async def abort(self) -> None:
        self._data.clear()


class MemorySink:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def open(self, relpath: str) -> MemoryUpload:
        if ".." in relpath.split("/"):
            raise SinkError(f"refusing {relpath}")
        return MemoryUpload(self, relpath)

    def location(self, relpath: str) -> str:
        return f"memory:{relpath}"

    async def close(self) -> None:
        return None


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def ingest(stream: str, chunks: list[bytes]) -> tuple[Any, MemorySink]:
    source = STREAMS[stream].source
    ctx = ExportContext(source, stream, "acct", "job-1")
    sink = MemorySink()
    options = OutputOptions(compression="none", max_records_per_part=7)
    async with Publisher(sink, ctx, options, dt="2026-11-01") as publisher:
        stats = await ingest_file(
            _chunks(chunks),
            name="fuzz.bin",
            ctx=ctx,
            normalizer=get_normalizer(stream),
            publisher=publisher,
            parser_options={"csv_options": SMALL},
        )
        manifest = await publisher.commit()
    return (stats, manifest), sink


@FUZZ
@pytest.mark.parametrize(
    "stream", ["symplify.opens", "cordial.contacts", "cordial.audience_trends"]
)
@given(data=raw_inputs, points=cuts)
def test_the_chain_publishes_or_fails_cleanly_and_loses_no_row(
    stream: str, data: bytes, points: list[int]
) -> None:
    try:
        (stats, manifest), sink = asyncio.run(ingest(stream, pieces(data, points)))
    except StreamxError as exc:
        if isinstance(exc, InputError):  # corrupt input names the file it is in
            assert str(exc).startswith("fuzz.bin")
        return
    assert stats.rows_ok + stats.rows_quarantined == stats.rows_read
    assert manifest.rows_ok + manifest.rows_quarantined == manifest.rows_read == stats.rows_read
    published = [
        orjson.loads(line) for part in manifest.parts for line in sink.files[part.path].splitlines()
    ]
    assert len(published) == manifest.records
    if manifest.rows_quarantined:
        assert manifest.quarantine is not None
        quarantined = sink.files[manifest.quarantine].splitlines()
        assert len(quarantined) == manifest.rows_quarantined
        assert all(orjson.loads(line)["file"] == "fuzz.bin" for line in quarantined)


# --- normalizers -----------------------------------------------------------------------------

KNOWN_KEYS = [
    "eventId", "id", "contactId", "contact_id", "Contact ID", "email", "emailAddress",
    "messageId", "campaignId", "listId", "projectId", "linkTarget", "url", "timestamp",
    "openedAt", "sentTimestamp", "clickTime", "date", "name", "listName", "title",
    "_id", "cID", "CID", "action", "a", "time", "ats", "bmID", "msID", "mdtID",
    "message_name", "properties", "system_properties", "system_properties.rl",
    "system_properties.bt", "properties.url", "channels", "channels.email.address",
    "channels.email.subscribeStatus", "lists", "vip", "audience", "Audience Name", "key",
    "2024-03-10", "2021/07/16", "07/16/2021", "2021-02-30",
]  # fmt: skip
TIMES = [
    "2017-03-13T22:48:40+0000", "2019-03-24", "1403187484000", "1403187484", "-1",
    "2024-03-10T02:30:00-04:00", "9999-12-31T23:59:59Z", "0000-01-01", "2017-03-13t22:48:40z",
    "99999999999999999999999", "1e400", "2017-13-45T99:99:99Z", " ", "١٢٣",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what orjson can produce
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(TIMES),
    st.sampled_from(["open", "click", "bounce", "message-sent", "soft", "4.2.1", "1", "0"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=10))
json_rows = st.dictionaries(keys, values, max_size=8)
csv_rows = st.dictionaries(
    keys, st.one_of(st.text(max_size=12), st.sampled_from(TIMES)), max_size=8
)
labels = st.dictionaries(st.sampled_from(KNOWN_KEYS), st.sampled_from(KNOWN_KEYS), max_size=3)


def check_record(record: dict[str, Any], ctx: ExportContext, row: dict[str, Any]) -> None:
    """Schema v1 shape, and lossless: each non-empty source field is named or kept."""
    assert list(record) == [field for field in FIELDS if field in record]
    assert {"source", "stream", "kind", "account", "export_id", "record_id", "attributes"} <= set(
        record
    )
    assert (record["source"], record["stream"], record["account"], record["export_id"]) == (
        ctx.source,
        ctx.stream,
        ctx.account,
        ctx.export_id,
    )
    assert record["kind"] == STREAMS[ctx.stream].kind
    assert isinstance(record["record_id"], str) and record["record_id"]
    assert isinstance(record["attributes"], dict)
    if "occurred_at" in record:
        assert RFC3339.fullmatch(record["occurred_at"])
    if "event_type" in record:
        assert record["event_type"] in EVENT_TYPES
    orjson.dumps(record, default=str)  # every writer can encode it
    if ctx.stream == "cordial.audience_trends" or ctx.column_labels:
        return  # unpivoted / relabelled: covered by tests/normalize
    named = {value for field, value in record.items() if field != "attributes"}
    for key, value in row.items():
        if value is None or value == "":
            continue  # an empty slot value means "absent" (docs/schema.md)
        assert key in record["attributes"] or id_text(value) in named, key


#: Normalizer examples are costly to generate (nested values): fewer, per stream.
ROWS_FUZZ = settings(FUZZ, max_examples=40)


@ROWS_FUZZ
@pytest.mark.parametrize("stream", sorted(NORMALIZERS))
@given(rows=st.lists(st.one_of(json_rows, csv_rows), min_size=1, max_size=5), labelled=labels)
def test_normalizers_map_any_row_or_quarantine_it(
    stream: str, rows: list[dict[str, Any]], labelled: dict[str, str]
) -> None:
    """Every row becomes well-formed records or a RowError; the same row always gives the same
    records (record ids are stable), also once its plan is compiled (after 16 uses)."""
    normalize = get_normalizer(stream)
    source = STREAMS[stream].source
    ctx = ExportContext(source, stream, "acct", "job-1", column_labels=labelled)

    def once(line: int, data: dict[str, Any]) -> list[dict[str, Any]] | str:
        try:
            return normalize(Row(line, data), ctx)
        except RowError as exc:
            assert exc.reason
            return exc.reason

    outcomes = [once(line, data) for line, data in enumerate(rows, 1)]
    good = [result for result in outcomes if isinstance(result, list)]
    assert len(good) + sum(isinstance(result, str) for result in outcomes) == len(rows)
    for data, result in zip(rows, outcomes, strict=True):
        if isinstance(result, list):
            for record in result:
                check_record(record, ctx, data)
    assert all(once(1, rows[0]) == outcomes[0] for _ in range(20))


# --- the fuzz harness --------------------------------------------------------------------------


def test_the_fuzz_script_runs_saves_crashes_and_replays_them(tmp_path: Path) -> None:
    """``scripts/fuzz`` fuzzes for the time given and writes what crashes (the canary target
    crashes on purpose); ``--replay`` re-runs the saved inputs."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "fuzz"
    out = tmp_path / "crashes"
    args = [sys.executable, str(script), "1", "--target", "gzip", "--canary", "--out", str(out)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "gzip" in run.stdout and "CRASH in canary" in run.stdout
    (saved,) = out.glob("canary-*.bin")
    assert saved.read_bytes()[:1] == b"\x00"  # shrunk to the canary's trigger
    assert "IndexError: canary" in saved.with_suffix(".txt").read_text()
    replay = [sys.executable, str(script), "--replay", str(out), "--canary"]
    again = subprocess.run(replay, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1 and "still crashes" in again.stdout
