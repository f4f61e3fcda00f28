"""A fleet: three ``streamx worker`` processes share a real PostgreSQL state store; one is
killed with SIGKILL in the middle of an export; the others take its exports over once its
leases expire and resume them; in the end every scheduled occurrence is published exactly once,
record for record, from one vendor job each."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest
import pytest_asyncio
from worker_helpers import (
    assert_row_exact,
    child_env,
    manifests,
    start_worker,
    vendor_starts,
    write_config,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ directory

from fixtures.postgres import PostgresInfo, shared_postgres

from streamx.manifest import Manifest
from streamx.state.base import ExportState
from streamx.state.postgres import PostgresStore
from streamx.testing import Faults
from streamx.testing.faults import ROUTE_OBJECT_GET
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider
from streamx.worker.schedule import occurrence_key

ROWS = 1500
WORKERS = ("w0", "w1", "w2")
EXPORTS = ("opens", "clicks", "activity")
LEASE_S = 3.0
#: A start cut off by the kill reached the vendor at most this long before it.
START_WINDOW_S = 2.0


@pytest.fixture(scope="session")
def postgres() -> PostgresInfo:
    return shared_postgres()


@pytest_asyncio.fixture
async def database(postgres: PostgresInfo) -> AsyncIterator[str]:
    """A fresh database of the shared server; its DSN."""
    name = f"fleet_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    yield postgres.dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=ROWS, padding=600), directory=tmp_path) as harness:
        # Symplify results (about 1.5 MB) trickle in for over a second each, so a worker is
        # reliably caught in the middle of one.
        harness.faults.set_account("5004", Faults(trickle_bps=1_000_000), route=ROUTE_OBJECT_GET)
        yield harness


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_killed_worker_is_taken_over_and_every_occurrence_is_published_once(
    sims: SimHarness, database: str, tmp_path: Path
) -> None:
    config_path = write_config(
        sims,
        tmp_path,
        exports=EXPORTS,
        catch_up=2,
        state='url_env = "TEST_STATE_URL"',
        lease=LEASE_S,
        heartbeat=1.0,
        max_exports=2,
    )
    # The fleet was down for days: each export catches up its two latest occurrences.
    now = dt.datetime.now(dt.UTC)
    async with PostgresStore(database) as store:
        old = [occurrence_key(name, now - dt.timedelta(days=4)) for name in EXPORTS]
        await store.add([ExportState(key, {}, status="done") for key in old], now=now.timestamp())

    env = child_env(sims, TEST_STATE_URL=database)
    logs = {name: tmp_path / f"{name}.log" for name in WORKERS}
    procs = {}
    for name in WORKERS:
        with logs[name].open("wb") as handle:
            procs[name] = await start_worker(
                sims, config_path, "--id", name, "--log-format", "json", log=handle, env=env
            )
    try:
        victim, victim_keys = await _kill_mid_export(database, procs)
        killed_at = time.time()
        rows = await _until_all_done(database, old, expected=2 * len(EXPORTS))
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes = {name: await asyncio.wait_for(p.wait(), timeout=30) for name, p in procs.items()}
    assert codes[victim] == -signal.SIGKILL
    for name in WORKERS:
        if name != victim:
            assert codes[name] == 0, logs[name].read_text()

    # Every occurrence published exactly once, exactly as generated.
    config = sims.config()
    assert sum(assert_row_exact(sims, config, row) for row in rows) == len(rows) * ROWS
    assert sorted(str(path) for path in manifests(sims)) == sorted(
        str(row.manifest_location) for row in rows
    )
    _assert_only_published_files(sims)

    # The victim's exports were finished by the others, resuming its vendor jobs.
    assert victim_keys
    survivors = [
        orjson.loads(line)
        for name in WORKERS
        if name != victim
        for line in logs[name].read_text().splitlines()
        if line.startswith("{")
    ]
    for key in victim_keys:
        takeovers = [
            line
            for line in survivors
            if line.get("export") == key
            and line.get("state") == "claimed"
            and "resuming a" in line.get("detail", "")
        ]
        assert takeovers, f"{key} was not resumed by another worker"
    async with PostgresStore(database) as store:  # every lease was handed back
        assert [row.lease_owner for row in await store.list()] == [None] * (len(rows) + len(old))

    # One vendor job per occurrence; a job started beyond that was cut off by the kill.
    used = {str(row.remote_id) for row in rows}
    assert len(used) == len(rows)
    started = vendor_starts(sims)
    assert used <= {remote for remote, _ in started}
    for remote, at in started:
        if remote not in used:
            assert killed_at - START_WINDOW_S <= at <= killed_at, f"job {remote} started twice"


async def _kill_mid_export(
    dsn: str, procs: dict[str, asyncio.subprocess.Process]
) -> tuple[str, list[str]]:
    """SIGKILL the first worker seen transferring; returns its name and the keys it held."""
    async with PostgresStore(dsn) as store:
        for _ in range(600):
            for row in await store.list(["transferring"]):
                owner = row.lease_owner or ""
                name = owner.rsplit(":", 1)[-1]
                if name in procs and row.bytes_done > 0:
                    procs[name].send_signal(signal.SIGKILL)
                    await procs[name].wait()
                    held = [r.key for r in await store.list() if r.lease_owner == owner]
                    return name, held
            await asyncio.sleep(0.02)
    raise AssertionError("no worker was ever seen in the middle of a transfer")


async def _until_all_done(dsn: str, old: list[str], *, expected: int) -> list[ExportState]:
    async with PostgresStore(dsn) as store:
        for _ in range(1200):
            rows = [row for row in await store.list() if row.key not in old]
            if len(rows) == expected and all(row.status == "done" for row in rows):
                return rows
            assert not any(row.status == "failed" for row in rows), rows
            await asyncio.sleep(0.05)
    raise AssertionError(f"not every export was published: {rows}")


def _assert_only_published_files(sims: SimHarness) -> None:
    """Every visible output file is a manifest or a part one names: nothing duplicated."""
    named = set()
    for path in manifests(sims):
        manifest = Manifest.from_json(path.read_bytes())
        named |= {sims.out / part.path for part in manifest.parts}
        named.add(path)
    leftovers = [path for path in _visible(sims.out) if path not in named]
    assert leftovers == [], leftovers


def _visible(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            yield path
