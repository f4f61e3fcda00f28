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
record larger than the byte limit still gets a part of its own. Parts are numbered from 00000;
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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from itertools import accumulate
from types import TracebackType
from typing import Any

import orjson

from streamx.exceptions import ConfigError, StreamxError
from streamx.manifest import Manifest, PartInfo, SourceFile
from streamx.normalize.base import ExportContext
from streamx.records import SCHEMA_VERSION
from streamx.sinks.base import PartUpload, Sink, split_relpath
from streamx.writers.compression import Compressor, get_compression
from streamx.writers.encoders import get_encoder

log = logging.getLogger(__name__)

#: Batches at least this large are compressed in a worker thread (the codecs release the GIL),
#: so the event loop keeps answering polls while a big batch is compressed.
THREAD_MIN_BYTES = 64 * 1024

_DT = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class OutputOptions:
    """How records are written: format, compression and when to start a new part."""

    format: str = "jsonl"
    compression: str = "gzip"
    max_records_per_part: int = 1_000_000
    #: Limit on a part's *uncompressed* size.
    max_bytes_per_part: int = 256 * 1024 * 1024
    #: The compression method's own scale; ``None`` = its fast default (gzip 1, zstd 3).
    compression_level: int | None = None


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
        self._encoder = get_encoder(options.format)
        self._compression = get_compression(options.compression)
        self._compression.new(options.compression_level)  # fail on a bad level now, not later
        directory = "/".join(
            part for part in (prefix.strip("/"), ctx.source, ctx.stream, f"dt={dt}") if part
        )
        base = f"{directory}/{ctx.account}-{ctx.export_id}"
        self._part_stem = f"{base}-part-"
        self._part_ext = f".{self._encoder.extension}{self._compression.extension}"
        self.manifest_relpath = f"{base}.manifest.json"
        self.quarantine_relpath = f"{base}-quarantine.jsonl"
        split_relpath(self.manifest_relpath)  # a bad prefix fails here, before any write
        self._state = "open"
        self._lock = asyncio.Lock()
        self._quarantine_lock = asyncio.Lock()
        self._part: _Part | None = None
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
        if rows < 0:
            raise ValueError(f"rows must be >= 0, got {rows}")
        async with self._lock:
            self._check_open()
            try:
                if records:
                    await self._write(self._encoder.encode(records))
                self._rows_ok += rows
                self._records += len(records)
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

    async def _write(self, chunks: list[bytes]) -> None:
        """Write encoded records, rolling to a new part at the record or byte limit."""
        max_records = self._options.max_records_per_part
        max_bytes = self._options.max_bytes_per_part
        total = sum(map(len, chunks))
        cumulative: list[int] | None = None
        start, count = 0, len(chunks)
        while start < count:
            part = self._part or await self._open_part()
            room_records = max_records - part.records
            room_bytes = max_bytes - part.raw_bytes
            if start == 0 and count <= room_records and total <= room_bytes:
                take = count
            else:
                if cumulative is None:
                    cumulative = [0, *accumulate(map(len, chunks))]
                fits = bisect_right(cumulative, cumulative[start] + room_bytes) - 1 - start
                take = min(count - start, room_records, fits)
                if take <= 0:
                    if part.records:
                        await self._seal_part()
                        continue
                    take = 1  # one record bigger than a whole part: it gets a part of its own
            end = start + take
            await part.write(chunks[start] if take == 1 else b"".join(chunks[start:end]), take)
            start = end
            if part.records >= max_records or part.raw_bytes >= max_bytes:
                await self._seal_part()

    async def _open_part(self) -> _Part:
        relpath = f"{self._part_stem}{len(self._sealed):05d}{self._part_ext}"
        upload = await self._sink.open(relpath)
        part = _Part(relpath, upload, self._compression.new(self._options.compression_level))
        self._part = part
        header = self._encoder.header()
        if header:
            await part.write(header, 0)
        return part

    async def _seal_part(self) -> None:
        part = self._part
        assert part is not None
        footer = self._encoder.footer()
        if footer:
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
            compression=self._options.compression,
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
