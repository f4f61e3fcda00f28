"""Injectable time for the engine: a monotonic clock, a wall clock and ``sleep``.

Backoff, deadlines, retry budgets and schedules all depend on time. Passing a :class:`Clock`
instead of calling :mod:`time`/:func:`asyncio.sleep` directly lets the tests drive hours of
retries in microseconds with :class:`FakeClock`, and lets them assert the exact delays chosen.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the engine needs from time."""

    def now(self) -> float:
        """Monotonic seconds: for durations and deadlines, never goes backwards."""
        ...

    def wall(self) -> datetime:
        """The current UTC wall-clock time (aware): for HTTP dates and timestamps."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a cancellation point, like :func:`asyncio.sleep`)."""
        ...


class SystemClock:
    """The real clocks and the real :func:`asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A testing aid: virtual time that jumps straight to the next sleeper's wake-up.

    ``now()`` starts at ``start`` and moves only when every task that is going to sleep has gone
    to sleep (like trio's autojump ``MockClock``): the earliest sleeper's wake-up time becomes
    "now" and that sleeper resumes. Concurrent sleepers therefore overlap as they would in real
    time (two tasks sleeping 5 s at t=0 leave the clock at t=5, not t=10), so time-based refills
    such as the retry budget's floor behave as in production, and no test waits for real.

    "Everyone has gone to sleep" is approximated by letting the event loop run ``settle`` rounds
    before each jump; tasks blocked on real I/O meanwhile simply see time jump, which is what a
    slow network looks like anyway. Every requested delay is appended to :attr:`sleeps`.
    """

    def __init__(
        self, start: float = 0.0, *, wall_start: datetime | None = None, settle: int = 20
    ) -> None:
        self._now = start
        self._start = start
        self._wall_start = wall_start or datetime(2026, 1, 1, tzinfo=UTC)
        self._settle = settle
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._advancer: asyncio.Task[None] | None = None
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        if seconds == 0:
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), wake))
        if self._advancer is None or self._advancer.done():
            self._advancer = asyncio.get_running_loop().create_task(self._advance_loop())
        await wake

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (no sleep recorded), waking sleepers now due."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _wake_at, _seq, wake = heapq.heappop(self._sleepers)
            if not wake.done():
                wake.set_result(None)

    @property
    def slept(self) -> float:
        """Total of all recorded sleeps."""
        return sum(self.sleeps)

    async def _advance_loop(self) -> None:
        while self._sleepers:
            for _ in range(self._settle):
                await asyncio.sleep(0)
            if not self._sleepers:
                return
            wake_at, _seq, wake = heapq.heappop(self._sleepers)
            if wake.done():  # cancelled sleeper: it must not move the clock
                continue
            self._now = max(self._now, wake_at)
            wake.set_result(None)


__all__ = ["Clock", "FakeClock", "SystemClock"]
