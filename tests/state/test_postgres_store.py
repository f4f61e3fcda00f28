"""What only the Postgres store has: migrations, several pools (workers) sharing one database,
surviving a dropped connection, and a DSN password that never reaches an error message.

The contract every backend shares is in test_store_contract.py; these run against the same
real server on loopback (tests/fixtures/postgres.py).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ directory

from fixtures.postgres import PASSWORD, PostgresInfo, postgres_server, shared_postgres

from streamx.exceptions import PermanentError, TransientError
from streamx.redact import REDACTED
from streamx.state.base import ExportState
from streamx.state.postgres import MIGRATIONS, PostgresStore


@pytest.fixture(scope="session")
def postgres() -> PostgresInfo:
    return shared_postgres()


@pytest.fixture
def schema() -> str:
    return f"pgtest_{uuid.uuid4().hex[:12]}"


async def versions(dsn: str, schema: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_version ORDER BY 1')
    finally:
        await conn.close()
    return [row["version"] for row in rows]


@pytest.mark.asyncio
async def test_workers_starting_together_migrate_exactly_once(
    postgres: PostgresInfo, schema: str
) -> None:
    stores = [PostgresStore(postgres.dsn, schema=schema, max_size=2) for _ in range(6)]
    opened = await asyncio.gather(*(store.__aenter__() for store in stores))
    try:
        assert [await store.schema_version() for store in opened] == [MIGRATIONS[-1][0]] * 6
    finally:
        for store in opened:
            await store.__aexit__(None, None, None)
    assert await versions(postgres.dsn, schema) == [version for version, _ in MIGRATIONS]

    async with PostgresStore(postgres.dsn, schema=schema) as again:  # a restart: nothing to do
        assert await again.list() == []
    assert await versions(postgres.dsn, schema) == [version for version, _ in MIGRATIONS]


@pytest.mark.asyncio
async def test_a_database_migrated_by_a_newer_streamx_is_refused(
    postgres: PostgresInfo, schema: str
) -> None:
    async with PostgresStore(postgres.dsn, schema=schema):
        pass
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await conn.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES (999)')
    finally:
        await conn.close()
    with pytest.raises(PermanentError, match="version 999, newer than this streamx"):
        async with PostgresStore(postgres.dsn, schema=schema):
            pass


@pytest.mark.asyncio
async def test_claims_from_separate_pools_never_share_a_row(
    postgres: PostgresInfo, schema: str
) -> None:
    keys = [f"e{n:03d}" for n in range(120)]
    async with PostgresStore(postgres.dsn, schema=schema) as setup:
        await setup.add([ExportState(key=key, spec={}) for key in keys], now=1.0)

    async def worker(name: str) -> list[str]:
        async with PostgresStore(postgres.dsn, schema=schema, max_size=4) as store:
            batches = await asyncio.gather(
                *(store.claim(name, now=2.0, lease_seconds=60, limit=3) for _ in range(8))
            )
        return [state.key for batch in batches for state in batch]

    results = await asyncio.gather(*(worker(f"w{n}") for n in range(5)))
    claimed = [key for one in results for key in one]
    assert len(claimed) == len(set(claimed)) == 120


@pytest.mark.asyncio
async def test_the_store_survives_its_connections_being_killed(
    postgres: PostgresInfo, schema: str
) -> None:
    async with PostgresStore(postgres.dsn, schema=schema, min_size=3, max_size=3) as store:
        await store.add([ExportState(key="k", spec={"a": 1})], now=1.0)
        for _ in range(3):
            killed = await _kill_client_connections(postgres.dsn)
            assert killed >= 1
            got = await store.get("k")  # stale pooled connections are retried on fresh ones
            assert got is not None and got.spec == {"a": 1}
            await store.update("k", {"attempts": 1}, now=2.0)


async def _kill_client_connections(dsn: str) -> int:
    admin = await asyncpg.connect(dsn)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        )
    finally:
        await admin.close()


@pytest.mark.asyncio
async def test_an_outage_is_a_redacted_transient_error_and_the_store_recovers() -> None:
    with postgres_server() as private:
        async with PostgresStore(private.dsn, schema="outage", max_size=2) as store:
            await store.add([ExportState(key="k", spec={})], now=1.0)
            private.stop()
            calls = [
                lambda: store.get("k"),
                lambda: store.list(),
                lambda: store.renew("w", ["k"], now=2, lease_seconds=5),
            ]
            for call in calls:
                with pytest.raises(TransientError) as caught:
                    await call()
                message = str(caught.value)
                assert "Postgres state store" in message and REDACTED in message
                assert PASSWORD not in message
            private.start()
            got = await store.get("k")
            assert got is not None and got.key == "k"


def test_bad_schema_names_are_refused() -> None:
    for bad in ("", "Upper", "x;drop", '"q"', "a" * 64, "1abc"):
        with pytest.raises(ValueError):
            PostgresStore("postgresql://u@h/db", schema=bad)


def _refused(pg: PostgresInfo) -> str:  # nothing listens on port 1
    return pg.dsn.replace(f":{pg.port}/", ":1/")


def _no_database(pg: PostgresInfo) -> str:
    return pg.dsn.rsplit("/", 1)[0] + "/no_such_db"


def _no_role(pg: PostgresInfo) -> str:
    return f"postgresql://nobody:{PASSWORD}@127.0.0.1:{pg.port}/postgres"


def _malformed(pg: PostgresInfo) -> str:
    return f"postgresql://u:{PASSWORD}@[::1:oops/db"


def _wrong_scheme(pg: PostgresInfo) -> str:
    return f"mysql://u:{PASSWORD}@127.0.0.1:{pg.port}/db"


def _percent_encoded(pg: PostgresInfo) -> str:  # the password as "p@ss..." once decoded
    return f"postgresql://u:p%40ss{PASSWORD}@127.0.0.1:1/db?sslmode=disable"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make_dsn", "error"),
    [
        (_refused, TransientError),
        (_no_database, PermanentError),
        (_no_role, PermanentError),
        (_malformed, PermanentError),
        (_wrong_scheme, PermanentError),
        (_percent_encoded, TransientError),
    ],
)
async def test_the_dsn_password_never_appears_in_errors(
    postgres: PostgresInfo, make_dsn: Callable[[PostgresInfo], str], error: type[Exception]
) -> None:
    store = PostgresStore(make_dsn(postgres), schema="never_created")
    with pytest.raises(error) as caught:
        async with store:
            pass
    message = str(caught.value)
    assert PASSWORD not in message and PASSWORD not in repr(store)
    assert REDACTED in message and REDACTED in repr(store)
    assert "Postgres state store" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
