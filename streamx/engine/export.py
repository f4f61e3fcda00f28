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
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from streamx.config import AccountConfig, Config, ExportSpec
from streamx.engine.backoff import Backoff
from streamx.engine.clock import Clock
from streamx.engine.errors import ObjectChangedError
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


@dataclass
class ExportResult:
    """The outcome of one export. ``status`` is ``done`` (published) or ``failed``.

    ``error`` is the redacted message of what failed (``error_type`` its class name);
    ``bytes_read`` counts result-file bytes as stored by the vendor, ``bytes_written`` the
    published parts; ``retries`` counts retried vendor calls and restarted transfers.
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

    @property
    def ok(self) -> bool:
        """True when the export was published."""
        return self.status == "done"


@dataclass(frozen=True)
class EngineEvent:
    """A step of one export, for progress displays and logs. ``kind`` is ``started`` (the
    remote id is known), ``status`` (a poll answer), ``transfer_start`` / ``transfer_end``
    (a transfer slot was taken / is being given back), ``retry``, ``done`` or ``failed``."""

    export: str
    kind: str
    remote_id: str | None = None
    detail: str | None = None
    status: JobStatus | None = None
    #: The wait before a ``retry``, in seconds.
    delay: float | None = None


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
    """One export's state machine (see the module docstring). Run it once with :meth:`execute`."""

    def __init__(self, shared: Shared, state: AccountState, spec: ExportSpec, stream: str) -> None:
        self.shared, self.state, self.spec, self.stream = shared, state, spec, stream
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

    async def execute(self) -> ExportResult:
        try:
            self.remote_id = await self._retry(lambda: self.client.start(self.spec, self.stream))
            self._emit("started", f"{self.client.vendor} id {self.remote_id}")
            status = await self._wait(self.remote_id)
            async with self.shared.transfers, self.state.slots:
                self._emit("transfer_start")
                try:
                    outcome = await self._transfer(self.remote_id, status)
                finally:
                    self._emit("transfer_end")
        except Exception as exc:
            if not isinstance(exc, StreamxError):
                log.exception("export %s failed unexpectedly", self.spec.name)
            return self._failed(exc)
        return self._done(outcome)

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
        files = await self._retry(lambda: self.client.locate(remote_id))
        ctx = ExportContext(
            source=self.client.vendor,
            stream=self.stream,
            account=self.account.name,
            export_id=remote_id,
            column_labels=self.client.column_labels(self.spec),
        )
        sink, prefix = self.shared.sink, self.shared.config.output.prefix
        options = self.shared.output
        async with Publisher(sink, ctx, options, dt=self.day, prefix=prefix) as publisher:
            stats = [await self._ingest(file, ctx, publisher) for file in files]
            rows = sum(item.rows_read for item in stats)
            if status.totals is not None and rows != status.totals:
                raise TotalsMismatchError(
                    f"read {rows} rows from {len(files)} file(s) but the job reports "
                    f"{status.totals}: a file is missing or cut short; nothing published",
                    **self._ids(),
                )
            manifest = await publisher.commit()
        return _Outcome(manifest, sink.location(publisher.manifest_relpath), stats)

    async def _ingest(
        self, file: ResultFile, ctx: ExportContext, publisher: Publisher
    ) -> FileStats:
        chunks = file.open(self.options)
        try:
            return await ingest_file(
                chunks,
                name=file.name,
                ctx=ctx,
                normalizer=get_normalizer(self.stream),
                publisher=publisher,
            )
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

    def _result(self, status: Literal["done", "failed"]) -> ExportResult:
        return ExportResult(
            name=self.spec.name,
            spec=self.spec,
            status=status,
            remote_id=self.remote_id,
            retries=self.retries,
            seconds=self.shared.clock.now() - self.started,
        )

    def _done(self, outcome: _Outcome) -> ExportResult:
        result = self._result("done")
        manifest = outcome.manifest
        result.records, result.rows_read = manifest.records, manifest.rows_read
        result.rows_quarantined, result.files = manifest.rows_quarantined, len(outcome.files)
        result.bytes_read = sum(item.bytes_read for item in outcome.files)
        result.bytes_written = sum(part.bytes for part in manifest.parts)
        result.manifest, result.manifest_location = manifest, outcome.location
        self._emit("done", f"{manifest.records} records; manifest {outcome.location}")
        return result

    def _failed(self, exc: Exception) -> ExportResult:
        result = self._result("failed")
        result.error = redact_text(str(exc)) or type(exc).__name__
        result.error_type, result.exception = type(exc).__name__, exc
        self._emit("failed", result.error)
        return result


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
