"""Graceful shutdown: the first SIGTERM/SIGINT drains, a second one stops at once.

Why two stages: an orchestrator (systemd, Kubernetes) sends SIGTERM and waits a grace period
before SIGKILL. Exports in flight should use that time to finish (or reach a checkpoint), and
no new export should start, so the first signal sets :attr:`Shutdown.draining` (the worker loop
stops claiming work) and :meth:`Shutdown.drain` waits for the in-flight tasks for at most
``grace`` seconds, then cancels what is left. An operator who presses Ctrl-C twice wants out
now: the second signal cancels the in-flight tasks at once. Cancellation runs each task's
``finally``/``async with`` exits (publishers abort their uploads, the store keeps the last
checkpoint), so the state stays consistent and the next start resumes. After the second
signal the default handlers are restored, so a third signal kills the process even if some
cleanup hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from streamx.engine.clock import Clock, SystemClock

log = logging.getLogger("streamx.worker")
SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class DrainResult:
    """How a drain ended: tasks that finished on their own, and tasks that were cancelled
    (``forced``: because of a second signal rather than the grace period running out)."""

    finished: int
    cancelled: int
    forced: bool

    @property
    def clean(self) -> bool:
        """Every in-flight task finished within the grace period."""
        return self.cancelled == 0


class Shutdown:
    """Two-stage shutdown (see the module docstring). ``clock`` times the grace period."""

    def __init__(self, *, grace: float = 30.0, clock: Clock | None = None) -> None:
        if grace < 0:
            raise ValueError("grace must be >= 0")
        self.grace = grace
        self.clock: Clock = clock or SystemClock()
        self.draining = asyncio.Event()
        self.urgent = asyncio.Event()
        self.signals_received = 0
        self._installed: list[signal.Signals] = []

    def request(self, signum: int | None = None) -> None:
        """What a signal does (also callable directly): first call drains, second forces."""
        self.signals_received += 1
        name = signal.Signals(signum).name if signum is not None else "request"
        if not self.draining.is_set():
            log.warning("%s: draining (no new work; %.0f s grace)", name, self.grace)
            self.draining.set()
            return
        if not self.urgent.is_set():
            log.warning("%s again: cancelling exports in flight now", name)
            self.urgent.set()
            self.uninstall()  # a third signal gets the default behaviour (terminate)

    def install(self, signals: Collection[signal.Signals] = SIGNALS) -> None:
        """Handle ``signals`` on the running loop (main thread only)."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self.request, int(sig))
            self._installed.append(sig)

    def uninstall(self) -> None:
        """Give the signals back their default handlers."""
        loop = asyncio.get_running_loop()
        while self._installed:
            loop.remove_signal_handler(self._installed.pop())

    @contextlib.contextmanager
    def installed(self, signals: Collection[signal.Signals] = SIGNALS) -> Iterator[Shutdown]:
        """``with shutdown.installed():`` handle the signals inside the block only."""
        self.install(signals)
        try:
            yield self
        finally:
            self.uninstall()

    async def drain(self, tasks: Collection[asyncio.Task[Any]]) -> DrainResult:
        """Wait for ``tasks`` until they finish, the grace period ends or a second signal
        arrives; cancel the rest and wait for their cleanup. Never raises the tasks' errors."""
        pending = {task for task in tasks if not task.done()}
        forced = False
        if pending and not self.urgent.is_set():
            forced = await self._wait(pending)
        elif pending:
            forced = True
        left = {task for task in pending if not task.done()}
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
        return DrainResult(finished=len(tasks) - len(left), cancelled=len(left), forced=forced)

    async def _wait(self, pending: set[asyncio.Task[Any]]) -> bool:
        """Wait for all of ``pending``, a timeout or ``urgent``; True when ``urgent`` won."""
        everything = asyncio.ensure_future(asyncio.wait(pending))
        urgent = asyncio.ensure_future(self.urgent.wait())
        timeout = asyncio.ensure_future(self.clock.sleep(self.grace))
        waiters: list[asyncio.Future[Any]] = [everything, urgent, timeout]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return self.urgent.is_set() and any(not task.done() for task in pending)


__all__ = ["SIGNALS", "DrainResult", "Shutdown"]
