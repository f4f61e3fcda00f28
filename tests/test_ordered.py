"""OrderedWrites: work finishes in any order, writes happen in the order blocks were added."""

from __future__ import annotations

import asyncio
import threading

import pytest

from streamx.ordered import OrderedWrites


def test_writes_follow_the_order_blocks_were_added_whatever_order_work_ends_in() -> None:
    async def scenario() -> list[int]:
        writes = OrderedWrites(limit=4)
        written: list[int] = []

        async def work(number: int) -> int:
            await asyncio.sleep(0.01 * (4 - number % 4))  # later blocks finish first
            return number

        async def write(number: int) -> None:
            await asyncio.sleep(0)
            written.append(number)

        for number in range(12):
            await writes.add(lambda n=number: work(n), write)  # type: ignore[misc]
        await writes.settle()
        return written

    assert asyncio.run(scenario()) == list(range(12))


def test_at_most_limit_blocks_are_started_and_unwritten() -> None:
    async def scenario() -> int:
        writes = OrderedWrites(limit=2)
        open_blocks = 0
        most = 0
        release = asyncio.Event()

        async def work() -> None:
            nonlocal open_blocks, most
            open_blocks += 1
            most = max(most, open_blocks)
            await release.wait()

        async def write(_: None) -> None:
            nonlocal open_blocks
            open_blocks -= 1

        async def feeder() -> None:
            for _ in range(6):
                await writes.add(work, write)

        task = asyncio.create_task(feeder())
        await asyncio.sleep(0.05)
        assert not task.done(), "the third block must wait for room"
        release.set()
        await task
        await writes.settle()
        return most

    assert asyncio.run(scenario()) == 2


def test_a_failed_write_is_raised_and_later_blocks_are_not_written() -> None:
    async def scenario() -> list[int]:
        writes = OrderedWrites(limit=8)
        written: list[int] = []

        async def work(number: int) -> int:
            if number == 2:
                raise RuntimeError("block 2 failed")
            return number

        async def write(number: int) -> None:
            written.append(number)

        for number in range(5):
            await writes.add(lambda n=number: work(n), write)  # type: ignore[misc]
        with pytest.raises(RuntimeError, match="block 2 failed"):
            await writes.settle()
        return written

    assert asyncio.run(scenario()) == [0, 1]


def test_abandon_cancels_pending_writes_and_nothing_is_written_afterwards() -> None:
    async def scenario() -> tuple[list[int], int]:
        writes = OrderedWrites(limit=8)
        written: list[int] = []
        gate = threading.Event()

        def slow(number: int) -> int:
            gate.wait(5)
            return number

        async def write(number: int) -> None:
            written.append(number)

        for number in range(4):
            await writes.add(lambda n=number: asyncio.to_thread(slow, n), write)  # type: ignore[misc]
        await writes.abandon()
        gate.set()
        for _ in range(5):
            await asyncio.sleep(0.01)
            await asyncio.to_thread(lambda: None)
        return written, len(writes)

    assert asyncio.run(scenario()) == ([], 0)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OrderedWrites(0)
