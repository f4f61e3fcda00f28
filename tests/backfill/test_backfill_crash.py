"""kill -9 at seeded random moments, many rounds, then a clean rerun: nothing lost or doubled.

``python -m streamx backfill`` runs as a child process against both simulators (served by this
test's event loop), with SQLite state and a local output directory, and is killed with SIGKILL
after a seeded random delay: during start-up, while starting jobs, polling, downloading,
writing or publishing. Every round resumes what the previous one left. A final run without a
kill must then exit 0, and every planned export must be published exactly as the generator
produced it, record for record, with each vendor job started once.

Cordial jobs are named (and the name recorded) before their start request, so each Cordial
export is started exactly once. The one start a client cannot make exactly-once
(docs/backfill.md) is Symplify's: a kill after Symplify accepted the start request and before
the process recorded the job's id. The test checks that every Symplify job started beyond one
per export is explained by a kill within that window, and that no such job was ever used.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import pytest_asyncio
from backfill_helpers import assert_row_exact, day, run_cli, start_cli, starts, write_config

from streamx.durable.tracker import spec_from_record
from streamx.state.sqlite import SQLiteStore
from streamx.testing import Faults
from streamx.testing.faults import ROUTE_OBJECT_GET
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider

ROUNDS = 10
#: About how long a clean run works once started up (kills are spread over it).
WORK_S = 2.0
TRICKLE_BPS = 1_200_000
SEED = 20261123
#: A start whose answer was cut off by a kill reached the vendor at most this long before the
#: kill (the request's round trip plus one local commit: milliseconds, generous for a loaded
#: machine).
START_WINDOW_S = 2.0


async def _kill_moment(proc: asyncio.subprocess.Process, log: Path, rng: random.Random) -> None:
    """Return when the child ends by itself, raise TimeoutError at the moment to kill it: a
    seeded random delay after it announced its work (start-up takes a second or more and
    varies with the machine's load, so the clock starts there). One round in four is cut off
    early, among the start requests and first polls."""
    while b"backfill: running" not in log.read_bytes():
        if proc.returncode is not None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=0.01)
            return
        except TimeoutError:
            continue
    delay = rng.uniform(0.0, 0.12) if rng.random() < 0.25 else rng.uniform(0.0, WORK_S)
    await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=delay)


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=1500, padding=600), directory=tmp_path) as harness:
        # Symplify results (over 1 MiB, so checkpointed mid-file) trickle in for about a
        # second each: a run works long enough, whatever the machine's speed, for kills to
        # land while downloading and writing too.
        harness.faults.set_account("5004", Faults(trickle_bps=TRICKLE_BPS), route=ROUTE_OBJECT_GET)
        yield harness


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_sigkill_at_random_moments_then_rerun_publishes_everything_exactly_once(
    sims: SimHarness, tmp_path: Path
) -> None:
    config_path = write_config(sims, tmp_path, records_per_part=400, checkpoint_seconds=0.05)
    args = [
        "backfill",
        "--config",
        str(config_path),
        "--from",
        day(-3),
        "--to",
        day(-2),
        "--streams",
        "opens,clicks,contact_activity",
    ]
    rng = random.Random(SEED)
    kills: list[tuple[float, float]] = []  # (spawned, killed) of each round cut off
    for number in range(ROUNDS):
        log_path = tmp_path / f"round-{number}.log"
        with log_path.open("wb") as log:
            spawned = time.time()
            proc = await start_cli(sims, *args, log=log)
            try:
                await asyncio.wait_for(_kill_moment(proc, log_path, rng), timeout=30)
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
                kills.append((spawned, time.time()))
                await proc.wait()
        if proc.returncode == -signal.SIGKILL:
            continue
        assert proc.returncode == 0, log_path.read_text()  # it finished before the kill
    assert kills, "no round was cut off by a kill"

    code, out, err = await run_cli(sims, *args, "--json")
    assert code == 0, err
    assert orjson.loads(out)["ok"] is True

    async with SQLiteStore(tmp_path / "state" / "streamx-state.sqlite") as store:
        rows = await store.list()
    assert len(rows) == 4  # opens, clicks (Symplify) + two Cordial daily windows
    config = sims.config()
    total = sum(assert_row_exact(sims, config, row) for row in rows)
    assert total == 4 * 1500

    used = {row.remote_id for row in rows}
    assert len(used) == len(rows)  # each export published from one job
    assert used <= {remote_id for remote_id, _ in starts(sims)}
    # Cordial jobs are named before their start request: each is started exactly once.
    cordial_rows = [row for row in rows if spec_from_record(row.spec).account == "cor"]
    assert len(cordial_rows) == 2
    assert sorted(remote_id for remote_id, _ in sims.cordial.starts) == sorted(
        str(row.remote_id) for row in cordial_rows
    )
    # Symplify offers no lookup: an extra start is tolerated only just before a kill.
    started = sims.symplify.starts
    orphans = [(remote_id, at) for remote_id, at in started if remote_id not in used]
    assert len(started) == len(rows) - len(cordial_rows) + len(orphans)
    for remote_id, at in orphans:
        assert any(
            spawned <= at <= killed and killed - at <= START_WINDOW_S for spawned, killed in kills
        ), f"job {remote_id} was started again without a kill cutting off its start"
    for spawned, killed in kills:  # a kill cuts off at most one start per Symplify export
        assert sum(spawned <= at <= killed for _, at in orphans) <= len(rows) - len(cordial_rows)
