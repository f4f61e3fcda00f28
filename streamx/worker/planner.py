"""A worker's view of its schedules: which occurrences to plan now, and how long to sleep.

The planner is the stateful half of :mod:`streamx.worker.schedule`: it remembers the last
occurrence it planned per export (seeded at start-up from the state store's keys, so a restart
catches up instead of starting over), applies this worker's jitter, and reads time only from
the injected :class:`~streamx.engine.clock.Clock`, so tests drive days of schedule, DST
changes included, through :class:`~streamx.engine.clock.FakeClock` without sleeping.

Planning is not starting: the worker loop inserts each returned occurrence's row into the store
(:meth:`~streamx.state.base.StateStore.add` ignores keys it already has) and then claims rows,
so an occurrence planned by several workers, or twice by one, runs once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from streamx.engine.clock import Clock
from streamx.worker.schedule import (
    Occurrence,
    Schedule,
    due,
    jitter_offset,
    next_after,
    parse_occurrence_key,
)


class Planner:
    """Due occurrences of ``schedules`` for worker ``worker_id`` (see the module docstring).

    ``last_planned`` maps export names to the last occurrence already planned (see
    :meth:`seed`). An occurrence is due for this worker once ``now >= occurrence + offset``,
    where the offset is :func:`~streamx.worker.schedule.jitter_offset`.
    """

    def __init__(
        self,
        schedules: Sequence[Schedule],
        *,
        worker_id: str,
        clock: Clock,
        last_planned: Mapping[str, datetime] | None = None,
    ) -> None:
        names = [schedule.export for schedule in schedules]
        if len(set(names)) != len(names):
            raise ValueError("one schedule per export")
        self.schedules = tuple(schedules)
        self.worker_id = worker_id
        self.clock = clock
        self.last_planned: dict[str, datetime] = dict(last_planned or {})
        self.offsets = {
            s.export: timedelta(seconds=jitter_offset(s.export, worker_id, s.jitter))
            for s in self.schedules
        }

    def seed(self, keys: Iterable[str]) -> None:
        """Learn the newest planned occurrence per export from state-store keys (keys that
        are not occurrence keys, or of exports without a schedule, are ignored)."""
        scheduled = set(self.offsets)
        for key in keys:
            try:
                occurrence = parse_occurrence_key(key)
            except ValueError:
                continue
            if occurrence.export not in scheduled:
                continue
            known = self.last_planned.get(occurrence.export)
            if known is None or occurrence.at > known:
                self.last_planned[occurrence.export] = occurrence.at

    def plan(self) -> list[Occurrence]:
        """Every occurrence due now and not planned before, oldest first; marks them planned."""
        now = self.clock.wall()
        planned: list[Occurrence] = []
        for schedule in self.schedules:
            name = schedule.export
            for at in due(schedule, self.last_planned.get(name), now - self.offsets[name]):
                planned.append(Occurrence(name, at))
                self.last_planned[name] = at
        return sorted(planned, key=lambda item: (item.at, item.export))

    def seconds_until_next(self) -> float:
        """Seconds until the next occurrence becomes due for this worker (0 if one is due)."""
        now = self.clock.wall()
        waits = [self._next_due(schedule, now) - now for schedule in self.schedules]
        if not waits:
            return float("inf")
        return max(0.0, min(waits).total_seconds())

    async def wait(self, cap: float | None = None) -> None:
        """Sleep (on the injected clock) until the next occurrence is due, at most ``cap``."""
        delay = self.seconds_until_next()
        await self.clock.sleep(delay if cap is None else min(delay, cap))

    def _next_due(self, schedule: Schedule, now: datetime) -> datetime:
        offset = self.offsets[schedule.export]
        last = self.last_planned.get(schedule.export)
        shifted_now = now - offset
        if last is None or due(schedule, last, shifted_now):
            return now  # something is due already
        return next_after(schedule, max(last, shifted_now)) + offset


__all__ = ["Planner"]
