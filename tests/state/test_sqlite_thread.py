"""SQLiteThread: one connection, owned by one thread, for the state store and the dedupe index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from streamx.state.sqlite_thread import SQLiteThread, immediate


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    return conn


@pytest.mark.asyncio
async def test_calls_run_on_the_connection_s_own_thread_and_nowhere_else(tmp_path: Path) -> None:
    db = SQLiteThread("Thing", "test-sqlite")
    await db.open(lambda: _connect(tmp_path / "a.db"))
    try:

        def insert(n: int) -> int:
            conn = db.connection()
            with immediate(conn):
                conn.execute("INSERT INTO t VALUES (?)", (n,))
            return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

        assert await db.call(insert, 1) == 1
        assert await db.call(insert, 2) == 2
        with pytest.raises(RuntimeError, match="Thing connection used outside its thread"):
            db.connection()  # the event loop's thread
        with pytest.raises(RuntimeError, match="Thing is already open"):
            await db.open(lambda: _connect(tmp_path / "b.db"))
    finally:
        await db.close()
    with pytest.raises(RuntimeError, match="use the Thing inside 'async with'"):
        await db.call(lambda: None)
    await db.close()  # idempotent


@pytest.mark.asyncio
async def test_a_failed_open_leaves_it_closed_and_reusable(tmp_path: Path) -> None:
    db = SQLiteThread("Thing", "test-sqlite")

    def refuse() -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        await db.open(refuse)
    with pytest.raises(RuntimeError, match="inside 'async with'"):
        await db.call(lambda: None)
    await db.open(lambda: _connect(tmp_path / "c.db"))
    await db.close()


def test_immediate_rolls_back_on_error_and_commits_otherwise(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "d.db")
    with immediate(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ZeroDivisionError), immediate(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise ZeroDivisionError
    assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]
    assert not conn.in_transaction
    conn.close()
