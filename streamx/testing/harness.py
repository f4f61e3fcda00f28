"""Both simulators, an engine configuration pointing at them, and an exactness check.

Used by the engine's end-to-end tests and meant for benchmarks: :class:`SimHarness` starts a
:class:`SymplifySim` and a :class:`CordialSim` on loopback, both fed by one
:class:`~streamx.testing.seeded.SeededProvider`, with a local landing zone for Cordial. It
builds a :class:`~streamx.config.Config` with one account per simulator (``sym``, ``cor``),
runs exports through a real :class:`~streamx.engine.runner.Engine` (recording every sleep the
engine asked for, and what the result object store was asked for and sent), and checks a
published export record for record against :func:`~streamx.testing.seeded.expected_records`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from streamx.config import (
    AccountConfig,
    Config,
    EngineConfig,
    ExportSpec,
    LandingConfig,
    OutputConfig,
    resolve_stream,
)
from streamx.durable.tracker import spec_from_record
from streamx.engine.clock import SystemClock
from streamx.engine.runner import Engine, ExportResult, OnEvent
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.records import STREAMS
from streamx.state.base import ExportState
from streamx.testing.cordial_sim import CordialSim, CordialTimings
from streamx.testing.faults import FaultPlan
from streamx.testing.objectstore import ObjectStore
from streamx.testing.seeded import SeededProvider, expected_records, published_records
from streamx.testing.symplify_sim import SymplifySim, SymplifyTimings
from streamx.vendors.cordial import FileChoices, column_labels, export_request

#: Engine settings that make tests fast: short polls and backoff, short read timeouts.
FAST_ENGINE = EngineConfig(
    poll_interval=0.01,
    poll_interval_max=0.05,
    backoff_base=0.01,
    backoff_cap=0.05,
    retry_after_cap=3.0,
    deadline=60.0,
    read_timeout=0.5,
    connect_timeout=2.0,
    max_attempts=6,
)
SYMPLIFY_TIMINGS = SymplifyTimings(pending_s=0.01, in_progress_s=0.02)
CORDIAL_TIMINGS = CordialTimings(scheduled_s=0.01, pending_s=0.01, processing_s=0.02)
#: The timeframe of the tests' activity exports (the seeded rows fall inside it).
ACTIVITY_START, ACTIVITY_END = "2026-10-31T00:00:00.000Z", "2026-11-01T00:00:00.000Z"


class RecordingClock(SystemClock):
    """The real clock, remembering every sleep asked for (to check Retry-After was honoured)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


class CountingStore(ObjectStore):
    """The object store, recording each GET's ``Range`` header and the body bytes it sent."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.ranges: list[str | None] = []
        self.sent: list[int] = []

    def _app(self) -> web.Application:
        app = super()._app()

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.ranges.append(request.headers.get("Range"))
            response = await handler(request)
            self.sent.append(response.body_length)
            return response

        app.middlewares.append(record)
        return app


class SimHarness:
    """Use as ``async with SimHarness() as sims:``; see the module docstring."""

    def __init__(
        self,
        provider: SeededProvider | None = None,
        *,
        directory: str | Path | None = None,
        customers: Sequence[str] = ("5004",),
    ) -> None:
        self.provider = provider or SeededProvider(rows=300)
        self.root = Path(directory or tempfile.mkdtemp(prefix="streamx-harness-"))
        self.out = self.root / "out"
        self.landing = self.root / "landing"
        self.faults = FaultPlan()
        tokens = {customer: f"token-{customer}" for customer in customers}
        self.store = CountingStore(faults=self.faults)
        self.symplify = SymplifySim(
            provider=self.provider,
            tokens=tokens,
            timings=SYMPLIFY_TIMINGS,
            faults=self.faults,
            store=self.store,
        )
        self.cordial = CordialSim(
            provider=self.provider,
            timings=CORDIAL_TIMINGS,
            faults=self.faults,
            local_root=self.landing,
        )
        self.clock = RecordingClock()

    async def __aenter__(self) -> SimHarness:
        await self.store.start()
        await self.symplify.start()
        await self.cordial.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cordial.stop()
        await self.symplify.stop()
        await self.store.stop()

    # -- configuration --------------------------------------------------------------------

    def config(
        self,
        *,
        engine: EngineConfig = FAST_ENGINE,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Config:
        """Accounts ``sym`` (the first customer; ``sym-<id>`` for each further one) and ``cor``;
        ``accounts`` overrides fields of those accounts, by account name."""
        built: dict[str, AccountConfig] = {}
        for index, (customer, token) in enumerate(self.symplify.tokens.items()):
            name = "sym" if index == 0 else f"sym-{customer}"
            built[name] = AccountConfig(
                name=name,
                vendor="symplify",
                secret=token,
                base_url=f"{self.symplify.base_url}/rest/{customer}",
            )
        built["cor"] = AccountConfig(
            name="cor",
            vendor="cordial",
            secret=self.cordial.api_key,
            base_url=self.cordial.base_url,
            landing=LandingConfig(type="local", dir=str(self.landing)),
            records_per_file=100,
        )
        for name, changes in (accounts or {}).items():
            built[name] = dataclasses.replace(built[name], **changes)
        return Config(accounts=built, output=OutputConfig(dir=str(self.out)), engine=engine)

    # -- running --------------------------------------------------------------------------

    async def run(
        self,
        specs: Sequence[ExportSpec],
        config: Config | None = None,
        *,
        on_event: OnEvent | None = None,
    ) -> list[ExportResult]:
        """Run ``specs`` with a fresh engine (its HTTP session counts wire bytes)."""
        config = config or self.config()
        async with Engine(config, clock=self.clock, on_event=on_event) as engine:
            return await engine.run(specs)

    def store_bytes(self) -> int:
        """Body bytes the result object store sent (an upper bound of what arrived)."""
        return sum(self.store.sent)

    # -- checking -------------------------------------------------------------------------

    def expected(self, result: ExportResult, config: Config) -> list[dict[str, Any]]:
        """The records ``result``'s export must have published."""
        spec, remote_id = result.spec, result.remote_id
        assert remote_id is not None, f"{spec.name} has no remote id: {result.error}"
        account, stream = resolve_stream(config, spec)
        ctx = ExportContext(
            source=account.vendor,
            stream=stream,
            account=account.name,
            export_id=remote_id,
            column_labels=column_labels(spec) if account.vendor == "cordial" else {},
        )
        if account.vendor == "symplify":
            customer = account.customer_id or (account.base_url or "").rstrip("/").rsplit("/")[-1]
            request = {"exportType": STREAMS[stream].vendor_export, "period": spec.period}
            return list(
                expected_records(self.provider, ctx, vendor_account=customer, request=request)
            )
        choices = FileChoices(account.records_per_file, account.compress, account.file_type)
        body = export_request(spec, stream, name="x", destination={}, choices=choices)
        return list(
            expected_records(self.provider, ctx, vendor_account=account.secret, request=body)
        )

    def published(self, result: ExportResult) -> list[dict[str, Any]]:
        """What ``result``'s manifest names, read back."""
        assert result.manifest is not None, f"{result.name} failed: {result.error}"
        return list(published_records(self.out, result.manifest))

    def assert_exact(self, result: ExportResult, config: Config | None = None) -> None:
        """The export is published and holds exactly the expected records, in order."""
        assert result.ok, f"{result.name} failed: {result.error}"
        expected = self.expected(result, config or self.config())
        published = self.published(result)
        assert len(published) == len(expected) == result.records
        assert published == expected
        assert result.rows_quarantined == 0

    def assert_row_exact(self, config: Config, row: ExportState) -> int:
        """The export a state-store ``row`` published (backfill, worker) holds exactly the
        generator's records, and its manifest adds up; returns how many records."""
        assert row.status == "done", f"{row.key}: {row.status} {row.last_error}"
        assert row.manifest_location is not None and row.remote_id is not None
        manifest = Manifest.from_json(Path(row.manifest_location).read_bytes())
        spec = spec_from_record(row.spec)
        resolve_stream(config, spec)
        result = ExportResult(name=row.key, spec=spec, status="done", remote_id=row.remote_id)
        expected = self.expected(result, config)
        published = list(published_records(self.out, manifest))
        assert len(published) == len(expected) == manifest.records, row.key
        assert published == expected, row.key
        assert manifest.rows_quarantined == 0
        assert sum(part.records for part in manifest.parts) == manifest.records
        return len(published)

    def visible_files(self) -> list[Path]:
        """Every non-hidden file under the output directory (what a reader could see)."""
        if not self.out.exists():
            return []
        return sorted(
            path for path in self.out.rglob("*") if path.is_file() and not path.name.startswith(".")
        )


__all__ = [
    "ACTIVITY_END",
    "ACTIVITY_START",
    "CORDIAL_TIMINGS",
    "FAST_ENGINE",
    "SYMPLIFY_TIMINGS",
    "CountingStore",
    "RecordingClock",
    "SimHarness",
]
