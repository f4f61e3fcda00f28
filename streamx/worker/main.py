"""The worker loop: plan due occurrences, claim rows by lease, run them, keep the leases alive.

A thin assembly of the worker's parts around one :class:`~streamx.engine.runner.Engine` in
durable mode (the same machinery as ``streamx backfill``: the engine records every step in the
state store and resumes from remote ids and checkpoints). Each round of the loop:

1. **plan**: the :class:`~streamx.worker.planner.Planner` says which occurrences are due; their
   rows are added to the store (``add`` ignores keys it has, so a fleet, a restart or a
   catch-up never plans an occurrence twice);
2. **claim**: up to ``max_exports`` open rows that nobody holds (any row: an occurrence, or the
   row of a crashed backfill or of a dead worker, which is then resumed);
3. **run** each claimed row as its own task through the engine;
4. **sleep** until the next occurrence, ``tick`` seconds, an export ending or a signal.

Beside the loop a heartbeat renews the leases of the exports in flight every ``heartbeat``
seconds; an export whose lease was lost (this worker stalled past its lease and another took
the row over) is cancelled at once, and the engine's own writes fail with
:class:`~streamx.state.base.LeaseLostError` in the meantime, so the new owner's progress is
never overwritten. On a signal the loop stops claiming, :class:`~streamx.worker.signals.Shutdown`
drains the exports in flight, and the leases of what was cut short are released so another
worker (or the next start) resumes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from streamx.config import Config, ExportSpec, resolve_stream
from streamx.durable.dedupe import DedupeIndex
from streamx.durable.owners import owner_is_dead, owner_name
from streamx.durable.tracker import DurableOptions, spec_from_record
from streamx.engine.clock import Clock, SystemClock
from streamx.engine.export import EngineEvent, ExportResult
from streamx.engine.runner import Engine
from streamx.exceptions import ConfigError
from streamx.landing import LandingZone
from streamx.state.base import OPEN_STATUSES, ExportState, StateStore
from streamx.state.registry import spool_dir as default_spool_dir
from streamx.worker.config import WorkerConfig
from streamx.worker.health import Health, HealthServer, start_lag_monitor
from streamx.worker.logs import event_logger, log_state_change
from streamx.worker.metrics import WorkerMetrics
from streamx.worker.planner import Planner
from streamx.worker.signals import DrainResult, Shutdown
from streamx.worker.specs import occurrence_row

log = logging.getLogger("streamx.worker")
LEASE_LOST = "LeaseLostError"


@dataclass
class WorkerReport:
    """What a worker did: the exports it ran to an end, those it dropped because another
    worker took their lease, and how the final drain went (None: nothing was in flight)."""

    results: list[ExportResult] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    planned: int = 0
    drain: DrainResult | None = None

    @property
    def forced(self) -> bool:
        """A second signal cut the drain short."""
        return self.drain is not None and self.drain.forced

    @property
    def ok(self) -> bool:
        """Every export this worker ran to an end was published."""
        return all(result.ok for result in self.results)


class Worker:
    """One worker process's loop (see the module docstring). ``store`` must be open.

    ``once``: plan and run what is due now, then return (cron, tests). ``shutdown`` is where
    signals arrive (install its handlers before :meth:`run`); ``clock``, ``spool_dir`` and
    ``landing_zones`` are injectable like the engine's.
    """

    def __init__(
        self,
        config: Config,
        worker: WorkerConfig,
        store: StateStore,
        *,
        once: bool = False,
        shutdown: Shutdown | None = None,
        clock: Clock | None = None,
        spool_dir: Path | None = None,
        landing_zones: dict[str, LandingZone] | None = None,
    ) -> None:
        self.config, self.settings, self.store = config, worker.settings, store
        self.once = once
        self.clock: Clock = clock or SystemClock()
        self.shutdown = shutdown or Shutdown(grace=self.settings.grace, clock=self.clock)
        self.spool_dir = spool_dir or default_spool_dir(config)
        self.landing_zones = landing_zones
        self.owner = owner_name(self.settings.id)
        self.lease_seconds = config.state.lease_seconds
        self.planner = Planner(worker.schedules, worker_id=self.settings.id, clock=self.clock)
        self.metrics = WorkerMetrics(self.clock)
        self.health = Health(
            self.clock, max_lag=self.settings.max_lag, max_tick_age=self.settings.max_tick_age
        )
        self.report = WorkerReport()
        self.port: int | None = None
        self._log_event = event_logger(self._describe)
        self._running: dict[str, asyncio.Task[ExportResult]] = {}
        self._specs: dict[str, ExportSpec] = {}
        self._unrunnable: set[str] = set()
        self._wake = asyncio.Event()

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> WorkerReport:
        """Run until a signal (or, with ``once``, until nothing is due or running)."""
        await self._start_up()
        async with self._services() as engine:
            await self._loop(engine)
            await self._drain()
        return self.report

    async def _loop(self, engine: Engine) -> None:
        while not self.shutdown.draining.is_set():
            self.health.tick()
            planned = await self._guarded("plan", self._plan)
            claimed = await self._guarded("claim", lambda: self._claim(engine))
            if self.once and not self._running and not planned and not claimed:
                return
            await self._sleep()

    async def _guarded(self, what: str, step: Callable[[], Awaitable[int]]) -> int:
        """One step of the loop; a store outage is logged and retried next round."""
        try:
            return await step()
        except Exception as exc:
            log.warning("worker %s: cannot %s now (%s); retrying", self.settings.id, what, exc)
            return 0

    async def _sleep(self) -> None:
        """Until the next occurrence or ``tick`` seconds, cut short by an export ending or a
        signal."""
        self._wake.clear()
        delay = min(self.settings.tick, self.planner.seconds_until_next())
        waiters = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self.shutdown.draining.wait()),
            asyncio.ensure_future(self.clock.sleep(delay)),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    # -- start-up and services ------------------------------------------------------------

    async def _start_up(self) -> None:
        """Learn what was planned before (catch-up) and take back leases of dead processes
        of this host (a ``kill -9``ed predecessor under systemd)."""
        rows = await self.store.list()
        self.planner.seed(row.key for row in rows)
        dead = [
            row
            for row in rows
            if row.status in OPEN_STATUSES
            and row.lease_owner
            and row.lease_owner != self.owner
            and owner_is_dead(row.lease_owner)
        ]
        for row in dead:
            assert row.lease_owner is not None
            self._state(row.key, "reclaimed", detail=f"{row.lease_owner} is gone")
            await self.store.release(row.lease_owner, [row.key])

    @contextlib.asynccontextmanager
    async def _services(self) -> AsyncIterator[Engine]:
        """The engine, the HTTP endpoints, the lag probe and the heartbeat, for the run."""
        async with contextlib.AsyncExitStack() as stack:
            index = await stack.enter_async_context(
                DedupeIndex(self.spool_dir / "record-ids.sqlite")
            )
            durable = DurableOptions(
                owner=self.owner,
                spool_dir=self.spool_dir,
                dedupe=index,
                checkpoint_seconds=self.config.state.checkpoint_seconds,
            )
            engine = Engine(
                self.config,
                store=self.store,
                durable=durable,
                clock=self.clock,
                on_event=self._on_event,
                landing_zones=self.landing_zones,
            )
            await stack.enter_async_context(engine)
            server = HealthServer(
                self.health, self.metrics, host=self.settings.host, port=self.settings.port
            )
            await stack.enter_async_context(server)
            self.port = server.port
            log.info(
                "worker %s: /healthz and /metrics on http://%s:%d (lease owner %s)",
                self.settings.id,
                self.settings.host,
                self.port,
                self.owner,
            )
            lag = start_lag_monitor(
                self.health, self.metrics, clock=self.clock, interval=self.settings.lag_interval
            )
            stack.push_async_callback(_stop, lag)
            heartbeat = asyncio.create_task(self._heartbeat(), name="streamx-heartbeat")
            stack.push_async_callback(_stop, heartbeat)
            yield engine

    # -- planning and claiming ------------------------------------------------------------

    async def _plan(self) -> int:
        """Add the due occurrences' rows; returns how many were new to the store."""
        before = dict(self.planner.last_planned)
        due = self.planner.plan()
        if not due:
            return 0
        rows = [occurrence_row(self.config, occurrence) for occurrence in due]
        try:
            added = await self.store.add(rows, now=self._now())
        except BaseException:
            self.planner.last_planned = before  # not stored: plan them again next round
            raise
        for row in rows:
            self._state(row.key, "planned")
        self.report.planned += added
        return added

    async def _claim(self, engine: Engine) -> int:
        """Claim open rows for the free slots and start them; returns how many started."""
        free = self.settings.max_exports - len(self._running)
        if free <= 0:
            return 0
        rows = await self.store.claim(
            self.owner,
            now=self._now(),
            lease_seconds=self.lease_seconds,
            limit=free + len(self._unrunnable),
        )
        started, handback = 0, []
        for row in rows:
            if started == free or row.key in self._unrunnable or row.key in self._running:
                handback.append(row.key)
                continue
            spec = self._runnable(engine, row)
            if spec is None:
                handback.append(row.key)
                continue
            self._start(engine, row, spec)
            started += 1
        await self.store.release(self.owner, handback)
        return started

    def _runnable(self, engine: Engine, row: ExportState) -> ExportSpec | None:
        """The row's spec, or None when this worker's configuration cannot run it (another
        configuration's row sharing the store): it is left to a worker that can."""
        try:
            spec = spec_from_record(row.spec)
            engine.check(spec)
        except (ConfigError, TypeError) as exc:
            self._unrunnable.add(row.key)
            self._state(row.key, "not runnable here", detail=str(exc), level=logging.WARNING)
            return None
        return spec

    def _start(self, engine: Engine, row: ExportState, spec: ExportSpec) -> None:
        key = row.key
        self._specs[key] = spec
        self.metrics.begin(key)
        resuming = None if row.status == "planned" else f"resuming a {row.status} export"
        self._state(key, "claimed", detail=resuming)
        task = asyncio.create_task(self._run_one(engine, spec), name=f"streamx-export-{key}")
        self._running[key] = task
        task.add_done_callback(lambda done: self._ended(key, done))

    async def _run_one(self, engine: Engine, spec: ExportSpec) -> ExportResult:
        """Run one export and hand its row back however it ended (a lease another worker
        holds now is not ours to release: the store checks the owner)."""
        try:
            return await engine.run_export(spec)
        finally:
            await _release(self.store, self.owner, [spec.name])

    def _ended(self, key: str, task: asyncio.Task[ExportResult]) -> None:
        """An export task ended: account for it and wake the loop (a slot is free)."""
        self._running.pop(key, None)
        self._wake.set()
        if task.cancelled():
            self.metrics.abandon(key)
        elif (error := task.exception()) is not None:
            self.metrics.abandon(key)
            log.error("export %s: worker task failed", key, exc_info=error)
        else:
            result = task.result()
            if result.error_type == LEASE_LOST:
                self._lost(key)
                self.metrics.abandon(key)
            else:
                self.report.results.append(result)
                self.metrics.observe_result(result)
        self._specs.pop(key, None)

    # -- leases ---------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Renew the leases of the exports in flight; cancel those lost to another worker."""
        while True:
            await self.clock.sleep(self.settings.heartbeat)
            keys = list(self._running)
            if not keys:
                continue
            try:
                held = await self.store.renew(
                    self.owner, keys, now=self._now(), lease_seconds=self.lease_seconds
                )
            except Exception as exc:
                log.warning("worker %s: cannot renew leases (%s)", self.settings.id, exc)
                continue
            for key in keys:
                task = self._running.get(key)
                if key not in held and task is not None and not task.done():
                    self._lost(key)
                    task.cancel()

    def _lost(self, key: str) -> None:
        if key not in self.report.lost:
            self.report.lost.append(key)
        self._state(key, "lease lost", detail="another worker took it over", level=logging.WARNING)

    async def _drain(self) -> None:
        """After a signal: let the exports in flight finish within the grace period, cancel
        the rest, and hand their rows back at once."""
        self.health.draining = True
        tasks = list(self._running.values())
        keys = list(self._running)
        if not tasks:
            return
        self.report.drain = await self.shutdown.drain(tasks)
        await _release(self.store, self.owner, keys)
        drain = self.report.drain
        log.warning(
            "worker %s: drained: %d export(s) finished, %d cut short and released%s",
            self.settings.id,
            drain.finished,
            drain.cancelled,
            " (second signal)" if drain.forced else "",
        )

    # -- events and logs ------------------------------------------------------------------

    def _on_event(self, event: EngineEvent) -> None:
        self.metrics.observe(event)
        self._log_event(event)

    def _describe(self, key: str) -> tuple[str | None, str | None]:
        spec = self._specs.get(key)
        if spec is None:
            return None, None
        try:
            account, stream = resolve_stream(self.config, spec)
        except ConfigError:
            return spec.account, spec.stream
        return account.name, stream

    def _state(
        self, key: str, state: str, *, detail: str | None = None, level: int = logging.INFO
    ) -> None:
        account, stream = self._describe(key)
        log_state_change(
            key, state, account=account, stream=stream, detail=detail, key=key, level=level
        )

    def _now(self) -> float:
        return self.clock.wall().timestamp()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _release(store: StateStore, owner: str, keys: Collection[str]) -> None:
    """Hand ``keys`` back; a store outage only delays the takeover until the leases expire."""
    try:
        await asyncio.shield(store.release(owner, keys))
    except Exception as exc:
        log.warning("cannot release %d lease(s) (%s); they expire on their own", len(keys), exc)


__all__ = ["LEASE_LOST", "Worker", "WorkerReport"]
