"""A second core for Python-bound block work: one spawned helper process, and a worker thread.

Parsing, normalizing and encoding a JSON line is Python, which holds the GIL: two threads in one
process share one core's worth of it. The JSON lines path (:mod:`streamx.offload`) therefore
sends blocks of lines to one helper process while it has fewer than :data:`HELPER_QUEUE`
waiting, and otherwise to one worker thread of the event loop's own process, and writes the
results in input order (:class:`~streamx.ordered.OrderedWrites`).

(CSV blocks stay in the event loop's process: tried in the helper, the columnar path gained
nothing, since the pipe round trip of each block and its encoded result cost as much CPU as the
second core saved; see benchmarks/RESULTS.md.)

When it is used: :func:`enable` was called (the command line does; the helper is a *spawned*
process, which imports the program's ``__main__`` module again, so a library user's script
must guard its entry point, as :mod:`multiprocessing` requires), the machine has two cores or
more, and ``STREAMX_OFFLOAD`` is not ``0`` (``1`` enables it without :func:`enable`).

The helper ignores SIGINT and SIGTERM (a drain is its parent's job) and exits with its parent.
If it dies, the block's file fails with a :class:`~streamx.exceptions.TransientError` and the
next block starts a new helper.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final, TypeVar

from streamx.allocators import calm_collector, pin_mmap_threshold
from streamx.exceptions import TransientError

T = TypeVar("T")

#: Environment switch: ``0`` keeps all block work in the event loop's process, ``1`` enables it.
ENV_SWITCH: Final = "STREAMX_OFFLOAD"
#: Blocks waiting in the helper process before the next one goes to a thread instead.
HELPER_QUEUE = 2
#: Blocks worked on in threads at once, at most (more would only wait for the GIL).
THREADS = 1

_enabled = False
_pool: ProcessPoolExecutor | None = None
_helper_waiting = 0
_threads_working = 0


def enable() -> None:
    """Allow the helper process (see the module doc for what a program must do first)."""
    global _enabled
    _enabled = True


def helper_available() -> bool:
    """Enabled (by :func:`enable` or ``STREAMX_OFFLOAD=1``), not switched off
    (``STREAMX_OFFLOAD=0``), and two cores or more."""
    switch = os.environ.get(ENV_SWITCH, "").strip()
    if switch == "0" or not (_enabled or switch == "1"):
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores >= 2


def start_block(work: Callable[..., T], *args: Any, helper: bool = True) -> Awaitable[T]:
    """Run ``work(*args)`` in the helper while it has room, else in one worker thread, else
    queue it in the helper; ``helper=False``: always the thread (a small file's first blocks
    never pay the helper's start-up)."""
    if helper and (_helper_waiting < HELPER_QUEUE or _threads_working >= THREADS):
        return _in_helper(work, *args)
    return _in_thread(work, *args)


async def _in_thread(work: Callable[..., T], *args: Any) -> T:
    global _threads_working
    _threads_working += 1
    try:
        return await asyncio.to_thread(work, *args)
    finally:
        _threads_working -= 1


async def _in_helper(work: Callable[..., T], *args: Any) -> T:
    global _pool, _helper_waiting
    pool = _helper()
    _helper_waiting += 1
    try:
        future = asyncio.get_running_loop().run_in_executor(pool, work, *args)
        future.add_done_callback(_seen)
        # Shielded: a cancelled file leaves the block to finish in the helper rather than
        # cancel its pool future (a pool that then breaks fails on cancelled futures in
        # CPython 3.11's executor thread: InvalidStateError).
        return await asyncio.shield(future)
    except BrokenProcessPool as exc:
        if _pool is pool:
            _pool = None  # the next block starts a new helper
        raise TransientError("the JSON lines helper process died") from exc
    finally:
        _helper_waiting -= 1


def _helper() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        context = multiprocessing.get_context("spawn")  # fork is unsafe with threads running
        _pool = ProcessPoolExecutor(1, mp_context=context, initializer=_start_helper)
    return _pool


def _start_helper() -> None:
    """The helper's lifetime is its parent's: Ctrl-C and a drain's SIGTERM are for the parent
    (the helper exits when the parent closes its pipe, or dies). Its allocator settings are the
    parent's (Arrow's pool comes with the environment)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pin_mmap_threshold()
    calm_collector()


def _seen(future: asyncio.Future[Any]) -> None:
    """Mark a helper block's failure as seen when nobody waits for it any more."""
    if not future.cancelled():
        future.exception()
