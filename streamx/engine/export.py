"""One export's state machine: start -> poll -> transfer -> publish, and its result.

:class:`ExportRun` is driven by :class:`~streamx.engine.runner.Engine`, which owns what all
exports share (:class:`Shared`: clock, sink, the global transfer semaphore, the poll schedule)
and what each account shares (its transfer semaphore and retry budget). Every vendor call is
retried through :func:`~streamx.engine.retry.call_with_retries` with the export's policy: only
transient errors, full-jitter backoff, ``Retry-After`` honoured, bounded by attempts, the
export's deadline and the account's retry budget. When a result must be fetched again from byte
0 (the object changed, or resuming kept failing), the publisher is aborted and the whole file set
restarted, at most ``transfer_attempts`` times: records already written cannot be taken back,
so starting over is the simplest correct choice. Any exception ends the export as a ``failed``
:class:`ExportResult`; cancellation propagates, and the publisher's ``async with`` aborts every
upload on the way out, so nothing half-published becomes visible.

With a state store (an :class:`~streamx.durable.tracker.ExportTracker`), every step is recorded
so that a killed process resumes instead of repeating: a known remote id is polled rather than
started again (a job the vendor no longer knows is replaced; a named job whose id was never
recorded is looked up by its name, :class:`~streamx.durable.tracker.NamedJobs`), the transfer
resumes from its last checkpoint (and a transient failure mid-transfer resumes from it too,
instead of from byte 0), and an export already ``done`` is skipped. See
:mod:`streamx.durable.checkpoint` for why the resumed output equals a clean run's, record for
record.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from streamx.config import AccountConfig, Config, ExportSpec
from streamx.durable.checkpoint import Checkpoint, consumed
from streamx.durable.tracker import ExportTracker, NamedJobs, adopt_job, job_handle
from streamx.engine.backoff import Backoff
from streamx.engine.clock import Clock
from streamx.engine.errors import ObjectChangedError, RequestRejectedError
from streamx.engine.poll import PollSchedule, wait_for_job
from streamx.engine.retry import Retrier, RetryBudget, RetryPolicy, call_with_retries
from streamx.exceptions import StreamxError, TransientError
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import FileStats, ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.redact import redact_text
from streamx.sinks.base import Sink
from streamx.state.base import ExportState, LeaseLostError
from streamx.vendors.base import (
    CallOptions,
    JobFailedError,
    JobStatus,
    ResultFile,
    TotalsMismatchError,
    VendorClient,
)

log = logging.getLogger("streamx.engine")
T = TypeVar("T")
#: At most this many ``progress`` events per second and export.
PROGRESS_INTERVAL = 0.25


@dataclass
class ExportResult:
    """The outcome of one export. ``status`` is ``done`` (published) or ``failed``.

    ``error`` is the redacted message of what failed (``error_type`` its class name);
    ``bytes_read`` counts result-file bytes as stored by the vendor that this run read (a
    resumed export reads only what its checkpoint did not cover), ``bytes_written`` the
    published parts; ``retries`` counts retried vendor calls and restarted transfers.
    ``skipped``: the state store says the export was already published (nothing was done);
    ``resumed``: this run continued a job (and maybe a transfer) a previous run began.
    """

    name: str
    spec: ExportSpec
    status: Literal["done", "failed"]
    remote_id: str | None = None
    error: str | None = None
    error_type: str | None = None
    records: int = 0
    rows_read: int = 0
    rows_quarantined: int = 0
    files: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    retries: int = 0
    seconds: float = 0.0
    manifest_location: str | None = None
    manifest: Manifest | None = field(default=None, repr=False)
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    skipped: bool = False
    resumed: bool = False

    @property
    def ok(self) -> bool:
        """True when the export was published."""
        return self.status == "done"


@dataclass(frozen=True)
class EngineEvent:
    """A step of one export, for progress displays and logs. ``kind`` is ``started`` (the
    remote id is known), ``resumed`` (a job a previous run started is used again), ``gone``
    (the vendor no longer knows that job), ``status`` (a poll answer), ``transfer_start`` /
    ``transfer_end`` (a transfer slot was taken / is being given back), ``progress`` (bytes
    and records so far, a few times a second), ``checkpoint``, ``retry``, ``skipped`` (already
    published), ``done`` or ``failed``."""

    export: str
    kind: str
    remote_id: str | None = None
    detail: str | None = None
    status: JobStatus | None = None
    #: The wait before a ``retry``, in seconds.
    delay: float | None = None
    #: Result bytes read so far by this run (``progress``, ``done``).
    bytes_read: int | None = None
    #: Total size of the result files when the vendor says (for an ETA).
    bytes_total: int | None = None
    #: Records written so far, resumed ones included (``progress``, ``done``).
    records: int | None = None
    #: Rows quarantined so far (``progress``, ``done``).
    quarantined: int | None = None


OnEvent = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class Shared:
    """What every export of one engine shares."""

    config: Config
    clock: Clock
    rng: random.Random
    sink: Sink
    output: OutputOptions
    schedule: PollSchedule
    transfers: asyncio.Semaphore
    emit: OnEvent


@dataclass(frozen=True)
class AccountState:
    """What every export of one account shares: its client, transfer slots and retry budget."""

    account: AccountConfig
    client: VendorClient
    slots: asyncio.Semaphore
    budget: RetryBudget


@dataclass
class _Outcome:
    manifest: Manifest
    location: str
    files: list[FileStats]


class ExportRun:
    """One export's state machine (see the module docstring). Run it once with :meth:`execute`.

    ``tracker`` (optional) records the export in a state store and resumes it from there.
    """

    def __init__(
        self,
        shared: Shared,
        state: AccountState,
        spec: ExportSpec,
        stream: str,
        tracker: ExportTracker | None = None,
    ) -> None:
        self.shared, self.state, self.spec, self.stream = shared, state, spec, stream
        self.tracker = tracker
        self.account, self.client = state.account, state.client
        clock, settings = shared.clock, shared.config.engine
        self.started = clock.now()
        self.day = spec.dt or clock.wall().date().isoformat()
        self.policy = RetryPolicy(
            backoff=Backoff(settings.backoff_base, settings.backoff_cap),
            max_attempts=settings.max_attempts,
            deadline=self.started + (spec.deadline or settings.deadline),
            budget=state.budget,
            retry_after_cap=settings.retry_after_cap,
        )
        self.options = CallOptions(self.policy, clock, shared.rng)
        self.remote_id: str | None = None
        self.retries = 0
        self.resumed = False
        self._progress = _Progress()

    async def execute(self) -> ExportResult:
        try:
            if self.tracker is not None:
                row = await self.tracker.begin(self.day)
                if row.status == "done":
                    return self._skipped(row)
                self.day = self.tracker.day or self.day
            status = await self._start_or_resume()
            async with self.shared.transfers, self.state.slots:
                self._emit("transfer_start")
                try:
                    outcome = await self._transfer(self.remote_id or "", status)
                finally:
                    self._emit("transfer_end")
            result = self._done(outcome)
            if self.tracker is not None:
                await self.tracker.done(outcome.location, _summary(result))
        except LeaseLostError as exc:
            return self._failed(exc)  # another process owns the row now: record nothing
        except Exception as exc:
            if not isinstance(exc, StreamxError):
                log.exception("export %s failed unexpectedly", self.spec.name)
            failed = self._failed(exc)
            await self._record_failure(failed)
            return failed
        detail = f"{result.records} records; manifest {result.manifest_location}"
        self._emit_result("done", detail, result)
        return result

    async def _start_or_resume(self) -> JobStatus:
        """Poll the job a previous run started (if the vendor still knows it), else start one."""
        tracker = self.tracker
        known = tracker.remote_id if tracker is not None else None
        if tracker is not None and known is not None:
            self.remote_id, self.resumed = known, True
            checkpoint = tracker.checkpoint
            if checkpoint is not None and checkpoint.complete:
                self._emit("resumed", "publishing what a previous run transferred")
                return JobStatus("resumed", done=True, totals=checkpoint.totals)
            adopt_job(self.client, known, tracker.extra.get("job"))
            self._emit("resumed", f"{self.client.vendor} id {known}")
            try:
                return await self._wait(known)
            except RequestRejectedError as exc:
                if exc.status != 404:
                    raise
                self._emit("gone", f"{self.client.vendor} no longer knows {known}: starting anew")
                await tracker.gone()
                self.remote_id, self.resumed = None, False
        if tracker is not None and isinstance(self.client, NamedJobs):
            return await self._start_named(tracker, self.client)
        if tracker is not None:
            await tracker.starting()
        self.remote_id = await self._retry(lambda: self.client.start(self.spec, self.stream))
        if tracker is not None:
            await tracker.started(self.remote_id, job_handle(self.client, self.remote_id))
        self._emit("started", f"{self.client.vendor} id {self.remote_id}")
        return await self._wait(self.remote_id)

    async def _start_named(self, tracker: ExportTracker, client: NamedJobs) -> JobStatus:
        """Start a named job exactly once: its name is recorded before the POST; when a
        previous run (or a retried POST) may already have reached the vendor, the job is
        looked up by that name first and adopted if it exists."""
        planned = tracker.planned_job
        handle = planned or client.plan_job()
        await tracker.starting(handle)
        look_first = planned is not None

        async def attempt() -> tuple[str, bool]:
            nonlocal look_first
            if look_first:
                found = await client.find_job(handle["name"], self.stream)
                if found is not None:
                    return found, True
            look_first = True  # this POST may reach the vendor even if its answer does not
            return await client.start_job(self.spec, self.stream, handle), False

        remote_id, adopted = await self._retry(attempt)
        self.remote_id = remote_id
        client.adopt_job(remote_id, handle)
        await tracker.started(remote_id, handle)
        vendor = self.client.vendor
        if adopted:
            self.resumed = True
            self._emit("resumed", f"{vendor} id {remote_id} (found by its name)")
        else:
            self._emit("started", f"{vendor} id {remote_id}")
        return await self._wait(remote_id)

    async def _record_failure(self, result: ExportResult) -> None:
        if self.tracker is None or self.tracker.row is None:
            return
        try:
            await self.tracker.failed(result.error or "", result.error_type or "")
        except Exception:  # the export's own error is what matters; the row stays open
            log.exception("export %s: cannot record its failure", self.spec.name)

    async def _wait(self, remote_id: str) -> JobStatus:
        status = await wait_for_job(
            lambda: self.client.poll(remote_id),
            schedule=self.shared.schedule,
            policy=self.policy,
            clock=self.shared.clock,
            rng=self.shared.rng,
            subject=f"export {self.spec.name}",
            ids=self._ids(),
            on_status=lambda status: self._emit("status", status.state, status),
            on_retry=self._on_retry,
        )
        if status.failed:
            raise JobFailedError(
                f"{self.client.vendor} reports export {remote_id} failed: {status.reason}",
                reason=status.reason,
                **self._ids(),
            )
        return status

    async def _transfer(self, remote_id: str, status: JobStatus) -> _Outcome:
        attempts = self.shared.config.engine.transfer_attempts
        retrier = Retrier(
            replace(self.policy, max_attempts=attempts),
            clock=self.shared.clock,
            rng=self.shared.rng,
            on_retry=self._on_retry,
        )
        while True:
            try:
                return await self._publish(remote_id, status)
            except ObjectChangedError as exc:
                if self.tracker is not None:
                    await self.tracker.restart()
                restart = _restart(exc)
                try:
                    await retrier.backoff(restart)
                except TransientError as out_of_attempts:
                    if out_of_attempts is restart:
                        raise exc from None  # the permanent cause, not the restart wrapper
                    raise
            except TransientError as exc:
                await retrier.backoff(exc)

    async def _publish(self, remote_id: str, status: JobStatus) -> _Outcome:
        if self.tracker is not None:
            return await self._publish_tracked(remote_id, status)
        files = await self._retry(lambda: self.client.locate(remote_id))
        ctx = self._context(remote_id)
        sink, prefix = self.shared.sink, self.shared.config.output.prefix
        options = self.shared.output
        self._progress.begin(files)
        async with Publisher(sink, ctx, options, dt=self.day, prefix=prefix) as publisher:
            stats = [
                await self._ingest(file, ctx, publisher, index) for index, file in enumerate(files)
            ]
            rows = sum(item.rows_read for item in stats)
            self._check_totals(status, rows, len(files))
            manifest = await publisher.commit()
        return _Outcome(manifest, sink.location(publisher.manifest_relpath), stats)

    async def _publish_tracked(self, remote_id: str, status: JobStatus) -> _Outcome:
        """:meth:`_publish` with checkpoints: resumes where the last one left off."""
        tracker = self.tracker
        assert tracker is not None
        ctx = self._context(remote_id)
        files: list[ResultFile] = []
        if tracker.checkpoint is None or not tracker.checkpoint.complete:
            files = await self._retry(lambda: self.client.locate(remote_id))
        checkpoint = await tracker.transferring(files)
        options, prefix = self.shared.output, self.shared.config.output.prefix
        sink = tracker.sink(self.shared.sink)
        publisher = Publisher(sink, ctx, options, dt=self.day, prefix=prefix)
        sink.quarantine_relpath = publisher.quarantine_relpath
        self._progress.begin(files, checkpoint)
        try:
            async with publisher:
                stats = await self._read_from(checkpoint, files, ctx, publisher)
                snapshot = publisher.snapshot()
                rows = sum(entry["rows_read"] for entry in snapshot.source_files)
                self._check_totals(status, rows, len(snapshot.source_files))
                if checkpoint is None or not checkpoint.complete:
                    await tracker.save(
                        publisher, len(files), 0, 0, complete=True, totals=status.totals
                    )
                manifest = await publisher.commit()
        finally:
            await sink.close()
        return _Outcome(manifest, sink.location(publisher.manifest_relpath), stats)

    async def _read_from(
        self,
        checkpoint: Checkpoint | None,
        files: list[ResultFile],
        ctx: ExportContext,
        publisher: Publisher,
    ) -> list[FileStats]:
        """Read ``files`` into ``publisher``, from ``checkpoint`` on when there is one."""
        first, skip = 0, 0
        if checkpoint is not None:
            await publisher.restore(checkpoint.publisher)
            first, skip = (
                (len(files), 0) if checkpoint.complete else (checkpoint.file, checkpoint.rows)
            )
        stats = []
        for index in range(first, len(files)):
            rows = skip if index == first else 0
            stats.append(await self._ingest(files[index], ctx, publisher, index, rows))
        return stats

    def _check_totals(self, status: JobStatus, rows: int, files: int) -> None:
        if status.totals is not None and rows != status.totals:
            raise TotalsMismatchError(
                f"read {rows} rows from {files} file(s) but the job reports "
                f"{status.totals}: a file is missing or cut short; nothing published",
                **self._ids(),
            )

    def _context(self, remote_id: str) -> ExportContext:
        return ExportContext(
            source=self.client.vendor,
            stream=self.stream,
            account=self.account.name,
            export_id=remote_id,
            column_labels=self.client.column_labels(self.spec),
        )

    async def _ingest(
        self,
        file: ResultFile,
        ctx: ExportContext,
        publisher: Publisher,
        index: int,
        skip_rows: int = 0,
    ) -> FileStats:
        chunks = file.open(self.options)
        tracker = self.tracker

        async def on_chunk(stats: FileStats) -> None:
            self._on_progress(index, stats, publisher)
            if tracker is not None:
                rows = consumed(skip_rows, stats)
                await tracker.maybe_checkpoint(publisher, index, rows, stats.bytes_read)

        try:
            stats = await ingest_file(
                chunks,
                name=file.name,
                ctx=ctx,
                normalizer=get_normalizer(self.stream),
                publisher=publisher,
                skip_rows=skip_rows,
                on_chunk=on_chunk,
                record_filter=tracker.record_filter(ctx, index, skip_rows) if tracker else None,
            )
            self._progress.file_done(stats)
            if tracker is not None:
                await tracker.maybe_checkpoint(publisher, index + 1, 0, 0)
            return stats
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retries(
            call,
            policy=self.policy,
            clock=self.shared.clock,
            rng=self.shared.rng,
            on_retry=self._on_retry,
        )

    def _on_retry(self, number: int, error: StreamxError, delay: float) -> None:
        self.retries += 1
        self._emit("retry", f"#{number} in {delay:.2f} s after: {error}", delay=delay)

    def _ids(self) -> dict[str, str | None]:
        return {
            "vendor": self.client.vendor,
            "account": self.account.name,
            "export_id": self.remote_id,
        }

    def _emit(
        self,
        kind: str,
        detail: str | None = None,
        status: JobStatus | None = None,
        *,
        delay: float | None = None,
    ) -> None:
        event = EngineEvent(self.spec.name, kind, self.remote_id, detail, status, delay)
        self.shared.emit(event)

    def _on_progress(self, index: int, stats: FileStats, publisher: Publisher) -> None:
        now = self.shared.clock.now()
        self._progress.current = stats.bytes_read
        if now - self._progress.emitted < PROGRESS_INTERVAL:
            return
        self._progress.emitted = now
        snapshot = publisher.snapshot()
        self.shared.emit(
            EngineEvent(
                self.spec.name,
                "progress",
                self.remote_id,
                f"file {index + 1}",
                bytes_read=self._progress.bytes_read,
                bytes_total=self._progress.total,
                records=snapshot.records,
                quarantined=snapshot.rows_quarantined,
            )
        )

    def _emit_result(self, kind: str, detail: str, result: ExportResult | None = None) -> None:
        self.shared.emit(
            EngineEvent(
                self.spec.name,
                kind,
                self.remote_id,
                detail,
                bytes_read=None if result is None else result.bytes_read,
                records=None if result is None else result.records,
                quarantined=None if result is None else result.rows_quarantined,
            )
        )

    def _result(self, status: Literal["done", "failed"]) -> ExportResult:
        return ExportResult(
            name=self.spec.name,
            spec=self.spec,
            status=status,
            remote_id=self.remote_id,
            retries=self.retries,
            seconds=self.shared.clock.now() - self.started,
            resumed=self.resumed,
        )

    def _done(self, outcome: _Outcome) -> ExportResult:
        result = self._result("done")
        manifest = outcome.manifest
        result.records, result.rows_read = manifest.records, manifest.rows_read
        result.rows_quarantined, result.files = (
            manifest.rows_quarantined,
            len(manifest.source_files),
        )
        result.bytes_read = sum(item.bytes_read for item in outcome.files)
        result.bytes_written = sum(part.bytes for part in manifest.parts)
        result.manifest, result.manifest_location = manifest, outcome.location
        return result

    def _skipped(self, row: ExportState) -> ExportResult:
        """The store says this export is published: report it without doing anything."""
        self.remote_id = row.remote_id
        result = self._result("done")
        result.skipped, result.manifest_location = True, row.manifest_location
        summary = row.extra.get("result") or {}
        for name in ("records", "rows_read", "rows_quarantined", "files", "bytes_written"):
            setattr(result, name, int(summary.get(name, 0)))
        self._emit_result("skipped", f"already published: {row.manifest_location}", result)
        return result

    def _failed(self, exc: Exception) -> ExportResult:
        result = self._result("failed")
        result.error = redact_text(str(exc)) or type(exc).__name__
        result.error_type, result.exception = type(exc).__name__, exc
        self._emit("failed", result.error)
        return result


@dataclass
class _Progress:
    """Bytes read by this run, for ``progress`` events."""

    done: int = 0
    current: int = 0
    total: int | None = None
    emitted: float = float("-inf")

    @property
    def bytes_read(self) -> int:
        return self.done + self.current

    def begin(self, files: list[ResultFile], checkpoint: Checkpoint | None = None) -> None:
        sizes = [file.size for file in files]
        self.total = None if None in sizes else sum(size or 0 for size in sizes)
        if checkpoint is not None and self.total is not None:
            skipped = files[: min(checkpoint.file, len(files))]
            self.total -= sum(file.size or 0 for file in skipped)
        self.done, self.current = 0, 0

    def file_done(self, stats: FileStats) -> None:
        self.done += stats.bytes_read
        self.current = 0


def _summary(result: ExportResult) -> dict[str, int]:
    """What ``streamx status`` shows of a published export."""
    return {
        "records": result.records,
        "rows_read": result.rows_read,
        "rows_quarantined": result.rows_quarantined,
        "files": result.files,
        "bytes_written": result.bytes_written,
    }


def _restart(exc: ObjectChangedError) -> TransientError:
    error = TransientError(
        f"restarting the transfer from byte 0: {exc.message}",
        vendor=exc.vendor,
        account=exc.account,
        export_id=exc.export_id,
    )
    error.__cause__ = exc
    return error


__all__ = ["AccountState", "EngineEvent", "ExportResult", "ExportRun", "OnEvent", "Shared"]
