"""One SQLite connection on a thread of its own, for asyncio code.

Why: sqlite3 calls block (disk I/O, busy waits of many seconds), so they must stay off the event
loop; and a connection may only be used by the thread that opened it. A single-thread executor
gives both: every call for the connection is queued on the one thread that owns it. The state
store (:mod:`streamx.state.sqlite`) and the dedupe index (:mod:`streamx.durable.dedupe`) both
run their connection this way.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class SQLiteThread:
    """The connection made by ``connect`` (run on the thread), and calls queued to that thread.

    ``owner`` names the object using it in errors (``"SQLiteStore"``, ``"DedupeIndex"``).
    """

    def __init__(self, owner: str, thread_name: str) -> None:
        self._owner = owner
        self._thread_name = thread_name
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._thread: int | None = None

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the thread and open the connection on it (everything is undone on failure)."""
        if self._executor is not None:
            raise RuntimeError(f"{self._owner} is already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        try:
            await self.call(self._connect, connect)
        except BaseException:
            await self.close()
            raise

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the connection's thread."""
        if self._executor is None:
            raise RuntimeError(f"use the {self._owner} inside 'async with'")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Close the connection on its thread, then let the thread go (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    def connection(self) -> sqlite3.Connection:
        """The connection, for code running on its thread (anywhere else is a bug)."""
        if self._conn is None or self._thread != threading.get_ident():
            raise RuntimeError(f"{self._owner} connection used outside its thread")
        return self._conn

    def _connect(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._conn, self._thread = connect(), threading.get_ident()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception): the write lock is
    taken at the start, so a transaction never fails half-way on a lock upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


__all__ = ["SQLiteThread", "immediate"]
