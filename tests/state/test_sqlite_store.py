"""What only the SQLite store has: WAL, migrations, a file that survives the process, calls that
never block the event loop, and ``[state]`` configuration -> store.

The contract every backend shares runs in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from streamx.config import StateConfig, parse_config
from streamx.exceptions import ConfigError, PermanentError
from streamx.state.base import ExportState
from streamx.state.registry import open_store, spool_dir
from streamx.state.sqlite import MIGRATIONS, SQLiteStore


def row(key: str) -> ExportState:
    return ExportState(key=key, spec={"export": key, "options": {"lists": ["a", "b"]}})


@pytest.mark.asyncio
async def test_new_file_is_wal_and_migrated_once(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.sqlite"
    async with SQLiteStore(path) as store:
        assert await store.schema_version() == MIGRATIONS[-1][0]
    async with SQLiteStore(path) as store:  # reopening applies nothing twice
        assert await store.schema_version() == MIGRATIONS[-1][0]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
    finally:
        conn.close()
    assert versions == [number for number, _ in MIGRATIONS]


@pytest.mark.asyncio
async def test_a_database_from_a_newer_streamx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStore(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (999)")
    conn.commit()
    conn.close()
    with pytest.raises(PermanentError, match="newer than this streamx"):
        async with SQLiteStore(path):
            pass


@pytest.mark.asyncio
async def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PermanentError, match=str(path)):
        async with SQLiteStore(path):
            pass


@pytest.mark.asyncio
async def test_state_survives_the_process_and_is_shared_by_two_stores(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStore(path) as first, SQLiteStore(path) as second:
        assert await first.add([row("a"), row("b")], now=1.0) == 2
        await first.update("a", {"status": "started", "remote_id": "42"}, now=2.0)
        seen = await second.get("a")
        assert seen is not None and (seen.status, seen.remote_id) == ("started", "42")
    async with SQLiteStore(path) as again:
        kept = await again.get("a")
        assert kept is not None
        assert kept.spec == {"export": "a", "options": {"lists": ["a", "b"]}}
        assert kept.remote_id == "42"


@pytest.mark.asyncio
async def test_two_stores_on_one_file_never_claim_the_same_row(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    keys = [f"k{n:03d}" for n in range(120)]
    async with SQLiteStore(path) as first, SQLiteStore(path) as second:
        await first.add([row(key) for key in keys], now=1.0)

        async def claim_all(store: SQLiteStore, owner: str) -> list[str]:
            got: list[str] = []
            while batch := await store.claim(owner, now=5.0, lease_seconds=60.0, limit=7):
                got.extend(state.key for state in batch)
                await asyncio.sleep(0)
            return got

        a, b = await asyncio.gather(claim_all(first, "A"), claim_all(second, "B"))
    assert not set(a) & set(b)
    assert sorted(a + b) == keys


@pytest.mark.asyncio
async def test_a_slow_database_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """Another connection holds the write lock for a while: the store's update waits for it on
    its own thread, and the loop keeps running meanwhile."""
    path = tmp_path / "state.sqlite"
    async with SQLiteStore(path) as store:
        await store.add([row("a")], now=1.0)
        locked, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(10)
            conn.execute("COMMIT")
            conn.close()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        await asyncio.to_thread(locked.wait, 10)
        update = asyncio.create_task(store.update("a", {"status": "done"}, now=2.0))
        for _ in range(20):  # a blocked loop would not tick until the lock is released
            await asyncio.sleep(0.005)
        assert not update.done()  # still waiting for the lock, yet the loop ticked
        release.set()
        updated = await update
        holder.join()
    assert updated.status == "done"


@pytest.mark.asyncio
async def test_many_concurrent_tasks_each_see_their_own_updates(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        await store.add([row(f"k{n}") for n in range(50)], now=1.0)

        async def bump(key: str) -> int:
            for _ in range(5):
                state = await store.get(key)
                assert state is not None
                await store.update(key, {"attempts": state.attempts + 1}, now=2.0)
            final = await store.get(key)
            assert final is not None
            return final.attempts

        counts = await asyncio.gather(*(bump(f"k{n}") for n in range(50)))
    assert counts == [5] * 50


@pytest.mark.asyncio
async def test_using_a_closed_store_is_an_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite")
    with pytest.raises(RuntimeError, match="async with"):
        await store.get("a")


# --- configuration -> store --------------------------------------------------------------------


def test_state_path_defaults_next_to_the_configuration(tmp_path: Path) -> None:
    config = parse_config({"accounts": {}}, base_dir=tmp_path)
    assert config.state.path == str(tmp_path / "streamx-state.sqlite")
    assert config.state.url is None
    relative = parse_config({"state": {"path": "var/state.db"}}, base_dir=tmp_path)
    assert relative.state.path == str(tmp_path / "var" / "state.db")
    assert spool_dir(relative) == tmp_path / "var" / "state.db.d"


def test_state_url_must_be_postgres_and_hold_no_password_in_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgres"):
        parse_config({"state": {"url": "mysql://db/x"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="password"):
        parse_config({"state": {"url": "postgres://u:secret@db/x"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="path or url"):
        parse_config({"state": {"url": "postgres://db/x", "path": "a"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"state": {"pth": "a"}}, base_dir=tmp_path)
    env = {"STATE_DSN": "postgresql://u:secret@db/x"}
    config = parse_config({"state": {"url_env": "STATE_DSN"}}, base_dir=tmp_path, env=env)
    assert config.state.url == env["STATE_DSN"]
    assert "secret" not in repr(config.state)


def test_registry_maps_sqlite_and_postgres(tmp_path: Path) -> None:
    store = open_store(StateConfig(path=str(tmp_path / "s.sqlite")))
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "s.sqlite"
    postgres = open_store(StateConfig(url="postgresql://db.example/streamx"))
    assert type(postgres).__name__ == "PostgresStore"
    with pytest.raises(ConfigError):
        open_store(StateConfig(url="sqlite:///x"))
