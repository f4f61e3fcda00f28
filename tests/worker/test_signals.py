"""Graceful shutdown with real signals sent to a real child process: drain within the grace
period, cancel what is left after it, a second signal cancels at once (cleanup still runs),
a third one kills. Plus the drain logic itself on a fake clock."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from streamx.engine.clock import FakeClock
from streamx.worker.signals import DrainResult, Shutdown

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from streamx.worker.signals import Shutdown

    async def work(name, seconds, stubborn):
        try:
            await asyncio.sleep(seconds)
            print(name, "finished", flush=True)
        except asyncio.CancelledError:
            print(name, "checkpointed", flush=True)  # cleanup runs on cancellation
            if not stubborn:
                raise
            print("IGNORING CANCEL", flush=True)
            await asyncio.sleep(3600)

    async def main(grace, stubborn, durations):
        shutdown = Shutdown(grace=grace)
        with shutdown.installed():
            tasks = [
                asyncio.create_task(work(f"w{i}", float(d), stubborn))
                for i, d in enumerate(durations)
            ]
            print("READY", flush=True)
            await shutdown.draining.wait()
            print("DRAINING", flush=True)
            result = await shutdown.drain(tasks)
        print(f"RESULT {result.finished} {result.cancelled} {result.forced}", flush=True)
        return 0

    sys.exit(asyncio.run(main(float(sys.argv[1]), sys.argv[2] == "stubborn", sys.argv[3:])))
    """
)


class Child:
    """The child process; a thread collects its output lines so that waiting for one can give
    up after a deadline instead of hanging (a buffered readline hides lines from select)."""

    def __init__(self, grace: float, *durations: float, stubborn: bool = False) -> None:
        args = [str(grace), "stubborn" if stubborn else "plain", *map(str, durations)]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.strip())
        self._queue.put(None)

    def until(self, marker: str, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(marker) for line in self.lines):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} in time; got {self.lines}") from None
            if line is None:
                raise AssertionError(f"child ended before {marker!r}: {self.lines}")
            self.lines.append(line)
        return self.lines

    def send(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def finish(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def spawn(children: list[Child], *args: float, stubborn: bool = False) -> Child:
    child = Child(*args, stubborn=stubborn)
    children.append(child)
    child.until("READY")
    return child


def test_sigterm_lets_work_in_flight_finish_within_the_grace_period(children: list[Child]) -> None:
    child = spawn(children, 60, 0.3, 0.6)
    child.send(signal.SIGTERM)
    assert child.finish() == 0
    assert child.lines[-3:] == ["w0 finished", "w1 finished", "RESULT 2 0 False"]


def test_work_still_running_after_the_grace_period_is_cancelled(children: list[Child]) -> None:
    child = spawn(children, 0.5, 0.05, 3600)
    child.send(signal.SIGINT)
    assert child.finish() == 0
    assert "w0 finished" in child.lines and "w1 checkpointed" in child.lines
    assert child.lines[-1] == "RESULT 1 1 False"


def test_a_second_signal_cancels_at_once_and_cleanup_still_runs(children: list[Child]) -> None:
    child = spawn(children, 3600, 3600, 3600)
    child.send(signal.SIGTERM)
    child.until("DRAINING")
    child.send(signal.SIGINT)
    assert child.finish(timeout=30) == 0  # long before the hour of grace
    assert sorted(child.lines[-3:-1]) == ["w0 checkpointed", "w1 checkpointed"]
    assert child.lines[-1] == "RESULT 0 2 True"


def test_a_third_signal_kills_a_child_whose_cleanup_hangs(children: list[Child]) -> None:
    child = spawn(children, 3600, 3600, stubborn=True)
    child.send(signal.SIGTERM)
    child.until("DRAINING")
    child.send(signal.SIGTERM)
    child.until("IGNORING CANCEL")
    child.send(signal.SIGTERM)
    assert child.finish() == -signal.SIGTERM


async def _sleeper(seconds: float, clock: FakeClock) -> str:
    await clock.sleep(seconds)
    return "done"


@pytest.mark.asyncio
async def test_drain_on_a_fake_clock_waits_exactly_the_grace_period() -> None:
    clock = FakeClock()
    shutdown = Shutdown(grace=30, clock=clock)
    quick = asyncio.create_task(_sleeper(10, clock))
    slow = asyncio.create_task(_sleeper(100, clock))
    shutdown.request()
    assert shutdown.draining.is_set() and not shutdown.urgent.is_set()

    result = await shutdown.drain([quick, slow])

    assert result == DrainResult(finished=1, cancelled=1, forced=False)
    assert clock.now() == 30 and quick.result() == "done" and slow.cancelled()
    assert not result.clean


@pytest.mark.asyncio
async def test_drain_returns_as_soon_as_everything_finished() -> None:
    clock = FakeClock()
    shutdown = Shutdown(grace=300, clock=clock)
    tasks = [asyncio.create_task(_sleeper(s, clock)) for s in (1, 2, 3)]
    result = await shutdown.drain(tasks)
    assert result.clean and result.finished == 3 and clock.now() == 3
    assert await shutdown.drain([]) == DrainResult(0, 0, False)


@pytest.mark.asyncio
async def test_after_a_second_request_drain_cancels_without_waiting() -> None:
    clock = FakeClock()
    shutdown = Shutdown(grace=300, clock=clock)
    shutdown.request()
    shutdown.request()
    task = asyncio.create_task(_sleeper(50, clock))
    assert await shutdown.drain([task]) == DrainResult(0, 1, True)
    assert clock.now() == 0 and shutdown.signals_received == 2
    with pytest.raises(ValueError):
        Shutdown(grace=-1)
