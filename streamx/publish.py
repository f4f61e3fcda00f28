"""Publishing one export: records -> encoded, compressed, rolling parts -> sink, manifest last.

Commit protocol (the reason this module exists): every part and the quarantine file are written
through the sink under temporary names and *finished* (durable, handles released) as they fill,
but none is made visible until :meth:`Publisher.commit`. There, after checking the row
accounting (``rows_ok + rows_quarantined == rows_read``), the parts and the quarantine file are
committed, and the manifest is written last: it is the export's commit record, and readers trust
only parts a manifest names. :meth:`Publisher.abort` (also on any exception inside
``async with``) discards every upload, so a failed export leaves nothing under a final name.
(Should the commit itself fail half-way, parts already renamed stay, but no manifest names
them; a re-run replaces them. After a crash, leftover ``.``-prefixed temp files may remain.)

Parts are cut at exact record boundaries: a part holds at most ``max_records_per_part`` records
and at most ``max_bytes_per_part`` *uncompressed* bytes (header included), except that a single
record larger than the byte limit still gets a part of its own (Parquet: the byte limit applies
to the Arrow size of the records, checked per written batch). Parts are numbered from 00000;
an export with no records publishes no parts, only its manifest (and its quarantine file, if any
row was quarantined).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import logging
import re
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache, partial
from itertools import accumulate
from types import TracebackType
from typing import Any, cast

import orjson

from streamx.exceptions import ConfigError, StreamxError
from streamx.manifest import Manifest, PartInfo, SourceFile
from streamx.normalize.base import ExportContext
from streamx.records import SCHEMA_VERSION
from streamx.sinks.base import PartUpload, Sink, split_relpath
from streamx.writers.compression import Compressor, get_compression
from streamx.writers.encoders import (
    BatchEncoder,
    BatchPart,
    Encoder,
    get_encoder,
    is_batch_encoder,
)

log = logging.getLogger(__name__)

#: Batches at least this large are compressed in a worker thread (the codecs release the GIL),
#: so the event loop keeps answering polls while a big batch is compressed.
THREAD_MIN_BYTES = 64 * 1024
#: Record batches at least this large are encoded in a worker thread: the GIL is still shared,
#: but the loop gets it back every switch interval instead of after the whole batch.
THREAD_ENCODE_MIN = 256

_DT = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class OutputOptions:
    """How records are written: format, compression and when to start a new part."""

    format: str = "jsonl"
    #: ``None``: the format's default (gzip for jsonl/csv, zstd inside Parquet files).
    compression: str | None = None
    max_records_per_part: int = 1_000_000
    #: Limit on a part's *uncompressed* size.
    max_bytes_per_part: int = 256 * 1024 * 1024
    #: The compression method's own scale; ``None`` = its fast default (gzip 1, zstd 3).
    compression_level: int | None = None


@dataclass
class PublisherState:
    """What a publisher has written so far, enough to reopen it in another process.

    Taken by :meth:`Publisher.snapshot` right after :meth:`Publisher.cut`, it describes every
    record written: ``parts`` are sealed (and, with a sink that publishes parts as they are
    finished, already at their final names); ``source_files`` are the input files completed.
    :meth:`Publisher.restore` continues from it, so a resumed export ends with the same
    manifest a clean run would write (old parts first, then new ones).
    """

    parts: list[PartInfo]
    records: int
    rows_ok: int
    rows_quarantined: int
    source_files: list[SourceFile]
    started_at: str


class _Published:
    """The upload of a part a previous process already published: nothing left to do."""

    async def write(self, data: bytes) -> None:
        raise StreamxError("a restored part cannot be written")

    async def finish(self) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def abort(self) -> None:
        return None


class _Part:
    """One part being written: compresses, hashes and counts what goes to its upload."""

    def __init__(self, relpath: str, upload: PartUpload, compressor: Compressor) -> None:
        self.relpath = relpath
        self.upload = upload
        self._compressor = compressor
        self._sha256 = hashlib.sha256()
        self.records = 0
        self.raw_bytes = 0
        self.stored_bytes = 0

    async def write(self, data: bytes, records: int) -> None:
        self.records += records
        self.raw_bytes += len(data)
        if len(data) >= THREAD_MIN_BYTES:
            out = await asyncio.to_thread(self._compress, data)
        else:
            out = self._compress(data)
        if out:
            await self.upload.write(out)

    async def seal(self) -> PartInfo:
        """End the compressed stream and finish the upload (durable, not yet visible)."""
        tail = self._compressor.flush()
        self._account(tail)
        if tail:
            await self.upload.write(tail)
        await self.upload.finish()
        return PartInfo(
            path=self.relpath,
            records=self.records,
            bytes=self.stored_bytes,
            uncompressed_bytes=self.raw_bytes,
            sha256=self._sha256.hexdigest(),
        )

    def _compress(self, data: bytes) -> bytes:
        out = self._compressor.compress(data)
        self._account(out)
        return out

    def _account(self, stored: bytes) -> None:
        if stored:
            self._sha256.update(stored)
            self.stored_bytes += len(stored)


class Publisher:
    """Writes one export's records as rolling parts to a sink and commits them with a manifest.

    Use as ``async with Publisher(...) as pub:``, call :meth:`commit` at the end of the block;
    leaving the block without a commit (or by an exception) aborts instead. Not reusable.
    """

    def __init__(
        self,
        sink: Sink,
        ctx: ExportContext,
        options: OutputOptions,
        *,
        dt: str,
        prefix: str = "",
    ) -> None:
        _check_options(options)
        _check_dt(dt)
        for what, value in (
            ("source", ctx.source),
            ("stream", ctx.stream),
            ("account", ctx.account),
            ("export id", ctx.export_id),
        ):
            _check_name(what, value)
        self._sink = sink
        self._ctx = ctx
        self._options = options
        self._dt = dt
        encoder = get_encoder(options.format)
        self._batches: BatchEncoder | None = encoder if is_batch_encoder(encoder) else None
        self._lines: Encoder | None = None
        if self._batches is not None:  # Parquet: compression is inside the file
            #: The compression actually used (the format's default resolved).
            self.compression = self._batches.codec(options.compression, options.compression_level)
            self._compression = get_compression("none")
        else:
            self._lines = cast(Encoder, encoder)
            self.compression = options.compression or "gzip"
            self._compression = get_compression(self.compression)
            self._compression.new(options.compression_level)  # fail on a bad level now
        directory = "/".join(
            part for part in (prefix.strip("/"), ctx.source, ctx.stream, f"dt={dt}") if part
        )
        base = f"{directory}/{ctx.account}-{ctx.export_id}"
        self._part_stem = f"{base}-part-"
        self._part_ext = f".{encoder.extension}{self._compression.extension}"
        self.manifest_relpath = f"{base}.manifest.json"
        self.quarantine_relpath = f"{base}-quarantine.jsonl"
        split_relpath(self.manifest_relpath)  # a bad prefix fails here, before any write
        self._state = "open"
        self._lock = asyncio.Lock()
        self._quarantine_lock = asyncio.Lock()
        self._part: _Part | BatchPart | None = None
        self._sealed: list[tuple[PartInfo, PartUpload]] = []
        self._quarantine: PartUpload | None = None
        self._files: dict[str, SourceFile] = {}
        self._records = 0
        self._rows_ok = 0
        self._rows_quarantined = 0
        self._started_at = _now()

    # -- writing --------------------------------------------------------------------------

    async def write_records(
        self, records: list[dict[str, Any]], *, rows: int | None = None
    ) -> None:
        """Write a batch; ``rows`` = source rows that produced it (default ``len(records)``).

        ``rows`` differs from ``len(records)`` when a normalizer unpivots one row into several
        records (audience trends) or into none.
        """
        rows = len(records) if rows is None else rows
        step = partial(self._write_records, records) if records else None
        await self._write_locked(step, len(records), rows)

    @property
    def format(self) -> str:
        """The output format (``jsonl``, ``csv``, ``parquet``)."""
        return self._options.format

    async def write_encoded(self, data: bytes, ends: Sequence[int], *, rows: int) -> None:
        """Write records already encoded in this publisher's line format (jsonl, csv).

        For producers that encode without a Python object per record (the columnar fast path):
        ``data`` holds the records back to back, ``ends[i]`` is the offset just after record
        ``i`` (``ends[-1] == len(data)``); ``rows`` is the number of source rows behind them.
        """
        if self._lines is None:
            raise StreamxError(f"write_encoded needs a line format, not {self.format!r}")
        step = partial(self._write_block, data, ends) if len(ends) else None
        await self._write_locked(step, len(ends), rows)

    async def write_batch(self, batch: Any, *, rows: int) -> None:
        """Write a ``pyarrow.RecordBatch`` of schema v1 (columnar formats: Parquet)."""
        if self._batches is None:
            raise StreamxError(f"write_batch needs a columnar format, not {self.format!r}")
        step = partial(self._write_batch, batch) if batch.num_rows else None
        await self._write_locked(step, batch.num_rows, rows)

    async def _write_locked(
        self, step: Callable[[], Awaitable[None]] | None, records: int, rows: int
    ) -> None:
        """Run one write under the lock; a failure leaves the publisher failed (abort only)."""
        if rows < 0:
            raise ValueError(f"rows must be >= 0, got {rows}")
        async with self._lock:
            self._check_open()
            try:
                if step is not None:
                    await step()
                self._rows_ok += rows
                self._records += records
            except BaseException:
                self._state = "failed"
                raise

    async def quarantine(self, file: str, line: int, reason: str, raw: str) -> None:
        """Record one bad source row (uncompressed JSON lines: file, line, reason, raw)."""
        entry = _quarantine_line(file, line, reason, raw)
        async with self._quarantine_lock:
            self._check_open()
            try:
                if self._quarantine is None:
                    self._quarantine = await self._sink.open(self.quarantine_relpath)
                await self._quarantine.write(entry)
                self._rows_quarantined += 1
            except BaseException:
                self._state = "failed"
                raise

    def count_source_file(self, name: str, *, rows_read: int, bytes_read: int) -> None:
        """Record what was read from one input file (calls for the same name add up)."""
        self._check_open()
        entry = self._files.setdefault(name, SourceFile(name=name, rows_read=0, bytes_read=0))
        entry["rows_read"] += rows_read
        entry["bytes_read"] += bytes_read

    # -- checkpoints (resume after a crash) -----------------------------------------------

    async def cut(self) -> None:
        """Seal the open part now, at a record boundary, so that everything written so far is
        in sealed parts (a checkpoint). The next record starts a new part."""
        async with self._lock:
            self._check_open()
            if self._part is None:
                return
            try:
                await self._seal_part()
            except BaseException:
                self._state = "failed"
                raise

    def snapshot(self) -> PublisherState:
        """The sealed parts and the counters (call :meth:`cut` first for an exact state)."""
        return PublisherState(
            parts=[info for info, _ in self._sealed],
            records=self._records,
            rows_ok=self._rows_ok,
            rows_quarantined=self._rows_quarantined,
            source_files=[SourceFile(**entry) for entry in self._files.values()],
            started_at=self._started_at,
        )

    async def restore(self, state: PublisherState) -> None:
        """Continue an export from ``state`` (before anything is written here).

        The parts it names must already be at their final names; new parts are numbered after
        them. When rows were quarantined, the quarantine file is reopened through the sink,
        which must still hold what was written before (the engine's checkpoint sink does).
        """
        self._check_open()
        if self._sealed or self._part or self._records or self._rows_ok or self._files:
            raise StreamxError(f"publisher for {self.manifest_relpath} already has data")
        self._sealed = [(info, _Published()) for info in state.parts]
        self._records, self._rows_ok = state.records, state.rows_ok
        self._rows_quarantined = state.rows_quarantined
        self._files = {entry["name"]: SourceFile(**entry) for entry in state.source_files}
        self._started_at = state.started_at
        if state.rows_quarantined and self._quarantine is None:
            self._quarantine = await self._sink.open(self.quarantine_relpath)

    # -- commit / abort -------------------------------------------------------------------

    async def commit(self) -> Manifest:
        """Publish the parts and the quarantine file, then the manifest, last. Returns it.

        Raises :class:`StreamxError` (after aborting) if the row accounting does not balance.
        """
        async with self._lock, self._quarantine_lock:
            self._check_open()
            try:
                if self._part is not None:
                    await self._seal_part()
                if self._quarantine is not None:
                    await self._quarantine.finish()
                self._check_accounting()
                for _, upload in self._sealed:
                    await upload.commit()
                if self._quarantine is not None:
                    await self._quarantine.commit()
                manifest = self._manifest()
                await self._publish_manifest(manifest)
            except BaseException:
                await self._abort_uploads()
                raise
            self._state = "committed"
            return manifest

    async def abort(self) -> None:
        """Discard every upload of this export; nothing new becomes visible. Idempotent."""
        if self._state in ("committed", "aborted"):
            return
        await self._abort_uploads()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "committed":
            return
        if exc_type is None and self._state == "open":
            log.warning("publisher for %s left without commit: aborted", self.manifest_relpath)
        await self.abort()

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state != "open":
            raise StreamxError(
                f"publisher for {self.manifest_relpath} is {self._state}", **self._where()
            )

    def _where(self) -> dict[str, str | None]:
        return {
            "vendor": self._ctx.source,
            "account": self._ctx.account,
            "export_id": self._ctx.export_id,
        }

    async def _write_records(self, records: list[dict[str, Any]]) -> None:
        if self._batches is not None:
            await self._write_batch(self._batches.to_batch(records))
            return
        assert self._lines is not None
        if len(records) >= THREAD_ENCODE_MIN:  # CSV: ~20 µs a record; keep the loop answering
            chunks = await asyncio.to_thread(self._lines.encode, records)
        else:
            chunks = self._lines.encode(records)
        await self._write_block(b"".join(chunks), list(accumulate(map(len, chunks))))

    async def _write_block(self, data: bytes, ends: Sequence[int]) -> None:
        """Write encoded records, rolling to a new part at the record or byte limit."""
        max_records = self._options.max_records_per_part
        max_bytes = self._options.max_bytes_per_part
        start, count, offset = 0, len(ends), 0  # offset: where record `start` begins
        while start < count:
            part = self._part or await self._open_part()
            assert isinstance(part, _Part)
            room_records = max_records - part.records
            room_bytes = max_bytes - part.raw_bytes
            fits = bisect_right(ends, offset + room_bytes, start) - start
            take = min(count - start, room_records, fits)
            if take <= 0:
                if part.records:
                    await self._seal_part()
                    continue
                take = 1  # one record bigger than a whole part: it gets a part of its own
            end = start + take
            stop = ends[end - 1]
            await part.write(data if offset == 0 and stop == len(data) else data[offset:stop], take)
            start, offset = end, stop
            if part.records >= max_records or part.raw_bytes >= max_bytes:
                await self._seal_part()

    async def _write_batch(self, batch: Any) -> None:
        """Write an Arrow batch, rolling to a new part at the record (or, per batch, byte) limit."""
        max_records = self._options.max_records_per_part
        start, count = 0, batch.num_rows
        while start < count:
            part = self._part or await self._open_part()
            assert not isinstance(part, _Part)
            take = min(count - start, max_records - part.records)
            await part.write_batch(batch.slice(start, take))
            start += take
            if part.records >= max_records or part.raw_bytes >= self._options.max_bytes_per_part:
                await self._seal_part()

    async def _open_part(self) -> _Part | BatchPart:
        relpath = f"{self._part_stem}{len(self._sealed):05d}{self._part_ext}"
        upload = await self._sink.open(relpath)
        level = self._options.compression_level
        if self._batches is not None:
            columnar = self._batches.open_part(relpath, upload, self.compression, level)
            self._part = columnar
            return columnar
        part = _Part(relpath, upload, self._compression.new(level))
        self._part = part
        header = self._lines.header() if self._lines is not None else b""
        if header:
            await part.write(header, 0)
        return part

    async def _seal_part(self) -> None:
        part = self._part
        assert part is not None
        footer = self._lines.footer() if self._lines is not None else b""
        if footer and isinstance(part, _Part):
            await part.write(footer, 0)
        info = await part.seal()
        self._sealed.append((info, part.upload))
        self._part = None

    def _check_accounting(self) -> None:
        rows_read = sum(entry["rows_read"] for entry in self._files.values())
        if self._rows_ok + self._rows_quarantined != rows_read:
            raise StreamxError(
                f"row accounting mismatch for {self.manifest_relpath}: {self._rows_ok} ok + "
                f"{self._rows_quarantined} quarantined != {rows_read} read",
                **self._where(),
            )

    def _manifest(self) -> Manifest:
        ctx = self._ctx
        return Manifest(
            schema_version=SCHEMA_VERSION,
            source=ctx.source,
            stream=ctx.stream,
            account=ctx.account,
            export_id=ctx.export_id,
            dt=self._dt,
            format=self._options.format,
            compression=self.compression,
            parts=[info for info, _ in self._sealed],
            records=self._records,
            rows_read=sum(entry["rows_read"] for entry in self._files.values()),
            rows_ok=self._rows_ok,
            rows_quarantined=self._rows_quarantined,
            quarantine=self.quarantine_relpath if self._quarantine is not None else None,
            source_files=[SourceFile(**entry) for entry in self._files.values()],
            started_at=self._started_at,
            finished_at=_now(),
            streamx_version=_version(),
        )

    async def _publish_manifest(self, manifest: Manifest) -> None:
        upload = await self._sink.open(self.manifest_relpath)
        try:
            await upload.write(manifest.to_json())
            await upload.commit()
        except BaseException:
            await upload.abort()
            raise

    async def _abort_uploads(self) -> None:
        """Abort every upload, trying all of them even if one fails; re-raise the first error."""
        self._state = "aborted"
        uploads = [upload for _, upload in self._sealed]
        if self._part is not None:
            uploads.append(self._part.upload)
        if self._quarantine is not None:
            uploads.append(self._quarantine)
        first: BaseException | None = None
        for upload in uploads:
            try:
                await upload.abort()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first


def _quarantine_line(file: str, line: int, reason: str, raw: str) -> bytes:
    entry = {"file": file, "line": line, "reason": reason, "raw": raw}
    try:
        return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # Lone surrogates (undecodable input kept via surrogateescape) are not valid UTF-8:
        # keep them visible as \udcXX text instead of losing the row.
        entry = {key: _printable(value) for key, value in entry.items()}
        return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)


def _printable(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _check_options(options: OutputOptions) -> None:
    if options.max_records_per_part < 1:
        raise ConfigError(f"max_records_per_part must be >= 1, got {options.max_records_per_part}")
    if options.max_bytes_per_part < 1:
        raise ConfigError(f"max_bytes_per_part must be >= 1, got {options.max_bytes_per_part}")


def _check_dt(dt: str) -> None:
    try:
        valid = bool(_DT.fullmatch(dt)) and date.fromisoformat(dt).isoformat() == dt
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"dt must be a date as YYYY-MM-DD, got {dt!r}")


def _check_name(what: str, value: str) -> None:
    """Names become path components: refuse what could change the layout or hide the file."""
    if not value or value.startswith(".") or any(c in value for c in "/\\\x00"):
        raise ConfigError(f"{what} {value!r} cannot be used in a file name")
    if any(ord(c) < 0x20 for c in value):
        raise ConfigError(f"{what} {value!r} contains control characters")


def _now() -> str:
    """The current time as RFC 3339 UTC with milliseconds (the schema's timestamp form)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@cache
def _version() -> str:
    try:
        return importlib.metadata.version("streamx")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
