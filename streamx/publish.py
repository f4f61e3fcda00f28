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

The :class:`Publisher` coordinates; the pieces it coordinates live beside it:
:mod:`streamx.rolling_parts` (output options, encoding, parts cut at the size limits),
:mod:`streamx.quarantine_file` (the quarantine file) and :mod:`streamx.export_paths` (file
names, and the checks on the names that become path components). An export with no records
publishes no parts, only its manifest (and its quarantine file, if any row was quarantined).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from types import TracebackType
from typing import Any

from streamx.bytes_like import Bytes
from streamx.exceptions import StreamxError
from streamx.export_paths import ExportPaths, check_dt, check_names
from streamx.manifest import Manifest, PartInfo, SourceFile
from streamx.normalize.base import ExportContext
from streamx.quarantine_file import QuarantineFile, quarantine_line
from streamx.records import SCHEMA_VERSION
from streamx.rolling_parts import OutputOptions, RollingParts, check_options
from streamx.sinks.base import Sink, split_relpath

log = logging.getLogger(__name__)


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
        check_options(options)
        check_dt(dt)
        check_names(ctx)
        self._sink = sink
        self._ctx = ctx
        self._options = options
        self._dt = dt
        paths = ExportPaths.of(ctx, dt=dt, prefix=prefix)
        self._parts = RollingParts(sink, options, paths.part_stem)
        #: The compression actually used (the format's default resolved).
        self.compression = self._parts.compression
        self.manifest_relpath = paths.manifest
        self.quarantine_relpath = paths.quarantine
        split_relpath(self.manifest_relpath)  # a bad prefix fails here, before any write
        self._state = "open"
        self._lock = asyncio.Lock()
        self._quarantine_lock = asyncio.Lock()
        self._quarantine = QuarantineFile(sink, self.quarantine_relpath)
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
        step = partial(self._parts.write_records, records) if records else None
        await self._write_locked(step, len(records), rows)

    @property
    def format(self) -> str:
        """The output format (``jsonl``, ``csv``, ``parquet``)."""
        return self._options.format

    async def write_encoded(self, data: Bytes, ends: Sequence[int], *, rows: int) -> None:
        """Write records already encoded in this publisher's line format (jsonl, csv).

        For producers that encode without a Python object per record (the columnar fast path):
        ``data`` holds the records back to back, ``ends[i]`` is the offset just after record
        ``i`` (``ends[-1] == len(data)``); ``rows`` is the number of source rows behind them.
        """
        if self._parts.columnar:
            raise StreamxError(f"write_encoded needs a line format, not {self.format!r}")
        step = partial(self._parts.write_block, data, ends) if len(ends) else None
        await self._write_locked(step, len(ends), rows)

    async def write_batch(self, batch: Any, *, rows: int) -> None:
        """Write a ``pyarrow.RecordBatch`` of schema v1 (columnar formats: Parquet)."""
        if not self._parts.columnar:
            raise StreamxError(f"write_batch needs a columnar format, not {self.format!r}")
        step = partial(self._parts.write_batch, batch) if batch.num_rows else None
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
        entry = quarantine_line(file, line, reason, raw)
        async with self._quarantine_lock:
            self._check_open()
            try:
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
            try:
                await self._parts.seal_open_part()
            except BaseException:
                self._state = "failed"
                raise

    def snapshot(self) -> PublisherState:
        """The sealed parts and the counters (call :meth:`cut` first for an exact state)."""
        return PublisherState(
            parts=self._parts.sealed,
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
        if not self._parts.empty or self._records or self._rows_ok or self._files:
            raise StreamxError(f"publisher for {self.manifest_relpath} already has data")
        self._parts.restore(state.parts)
        self._records, self._rows_ok = state.records, state.rows_ok
        self._rows_quarantined = state.rows_quarantined
        self._files = {entry["name"]: SourceFile(**entry) for entry in state.source_files}
        self._started_at = state.started_at
        if state.rows_quarantined:
            await self._quarantine.open()

    # -- commit / abort -------------------------------------------------------------------

    async def commit(self) -> Manifest:
        """Publish the parts and the quarantine file, then the manifest, last. Returns it.

        Raises :class:`StreamxError` (after aborting) if the row accounting does not balance.
        """
        async with self._lock, self._quarantine_lock:
            self._check_open()
            try:
                await self._parts.seal_open_part()
                await self._quarantine.finish()
                self._check_accounting()
                await self._parts.commit()
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
            parts=self._parts.sealed,
            records=self._records,
            rows_read=sum(entry["rows_read"] for entry in self._files.values()),
            rows_ok=self._rows_ok,
            rows_quarantined=self._rows_quarantined,
            quarantine=self.quarantine_relpath if self._quarantine.opened else None,
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
        uploads = self._parts.uploads() + self._quarantine.uploads()
        first: BaseException | None = None
        for upload in uploads:
            try:
                await upload.abort()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first


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


__all__ = ["OutputOptions", "Publisher", "PublisherState"]
