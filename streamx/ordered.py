"""Blocks worked on out of order (threads, a helper process), written strictly in order.

The fast paths (:mod:`streamx.columnar.ingest`, :mod:`streamx.offload`) start each block's work
as soon as it is cut and write its result from a background task that first waits for the
block before it, so the event loop goes on reading and cutting while earlier blocks are worked
on and written. At most ``limit`` blocks are between being started and being written (that
bounds memory). :meth:`OrderedWrites.settle` waits for every write (a checkpoint must see every
counted row written); :meth:`OrderedWrites.abandon` cancels them (a failed file must not write
after its error has left).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class OrderedWrites:
    """A bounded chain of background writes, in the order their blocks were added."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        #: Blocks between being started and being written, at most (may change between adds).
        self.limit = limit
        self._writes: deque[asyncio.Task[None]] = deque()

    def __len__(self) -> int:
        return len(self._writes)

    async def add(
        self, start: Callable[[], Awaitable[T]], write: Callable[[T], Awaitable[None]]
    ) -> None:
        """Wait for room, ``start()`` the block's work, and write its result after the block
        before it has been written (raises an earlier write's error)."""
        await self._make_room()
        work = asyncio.ensure_future(start())
        work.add_done_callback(_retrieve)
        previous = self._writes[-1] if self._writes else None
        task = asyncio.create_task(_write_after(previous, work, write))
        task.add_done_callback(_retrieve)
        self._writes.append(task)

    async def settle(self) -> None:
        """Wait until every block added so far is written; raises a write's error."""
        while self._writes:
            await self._writes.popleft()

    async def abandon(self) -> None:
        """Cancel the writes still pending (their blocks are not written)."""
        writes, self._writes = list(self._writes), deque()
        for task in writes:
            task.cancel()
        await asyncio.gather(*writes, return_exceptions=True)

    async def _make_room(self) -> None:
        writes = self._writes
        while writes and (writes[0].done() or len(writes) >= self.limit):
            await writes.popleft()


async def _write_after(
    previous: asyncio.Task[None] | None,
    work: asyncio.Future[T],
    write: Callable[[T], Awaitable[None]],
) -> None:
    if previous is not None:
        await previous
    await write(await work)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a failure as seen when an earlier error ended the file first."""
    if not task.cancelled():
        task.exception()
