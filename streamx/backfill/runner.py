"""Running a backfill plan: rows into the store, open rows through the engine, under leases.

Why leases on one host: two ``streamx backfill`` commands may share a state file, and a worker
fleet shares a Postgres store; a lease makes sure one process runs an export at a time. The
runner claims the plan's open rows for itself (``host:pid:token``), renews the lease while the
engine works and releases it at the end, even when interrupted. A process killed with
``kill -9`` cannot release: its leases are taken back at once when the owner is a process of
this host that no longer exists, otherwise when they expire.

What runs: every row of the plan that is not ``done``, within the engine's limits (transfer
semaphores, per-account limits). ``failed`` rows run again only with ``retry_failed``: a row
whose vendor job itself failed starts a new job, any other keeps its job and checkpoint. Rows
leased by another live process are left to it and reported as busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamx.backfill.plan import Plan
from streamx.config import Config
from streamx.durable.dedupe import DedupeIndex
from streamx.durable.owners import owner_is_dead, owner_name
from streamx.durable.tracker import DurableOptions, spec_from_record, spec_record
from streamx.engine.clock import Clock, SystemClock
from streamx.engine.export import ExportResult, OnEvent
from streamx.engine.runner import Engine
from streamx.landing import LandingZone
from streamx.state.base import OPEN_STATUSES, ExportState, StateStore

log = logging.getLogger("streamx.backfill")
#: The vendor's own failure: retrying the same job cannot help, a new one is started.
JOB_FAILED = "JobFailedError"


@dataclass
class BackfillReport:
    """What one backfill run did: ``results`` of the exports it ran, and the plan's rows it
    left alone (already ``done``, ``failed`` earlier without ``retry_failed``, or ``busy``
    in another process)."""

    plan: Plan
    added: int = 0
    results: list[ExportResult] = field(default_factory=list)
    done_before: list[ExportState] = field(default_factory=list)
    failed_before: list[ExportState] = field(default_factory=list)
    busy: list[ExportState] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every planned export is published (now or before)."""
        return not self.failed_before and not self.busy and all(r.ok for r in self.results)


async def plan_rows(store: StateStore, plan: Plan, *, now: float) -> int:
    """Write the plan into the store; rows already there are left as they are."""
    rows = [ExportState(key=item.key, spec=spec_record(item.spec)) for item in plan.exports]
    return await store.add(rows, now=now)


async def retry_failed(store: StateStore, rows: Sequence[ExportState], *, now: float) -> int:
    """Reopen ``failed`` rows; returns how many."""
    count = 0
    for row in rows:
        if row.status != "failed":
            continue
        changes: dict[str, object] = {"last_error": None}
        if row.remote_id is None or row.extra.get("error_type") == JOB_FAILED:
            changes.update(status="planned", remote_id=None, checkpoint=None)
            if row.remote_id is not None:  # a job the vendor failed: never look it up again
                changes["extra"] = {k: v for k, v in row.extra.items() if k != "job"}
        else:
            changes["status"] = "started"
        await store.update(row.key, changes, now=now)
        count += 1
    return count


class BackfillRunner:
    """Runs a plan against a store (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        store: StateStore,
        *,
        spool_dir: Path,
        clock: Clock | None = None,
        on_event: OnEvent | None = None,
        owner: str | None = None,
        landing_zones: dict[str, LandingZone] | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.spool_dir = spool_dir
        self.clock: Clock = clock or SystemClock()
        self.on_event = on_event
        self.owner = owner or owner_name()
        self.lease_seconds = config.state.lease_seconds
        self.landing_zones = landing_zones
        self.announce = announce

    async def run(self, plan: Plan, *, retry: bool = False) -> BackfillReport:
        """Plan into the store, then run what is open (``retry``: failed rows too)."""
        report = BackfillReport(plan)
        report.added = await plan_rows(self.store, plan, now=self._now())
        rows = await self._rows(plan)
        if retry:
            await retry_failed(self.store, rows, now=self._now())
            rows = await self._rows(plan)
        await self._reap(rows)
        claimed = await self._claim(plan)
        by_key = {row.key: row for row in rows}
        for key in plan.keys:
            row = by_key[key]
            if row.status == "done":
                report.done_before.append(row)
            elif row.status == "failed":
                report.failed_before.append(row)
            elif key not in claimed:
                report.busy.append(row)
        if self.announce is not None:
            self.announce(
                f"backfill: running {len(claimed)} export(s); {len(report.done_before)} already "
                f"published, {len(report.failed_before)} failed earlier, {len(report.busy)} busy"
            )
        if claimed:
            try:
                report.results = await self._execute(
                    [claimed[key] for key in plan.keys if key in claimed]
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.release(self.owner, list(claimed)))
        return report

    async def _rows(self, plan: Plan) -> list[ExportState]:
        rows = []
        for key in plan.keys:
            row = await self.store.get(key)
            assert row is not None, f"planned row {key} vanished"
            rows.append(row)
        return rows

    async def _reap(self, rows: Sequence[ExportState]) -> None:
        """Take back leases of processes of this host that died (``kill -9``)."""
        for row in rows:
            owner = row.lease_owner
            if owner and owner != self.owner and owner_is_dead(owner):
                log.info("export %s: taking over from %s, which is gone", row.key, owner)
                await self.store.release(owner, [row.key])

    async def _claim(self, plan: Plan) -> dict[str, ExportState]:
        """Claim the plan's open rows; rows of other plans that came along are handed back."""
        wanted = set(plan.keys)
        open_rows = await self.store.list(OPEN_STATUSES)
        got = await self.store.claim(
            self.owner, now=self._now(), lease_seconds=self.lease_seconds, limit=len(open_rows)
        )
        foreign = [row.key for row in got if row.key not in wanted]
        if foreign:
            await self.store.release(self.owner, foreign)
        return {row.key: row for row in got if row.key in wanted}

    async def _execute(self, rows: list[ExportState]) -> list[ExportResult]:
        keys = [row.key for row in rows]
        specs = [spec_from_record(row.spec) for row in rows]
        async with DedupeIndex(self.spool_dir / "record-ids.sqlite") as index:
            durable = DurableOptions(
                owner=self.owner,
                spool_dir=self.spool_dir,
                dedupe=index,
                checkpoint_seconds=self.config.state.checkpoint_seconds,
            )
            renewing = asyncio.create_task(self._renew(keys))
            try:
                async with Engine(
                    self.config,
                    store=self.store,
                    durable=durable,
                    clock=self.clock,
                    on_event=self.on_event,
                    landing_zones=self.landing_zones,
                ) as engine:
                    return await engine.run(specs)
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing

    async def _renew(self, keys: list[str]) -> None:
        interval = self.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self.store.renew(
                    self.owner, keys, now=self._now(), lease_seconds=self.lease_seconds
                )
            except Exception:
                log.exception("cannot renew the leases; retrying in %.0f s", interval)
                continue
            lost = set(keys) - held
            if lost:
                log.warning("lost the lease on %d export(s) to another process", len(lost))
                keys = [key for key in keys if key in held]

    def _now(self) -> float:
        return self.clock.wall().timestamp()


__all__ = [
    "JOB_FAILED",
    "BackfillReport",
    "BackfillRunner",
    "plan_rows",
    "retry_failed",
]
