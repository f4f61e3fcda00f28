"""The StateStore contract (streamx/state/base.py), one suite run against every backend.

Each backend must behave identically where the contract speaks: idempotent ``add``, ``get`` /
``list`` with their ordering and filters, ``update`` of every updatable field (and nothing
else), ``KeyError`` for unknown keys, and leases: concurrent claims never share a row, an
expired lease can be taken over, ``renew`` reports what was lost, ``release`` hands work back,
and an ``update`` under a lost lease raises :class:`LeaseLostError`. The Postgres backend runs
against a real server on loopback (tests/fixtures/postgres.py).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ directory

from fixtures.postgres import PostgresInfo, shared_postgres

from streamx.state.base import (
    OPEN_STATUSES,
    UPDATABLE,
    ExportState,
    LeaseLostError,
    StateStore,
)

#: Backends under contract.
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres() -> PostgresInfo:
    return shared_postgres()


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """A factory of stores that all see the same (fresh, empty) state."""
    if request.param == "postgres":
        from streamx.state.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres").dsn
        schema = f"contract_{uuid.uuid4().hex[:12]}"
        return lambda: PostgresStore(dsn, schema=schema, max_size=8)
    from streamx.state.sqlite import SQLiteStore

    path = tmp_path / "state.db"
    return lambda: SQLiteStore(path)


@pytest_asyncio.fixture
async def store(make_store: Callable[[], StateStore]) -> AsyncIterator[StateStore]:
    async with make_store() as opened:
        yield opened


def row(key: str, **fields: Any) -> ExportState:
    return ExportState(key=key, spec={"export": key.split("@")[0], "n": [1, {"é": None}]}, **fields)


async def add_keys(store: StateStore, keys: list[str], *, now: float = 1000.0) -> None:
    assert await store.add([row(key) for key in keys], now=now) == len(keys)


# -- add / get / list -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_add_is_idempotent_and_leaves_existing_rows_untouched(store: StateStore) -> None:
    assert await store.add([row("a@1"), row("b@1")], now=10.0) == 2
    await store.update("a@1", {"status": "started", "remote_id": "r1"}, now=11.0)

    assert await store.add([row("a@1"), row("b@1"), row("c@1"), row("c@1")], now=20.0) == 1
    assert await store.add([], now=30.0) == 0

    kept = await store.get("a@1")
    assert kept is not None
    assert (kept.status, kept.remote_id, kept.created_at, kept.updated_at) == (
        "started",
        "r1",
        10.0,
        11.0,
    )
    assert [state.key for state in await store.list()] == ["a@1", "b@1", "c@1"]


@pytest.mark.asyncio
async def test_get_round_trips_a_row_and_returns_none_for_unknown_keys(store: StateStore) -> None:
    spec = {"export": "opens", "window": ["2026-01-01", "2026-01-02"], "deep": {"x": [1.5, "ü"]}}
    await store.add([ExportState(key="opens@1", spec=spec)], now=123.5)

    got = await store.get("opens@1")
    assert got == ExportState(
        key="opens@1", spec=spec, status="planned", created_at=123.5, updated_at=123.5
    )
    assert await store.get("nope") is None


@pytest.mark.asyncio
async def test_list_orders_by_created_at_then_key_and_filters(store: StateStore) -> None:
    await add_keys(store, ["m", "z"], now=200.0)
    await add_keys(store, ["y", "b"], now=100.0)
    await add_keys(store, ["a"], now=300.0)
    await store.update("b", {"status": "done"}, now=400.0)
    await store.update("z", {"status": "failed"}, now=400.0)
    await store.update("a", {"status": "transferring"}, now=400.0)

    assert [s.key for s in await store.list()] == ["b", "y", "m", "z", "a"]
    assert [s.key for s in await store.list(OPEN_STATUSES)] == ["y", "m", "a"]
    assert [s.key for s in await store.list(["done", "failed"])] == ["b", "z"]
    assert [s.key for s in await store.list(["started"])] == []


# -- update -----------------------------------------------------------------------------------

CHANGES: dict[str, Any] = {
    "status": "transferring",
    "remote_id": "job-42",
    "attempts": 3,
    "last_error": "HTTP 503 from https://api.example/v2/jobs",
    "bytes_done": 5_000_000_000,
    "parts_done": 7,
    "checkpoint": {"file": "part-2.csv.gz", "offset": 123456, "etag": '"abc"'},
    "manifest_location": "s3://bucket/out/a.manifest.json",
    "extra": {"occurrence": "2026-03-29T01:30:00Z", "worker": "w1"},
}


def test_changes_cover_every_updatable_field() -> None:
    assert set(CHANGES) == UPDATABLE


@pytest.mark.asyncio
@pytest.mark.parametrize("field", sorted(UPDATABLE))
async def test_update_changes_exactly_one_field(store: StateStore, field: str) -> None:
    await add_keys(store, ["k"], now=10.0)
    before = await store.get("k")
    assert before is not None

    after = await store.update("k", {field: CHANGES[field]}, now=20.0)

    assert getattr(after, field) == CHANGES[field]
    assert after.updated_at == 20.0
    assert after.created_at == 10.0
    for other in UPDATABLE - {field}:
        assert getattr(after, other) == getattr(before, other), other
    assert await store.get("k") == after


@pytest.mark.asyncio
async def test_update_applies_all_fields_at_once_and_can_clear_nullable_ones(
    store: StateStore,
) -> None:
    await add_keys(store, ["k"])
    updated = await store.update("k", CHANGES, now=2000.0)
    for field, value in CHANGES.items():
        assert getattr(updated, field) == value

    cleared = await store.update("k", {"checkpoint": None, "last_error": None}, now=2001.0)
    assert (cleared.checkpoint, cleared.last_error, cleared.remote_id) == (None, None, "job-42")


@pytest.mark.asyncio
@pytest.mark.parametrize("field", ["key", "spec", "lease_owner", "lease_expires", "created_at"])
async def test_update_refuses_fields_that_are_not_updatable(store: StateStore, field: str) -> None:
    await add_keys(store, ["k"])
    with pytest.raises(ValueError):
        await store.update("k", {field: "x"}, now=2000.0)
    assert await store.get("k") == row("k", created_at=1000.0, updated_at=1000.0)


@pytest.mark.asyncio
async def test_update_of_an_unknown_key_raises_key_error(store: StateStore) -> None:
    with pytest.raises(KeyError):
        await store.update("missing", {"attempts": 1}, now=1.0)
    with pytest.raises(KeyError):
        await store.update("missing", {"attempts": 1}, now=1.0, owner="w1")


# -- leases -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_claim_leases_oldest_open_rows_up_to_the_limit(store: StateStore) -> None:
    await add_keys(store, ["c", "d"], now=20.0)
    await add_keys(store, ["b", "a"], now=10.0)
    await add_keys(store, ["e"], now=30.0)
    await store.update("a", {"status": "done"}, now=31.0)

    first = await store.claim("w1", now=100.0, lease_seconds=60.0, limit=2)
    assert [s.key for s in first] == ["b", "c"]
    assert all((s.lease_owner, s.lease_expires) == ("w1", 160.0) for s in first)
    stored = await store.get("b")
    assert stored is not None and (stored.lease_owner, stored.lease_expires) == ("w1", 160.0)

    rest = await store.claim("w2", now=101.0, lease_seconds=60.0, limit=10)
    assert [s.key for s in rest] == ["d", "e"]
    assert await store.claim("w3", now=102.0, lease_seconds=60.0, limit=10) == []


@pytest.mark.asyncio
async def test_claim_only_takes_the_statuses_asked_for(store: StateStore) -> None:
    await add_keys(store, ["p", "s", "f"])
    await store.update("s", {"status": "started"}, now=1001.0)
    await store.update("f", {"status": "failed"}, now=1001.0)

    failed = await store.claim("w1", now=1100.0, lease_seconds=5, limit=9, statuses=["failed"])
    assert [s.key for s in failed] == ["f"]
    started = await store.claim("w1", now=1100.0, lease_seconds=5, limit=9, statuses=["started"])
    assert [s.key for s in started] == ["s"]


@pytest.mark.asyncio
async def test_concurrent_claims_from_several_owners_never_share_a_row(store: StateStore) -> None:
    keys = [f"export-{n:03d}@2026" for n in range(90)]
    await add_keys(store, keys)

    async def claim(owner: str) -> list[str]:
        got = await store.claim(owner, now=2000.0, lease_seconds=300.0, limit=4)
        return [s.key for s in got]

    owners = [f"worker-{n % 4}" for n in range(30)]
    results = await asyncio.gather(*(claim(owner) for owner in owners))

    claimed = [key for keys_of_one in results for key in keys_of_one]
    assert len(claimed) == len(set(claimed)) == 90
    assert sorted(claimed) == keys
    for owner, got in zip(owners, results, strict=True):
        for key in got:
            state = await store.get(key)
            assert state is not None and state.lease_owner == owner


@pytest.mark.asyncio
async def test_an_expired_lease_is_taken_over_and_the_old_owner_is_locked_out(
    store: StateStore,
) -> None:
    await add_keys(store, ["job"])
    assert [s.key for s in await store.claim("w1", now=1000.0, lease_seconds=30, limit=5)] == [
        "job"
    ]
    await store.update("job", {"bytes_done": 10}, now=1010.0, owner="w1")
    assert await store.claim("w2", now=1029.0, lease_seconds=30, limit=5) == []

    taken = await store.claim("w2", now=1031.0, lease_seconds=30, limit=5)
    assert [(s.key, s.lease_owner, s.bytes_done) for s in taken] == [("job", "w2", 10)]

    with pytest.raises(LeaseLostError):
        await store.update("job", {"bytes_done": 99}, now=1032.0, owner="w1")
    assert await store.renew("w1", ["job"], now=1032.0, lease_seconds=30) == set()
    done = await store.update("job", {"status": "done"}, now=1033.0, owner="w2")
    assert (done.status, done.bytes_done, done.lease_owner) == ("done", 10, "w2")


@pytest.mark.asyncio
async def test_update_with_an_owner_needs_an_unexpired_lease(store: StateStore) -> None:
    await add_keys(store, ["job", "other"])
    await store.claim("w1", now=1000.0, lease_seconds=10, limit=1)  # "job" sorts first

    with pytest.raises(LeaseLostError):  # never held by w2
        await store.update("job", {"attempts": 1}, now=1001.0, owner="w2")
    with pytest.raises(LeaseLostError):  # nobody holds it
        await store.update("other", {"attempts": 1}, now=1001.0, owner="w1")
    with pytest.raises(LeaseLostError):  # expired, even though nobody took it over
        await store.update("job", {"attempts": 1}, now=1011.0, owner="w1")
    job = await store.get("job")
    assert job is not None and job.attempts == 0
    # Without an owner the update is not lease-checked (a single-process run).
    assert (await store.update("job", {"attempts": 2}, now=1012.0)).attempts == 2


@pytest.mark.asyncio
async def test_renew_extends_held_leases_and_reports_the_lost_ones(store: StateStore) -> None:
    await add_keys(store, ["a", "b", "c"])
    await store.claim("w1", now=1000.0, lease_seconds=10, limit=2)  # a, b
    await store.claim("w2", now=1000.0, lease_seconds=10, limit=1)  # c

    kept = await store.renew("w1", ["a", "b", "c", "unknown"], now=1005.0, lease_seconds=20)
    assert kept == {"a", "b"}
    a = await store.get("a")
    assert a is not None and (a.lease_owner, a.lease_expires) == ("w1", 1025.0)
    # Only w2's lease (not renewed) has expired by 1015; w1's were extended to 1025.
    assert [s.key for s in await store.claim("w3", now=1015.0, lease_seconds=10, limit=5)] == ["c"]

    assert [s.key for s in await store.claim("w4", now=1026.0, lease_seconds=10, limit=5)] == [
        "a",
        "b",
        "c",
    ]
    assert await store.renew("w1", ["a", "b"], now=1027.0, lease_seconds=20) == set()
    assert await store.renew("w1", [], now=1027.0, lease_seconds=20) == set()


@pytest.mark.asyncio
async def test_release_hands_work_back_at_once_but_only_the_owners(store: StateStore) -> None:
    await add_keys(store, ["a", "b"])
    await store.claim("w1", now=1000.0, lease_seconds=300, limit=1)  # a
    await store.claim("w2", now=1000.0, lease_seconds=300, limit=1)  # b

    await store.release("w1", ["a", "b"])  # b is w2's: untouched

    a, b = await store.get("a"), await store.get("b")
    assert a is not None and (a.lease_owner, a.lease_expires) == (None, None)
    assert b is not None and b.lease_owner == "w2"
    assert [s.key for s in await store.claim("w3", now=1001.0, lease_seconds=9, limit=5)] == ["a"]
    with pytest.raises(LeaseLostError):
        await store.update("a", {"attempts": 1}, now=1002.0, owner="w1")
    await store.release("w1", [])


@pytest.mark.asyncio
async def test_a_second_store_on_the_same_backing_sees_the_same_state(
    make_store: Callable[[], StateStore], store: StateStore
) -> None:
    await add_keys(store, ["a", "b"])
    await store.claim("w1", now=1000.0, lease_seconds=300, limit=1)
    async with make_store() as other:
        assert [s.key for s in await other.list()] == ["a", "b"]
        got = await other.claim("w2", now=1001.0, lease_seconds=300, limit=5)
        assert [s.key for s in got] == ["b"]
        assert await other.add([row("a")], now=1002.0) == 0
