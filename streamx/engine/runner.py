"""The export engine: many exports at once, each start -> poll -> transfer -> publish.

Every export is one asyncio task running :class:`~streamx.engine.export.ExportRun`:

1. **start** the vendor job (retried: transient errors only, full-jitter backoff,
   ``Retry-After`` honoured, bounded by attempts, the export's deadline and the account's shared
   retry budget, so a vendor outage does not turn into a retry storm);
2. **poll** it (:func:`~streamx.engine.poll.wait_for_job`): unbounded concurrency, growing
   interval, per-export deadline;
3. **transfer** under two semaphores, the engine's (``concurrency``) and the account's
   (``max_transfers``; Symplify defaults to 1 per customer), so memory and vendor load are
   bounded by the transfers in flight, not by the number of exports: the result files are
   streamed in order through :func:`~streamx.pipeline.ingest_file` into **one**
   :class:`~streamx.publish.Publisher` per export;
4. **commit**: the manifest is written last. When the vendor reports a row count (Cordial),
   rows read must equal it or nothing is published.

An export that fails becomes a ``failed`` :class:`ExportResult` (with the redacted error); it
never raises out of :meth:`Engine.run` (unless ``raise_on_error``) and never disturbs the other
exports. Cancelling :meth:`Engine.run` cancels every export; their publishers abort, so no
manifest and no part becomes visible.

With a ``store`` (:mod:`streamx.state`), each export is a row keyed by the spec's name: its
remote id, checkpoints, published manifest and failure are recorded, a rerun resumes what a
killed process left (without starting its vendor job twice) and skips what is done.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from types import TracebackType

import aiohttp

from streamx.config import AccountConfig, Config, ExportSpec, OutputConfig, resolve_stream
from streamx.durable.tracker import DurableOptions, ExportTracker
from streamx.engine.clock import Clock, SystemClock
from streamx.engine.export import (
    AccountState,
    EngineEvent,
    ExportResult,
    ExportRun,
    OnEvent,
    Shared,
    log,
)
from streamx.engine.poll import PollSchedule
from streamx.engine.retry import RetryBudget
from streamx.exceptions import ConfigError
from streamx.landing import LandingZone
from streamx.publish import OutputOptions
from streamx.sinks import registry
from streamx.sinks.base import Sink
from streamx.sinks.local import LocalSink
from streamx.sources.http import make_session
from streamx.state.base import StateStore
from streamx.state.registry import spool_dir
from streamx.vendors.base import ClientSettings
from streamx.vendors.registry import make_client, max_transfers


def open_sink(output: OutputConfig) -> Sink:
    """The sink ``[output]`` describes: its ``url`` through the sink registry (local, S3,
    SFTP) with its options, else the local directory ``dir``."""
    if output.url is None:
        return LocalSink(output.dir)
    return registry.open_sink(output.url, **output.options)


class Engine:
    """Runs exports concurrently. Use as ``async with Engine(config) as engine:``.

    ``sink`` (default: the ``[output]`` directory), ``session`` (default: one made with
    :func:`~streamx.sources.http.make_session`), ``clock`` and ``rng`` are injectable; what the
    engine creates itself it also closes. ``landing_zones`` overrides the landing zone of
    accounts by name. ``on_event`` receives an :class:`EngineEvent` for every step.
    ``store`` (an open :class:`~streamx.state.base.StateStore`) makes exports durable and
    resumable (see the module docstring); ``durable`` says how (lease owner, spool directory,
    record-id index, checkpoint interval; default: from ``[state]``).
    """

    def __init__(
        self,
        config: Config,
        *,
        sink: Sink | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        landing_zones: dict[str, LandingZone] | None = None,
        on_event: OnEvent | None = None,
        store: StateStore | None = None,
        durable: DurableOptions | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.durable = durable or DurableOptions(
            spool_dir=spool_dir(config), checkpoint_seconds=config.state.checkpoint_seconds
        )
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.on_event = on_event
        self._sink, self._own_sink = sink, sink is None
        self._session, self._own_session = session, session is None
        self._landing = dict(landing_zones or {})
        self._accounts: dict[str, AccountState] = {}
        self._shared: Shared | None = None

    async def __aenter__(self) -> Engine:
        settings = self.config.engine
        if self._session is None:
            self._session = make_session(
                limit=settings.connections,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                ca_file=settings.ca_file,
            )
        if self._sink is None:
            self._sink = open_sink(self.config.output)
        out = self.config.output
        self._shared = Shared(
            config=self.config,
            clock=self.clock,
            rng=self.rng,
            sink=self._sink,
            output=OutputOptions(
                format=out.format,
                compression=out.compression,
                max_records_per_part=out.records_per_part,
                max_bytes_per_part=out.bytes_per_part,
                compression_level=out.compression_level,
            ),
            schedule=PollSchedule(
                settings.poll_interval, settings.poll_backoff, settings.poll_interval_max
            ),
            transfers=asyncio.Semaphore(settings.concurrency),
            emit=self._emit,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        states, self._accounts, self._shared = list(self._accounts.values()), {}, None
        for state in states:
            await state.client.close()
        if self._own_sink and self._sink is not None:
            await self._sink.close()
            self._sink = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def sink(self) -> Sink:
        """Where exports are published (available inside ``async with``)."""
        return self._started().sink

    async def run(
        self, specs: Sequence[ExportSpec] | None = None, *, raise_on_error: bool = False
    ) -> list[ExportResult]:
        """Run ``specs`` (default: every export in the config) concurrently; results in order.

        Every spec is checked before anything starts (ConfigError). A failed export is a
        ``failed`` result, unless ``raise_on_error``: then the first failure's error is raised
        after all exports have ended.
        """
        chosen = list(self.config.exports if specs is None else specs)
        names = [spec.name for spec in chosen]
        if len(set(names)) != len(names):
            raise ConfigError("exports in one run need distinct names")
        for spec in chosen:
            self.check(spec)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.run_export(spec)) for spec in chosen]
        results = [task.result() for task in tasks]
        if raise_on_error:
            for result in results:
                if result.exception is not None:
                    raise result.exception
        return results

    def check(self, spec: ExportSpec) -> str:
        """Validate ``spec`` against its account and vendor; returns the full stream name.

        Raises ConfigError when the spec cannot run (unknown account or stream, a period
        Symplify does not know, a Cordial export without its timeframe…).
        """
        account, stream = resolve_stream(self.config, spec)
        self._account(account).client.check(spec, stream)
        return stream

    async def run_export(self, spec: ExportSpec) -> ExportResult:
        """Run one export to its end; failures become a ``failed`` result.

        With a store, the export's row is ``spec.name`` (created if missing); a row already
        ``done`` gives a ``skipped`` result.
        """
        stream = self.check(spec)
        state = self._accounts[spec.account]
        shared = self._started()
        tracker = None
        if self.store is not None:
            tracker = ExportTracker(self.store, spec, self.durable, shared.clock)
        return await ExportRun(shared, state, spec, stream, tracker).execute()

    # -- shared state ---------------------------------------------------------------------

    def _started(self) -> Shared:
        if self._shared is None:
            raise RuntimeError("use the Engine inside 'async with'")
        return self._shared

    def _account(self, account: AccountConfig) -> AccountState:
        """The account's client, transfer slots and retry budget (made on first use)."""
        state = self._accounts.get(account.name)
        if state is not None:
            return state
        shared, settings = self._started(), self.config.engine
        assert self._session is not None
        client = make_client(
            account,
            self._session,
            shared.clock,
            ClientSettings(
                settings.retry_after_cap, settings.connect_timeout, settings.read_timeout
            ),
            self._landing.get(account.name),
        )
        budget = RetryBudget(
            clock=shared.clock,
            capacity=settings.retry_budget,
            ratio=settings.retry_budget_ratio,
            min_per_second=settings.retry_budget_per_second,
        )
        state = AccountState(account, client, asyncio.Semaphore(max_transfers(account)), budget)
        self._accounts[account.name] = state
        return state

    def _emit(self, event: EngineEvent) -> None:
        quiet = ("status", "progress")
        level = logging.DEBUG if event.kind in quiet else logging.INFO
        level = logging.WARNING if event.kind == "failed" else level
        log.log(level, "export %s: %s %s", event.export, event.kind, event.detail or "")
        if self.on_event is not None:
            self.on_event(event)


__all__ = [
    "DurableOptions",
    "Engine",
    "EngineEvent",
    "ExportResult",
    "ExportSpec",
    "OnEvent",
    "open_sink",
]
