"""The state-store side of one export: what the engine records, and what a rerun resumes from.

:class:`ExportTracker` is handed to :class:`~streamx.engine.export.ExportRun` when the engine
has a state store. The export's row moves ``planned -> started -> transferring -> done`` (or
``failed``), and every step that a killed process must not repeat is recorded *before* the
next one begins:

* before the vendor is asked to start a job, an intent (``extra.starting``, ``extra.starts``,
  and for a named job its name and landing path in ``extra.job``); right after, the job's id
  (``remote_id``) and what the client needs to find its files again (``extra.job``): a rerun
  polls that job instead of starting another;
* during the transfer, checkpoints (:mod:`streamx.durable.checkpoint`) at most every
  ``checkpoint_seconds``, at a row boundary; a rerun resumes from the last one;
* before the manifest is written, a *complete* checkpoint listing every part, so a kill during
  publishing is finished by the rerun without reading anything again;
* after the manifest, ``done`` with its location: a rerun skips the export.

A kill after the vendor accepted the start request but before its answer was recorded: neither
vendor offers an idempotency key, but a client with :class:`NamedJobs` (Cordial) has its job's
name and landing path recorded in ``extra.job`` before the request, and a rerun looks the job
up by that name and adopts it instead of starting another. Symplify has no such lookup: there
the gap stays, the job is left unused, and ``extra.starting`` stays set on the row so
``streamx status`` can say so.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from streamx.config import ExportSpec
from streamx.durable.checkpoint import (
    Checkpoint,
    CheckpointSink,
    FileRef,
    consumed,
    position,
    remove_spool,
)
from streamx.durable.dedupe import DedupeIndex, scope_of
from streamx.engine.clock import Clock
from streamx.normalize.base import ExportContext
from streamx.pipeline import FileStats, RecordFilter
from streamx.publish import Publisher
from streamx.sinks.base import Sink
from streamx.state.base import ExportState, StateStore
from streamx.vendors.base import ResultFile, VendorClient


@dataclass(frozen=True)
class DurableOptions:
    """How an engine with a state store records its exports.

    ``owner``: the lease owner this process claimed its rows as (updates then fail with
    :class:`~streamx.state.base.LeaseLostError` once another process took a row over);
    ``spool_dir``: local directory for quarantine spools; ``dedupe``: the record-id index,
    applied to the exports of ``dedupe_vendors`` (Symplify: its periods overlap).
    """

    owner: str | None = None
    spool_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "streamx-spool")
    dedupe: DedupeIndex | None = None
    dedupe_vendors: frozenset[str] = frozenset({"symplify"})
    checkpoint_seconds: float = 30.0


def spec_record(spec: ExportSpec) -> dict[str, Any]:
    """An export spec as the JSON the store keeps."""
    record = asdict(spec)
    record["options"] = dict(spec.options)
    return record


def spec_from_record(record: Mapping[str, Any]) -> ExportSpec:
    """The export spec a store row holds."""
    known = ExportSpec.__dataclass_fields__
    return ExportSpec(**{key: value for key, value in record.items() if key in known})


@runtime_checkable
class NamedJobs(Protocol):
    """A vendor client whose jobs carry a name streamx chooses (Cordial): the name can be
    recorded before the start request and the job found by it afterwards, so a killed process
    never starts a job twice."""

    def plan_job(self) -> dict[str, str]: ...

    async def start_job(self, spec: ExportSpec, stream: str, handle: Mapping[str, Any]) -> str: ...

    async def find_job(self, name: str, stream: str | None = None) -> str | None: ...

    def job_handle(self, remote_id: str) -> dict[str, str] | None: ...

    def adopt_job(self, remote_id: str, handle: Mapping[str, Any]) -> None: ...


def job_handle(client: VendorClient, remote_id: str) -> dict[str, str] | None:
    """What a client must know to find a started job's files again (Cordial: the job's name
    and landing path), or None (a client without named jobs needs nothing)."""
    if not isinstance(client, NamedJobs):
        return None
    handle = client.job_handle(remote_id)
    return dict(handle) if handle else None


def adopt_job(client: VendorClient, remote_id: str, handle: Mapping[str, Any] | None) -> None:
    """Give ``client`` back the handle :func:`job_handle` recorded for ``remote_id``."""
    if handle and isinstance(client, NamedJobs):
        client.adopt_job(remote_id, handle)


class ExportTracker:
    """One export's row in the store (see the module docstring)."""

    def __init__(
        self, store: StateStore, spec: ExportSpec, options: DurableOptions, clock: Clock
    ) -> None:
        self.store = store
        self.spec = spec
        self.key = spec.name
        self.options = options
        self.clock = clock
        self.row: ExportState | None = None
        self.checkpoint: Checkpoint | None = None
        self._files: tuple[FileRef, ...] = ()
        self._last_checkpoint = clock.now()
        self._sink: CheckpointSink | None = None
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:32]
        self.spool_path = options.spool_dir / f"{digest}.quarantine.jsonl"

    # -- the row --------------------------------------------------------------------------

    @property
    def remote_id(self) -> str | None:
        return None if self.row is None else self.row.remote_id

    @property
    def extra(self) -> dict[str, Any]:
        return {} if self.row is None else dict(self.row.extra)

    async def begin(self, default_day: str) -> ExportState:
        """Load (or create) the row; unless it is done, count an attempt and fix its
        partition day. Returns the row as it stood."""
        row = await self.store.get(self.key)
        if row is None:
            await self.store.add([ExportState(self.key, spec_record(self.spec))], now=self._now())
            row = await self.store.get(self.key)
            assert row is not None
        if row.status == "done":
            self.row = row
            return row
        extra = {**row.extra, "dt": row.extra.get("dt") or self.spec.dt or default_day}
        self.row = await self._update({"attempts": row.attempts + 1, "extra": extra})
        self.checkpoint = await self._usable(Checkpoint.from_json(row.checkpoint))
        return row

    @property
    def day(self) -> str | None:
        """The partition date fixed at the first attempt (resumed runs write beside it)."""
        value = self.extra.get("dt")
        return str(value) if value else None

    @property
    def planned_job(self) -> dict[str, str] | None:
        """The handle of a named job a previous run was starting but never saw the id of
        (it may exist at the vendor: look it up before starting it)."""
        handle = self.extra.get("job")
        if self.remote_id is not None or not isinstance(handle, dict) or not handle.get("name"):
            return None
        return {str(key): str(value) for key, value in handle.items()}

    async def starting(self, handle: Mapping[str, Any] | None = None) -> None:
        """Record the intent to start a vendor job, with the named job's ``handle`` when the
        client has one (see the module docstring)."""
        extra = self.extra
        extra["starting"] = self._now()
        extra["starts"] = int(extra.get("starts", 0)) + 1
        if handle:
            extra["job"] = dict(handle)
        self.row = await self._update({"extra": extra})

    async def started(self, remote_id: str, handle: Mapping[str, Any] | None) -> None:
        extra = self.extra
        extra.pop("starting", None)
        extra["job"] = dict(handle) if handle else None
        await self._forget_progress()
        self.row = await self._update(
            {"status": "started", "remote_id": remote_id, "extra": extra, "checkpoint": None}
        )

    async def gone(self) -> None:
        """The vendor no longer knows the job: forget it (a new one will be started)."""
        await self._forget_progress()
        extra = self.extra
        extra.pop("job", None)
        self.row = await self._update(
            {"status": "planned", "remote_id": None, "checkpoint": None, "extra": extra}
        )

    async def transferring(self, files: Sequence[ResultFile]) -> Checkpoint | None:
        """The transfer begins on ``files``; returns the checkpoint to resume from (None: from
        the start; a checkpoint taken on other files is dropped)."""
        self._files = tuple(FileRef(file.name, file.size) for file in files)
        checkpoint = self.checkpoint
        if checkpoint is not None and not checkpoint.complete and not checkpoint.matches(files):
            await self.restart()
        if self.checkpoint is None:
            await self._forget_progress()
        elif self.options.dedupe is not None:
            await self.options.dedupe.rollback(self.key, self.checkpoint.position)
        self.row = await self._update({"status": "transferring"})
        return self.checkpoint

    async def restart(self) -> None:
        """Drop the checkpoint: the transfer starts over from byte 0."""
        self.checkpoint = None
        await self._forget_progress()
        self.row = await self._update({"checkpoint": None, "parts_done": 0, "bytes_done": 0})

    async def done(self, location: str, summary: Mapping[str, Any]) -> None:
        """The manifest is published: seal the record ids, mark the row, drop the spool."""
        if self.options.dedupe is not None:
            await self.options.dedupe.seal(self.key)
        extra = {**self.extra, "result": dict(summary)}
        extra.pop("starting", None)
        self.row = await self._update(
            {
                "status": "done",
                "manifest_location": location,
                "checkpoint": None,
                "last_error": None,
                "extra": extra,
            }
        )
        await remove_spool(self.spool_path)

    async def failed(self, error: str, error_type: str) -> None:
        extra = {**self.extra, "error_type": error_type}
        self.row = await self._update({"status": "failed", "last_error": error, "extra": extra})

    # -- checkpoints ----------------------------------------------------------------------

    def sink(self, inner: Sink) -> CheckpointSink:
        """The sink one attempt of the transfer publishes through (set its
        ``quarantine_relpath`` to the publisher's before writing)."""
        length = self.checkpoint.quarantine_bytes if self.checkpoint else 0
        sink = CheckpointSink(inner, self.spool_path, length)
        self._sink = sink
        return sink

    async def maybe_checkpoint(
        self, publisher: Publisher, file: int, rows: int, bytes_read: int
    ) -> None:
        """Checkpoint at this row boundary if ``checkpoint_seconds`` have passed."""
        if self.clock.now() - self._last_checkpoint >= self.options.checkpoint_seconds:
            await self.save(publisher, file, rows, bytes_read)

    async def save(
        self,
        publisher: Publisher,
        file: int,
        rows: int,
        bytes_read: int,
        *,
        complete: bool = False,
        totals: int | None = None,
    ) -> None:
        """Seal the open part and record the position (see the module docstring)."""
        assert self._sink is not None, "sink() first"
        await publisher.cut()
        quarantine_bytes = await self._sink.sync_quarantine()
        state = publisher.snapshot()
        checkpoint = Checkpoint(
            files=self._files,
            file=file,
            rows=rows,
            publisher=state,
            quarantine_bytes=quarantine_bytes,
            complete=complete,
            totals=totals,
        )
        done_bytes = sum(entry["bytes_read"] for entry in state.source_files)
        self.row = await self._update(
            {
                "status": "transferring",
                "checkpoint": checkpoint.to_json(),
                "parts_done": len(state.parts),
                "bytes_done": done_bytes + bytes_read,
            }
        )
        self.checkpoint = checkpoint
        self._last_checkpoint = self.clock.now()

    def record_filter(
        self, ctx: ExportContext, file: int, skip_rows: int = 0
    ) -> RecordFilter | None:
        """The dedupe step for file number ``file``, read after skipping ``skip_rows`` (None
        when this export is not deduped)."""
        index = self.options.dedupe
        if index is None or ctx.source not in self.options.dedupe_vendors:
            return None
        scope = scope_of(ctx.account, ctx.stream, self.key)

        async def keep_new(records: list[dict[str, Any]], stats: FileStats) -> list[dict[str, Any]]:
            pos = position(file, consumed(skip_rows, stats))
            return await index.filter(scope, self.key, pos, records)

        return keep_new

    # -- internals ------------------------------------------------------------------------

    async def _usable(self, checkpoint: Checkpoint | None) -> Checkpoint | None:
        """A checkpoint whose quarantine spool is gone (another host, a cleaned temp dir)
        cannot be resumed exactly: the transfer then starts over."""
        if checkpoint is None or checkpoint.quarantine_bytes == 0:
            return checkpoint
        try:
            size = (await asyncio.to_thread(os.stat, self.spool_path)).st_size
        except OSError:
            return None
        return checkpoint if size >= checkpoint.quarantine_bytes else None

    async def _forget_progress(self) -> None:
        if self.options.dedupe is not None:
            await self.options.dedupe.forget(self.key)
        await remove_spool(self.spool_path)

    async def _update(self, changes: Mapping[str, Any]) -> ExportState:
        return await self.store.update(self.key, changes, now=self._now(), owner=self.options.owner)

    def _now(self) -> float:
        return self.clock.wall().timestamp()


__all__ = [
    "DurableOptions",
    "ExportTracker",
    "NamedJobs",
    "adopt_job",
    "job_handle",
    "spec_from_record",
    "spec_record",
]
