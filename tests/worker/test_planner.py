"""The planner over virtual time: occurrences planned once each, at their jittered due time,
with catch-up after downtime, a restart seeded from store keys, and a fleet of planners whose
rows land in one real Postgres store exactly once."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ directory

from fixtures.postgres import PostgresInfo, shared_postgres

from streamx.engine.clock import FakeClock
from streamx.state.postgres import PostgresStore
from streamx.worker.planner import Planner
from streamx.worker.schedule import (
    Occurrence,
    Schedule,
    jitter_offset,
    occurrence_key,
    parse_daily,
    parse_every,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def schedules(jitter: float = 0.0) -> list[Schedule]:
    return [
        Schedule("opens", daily=parse_daily("02:30"), timezone=STOCKHOLM, jitter=jitter),
        Schedule("clicks", every=parse_every("6h"), jitter=jitter),
    ]


def test_the_first_plan_runs_the_latest_occurrence_once() -> None:
    clock = FakeClock(wall_start=utc(2026, 5, 10, 7, 15))
    planner = Planner(schedules(), worker_id="w1", clock=clock)

    assert planner.plan() == [
        Occurrence("opens", utc(2026, 5, 10, 0, 30)),
        Occurrence("clicks", utc(2026, 5, 10, 6)),
    ]
    assert planner.plan() == []
    assert planner.seconds_until_next() == timedelta(hours=4, minutes=45).total_seconds()


@pytest.mark.asyncio
async def test_a_worker_loop_plans_every_occurrence_once_at_its_due_time_across_dst() -> None:
    start, end = utc(2026, 3, 27, 12), utc(2026, 3, 31, 12)
    clock = FakeClock(wall_start=start)
    planner = Planner(schedules(jitter=900), worker_id="w1", clock=clock)
    planner.seed([occurrence_key("opens", utc(2026, 3, 27, 1, 30))])
    planner.seed([occurrence_key("clicks", utc(2026, 3, 27, 12))])
    planned: list[tuple[Occurrence, datetime]] = []

    while clock.wall() < end:
        await planner.wait(cap=3600)
        planned.extend((item, clock.wall()) for item in planner.plan())

    opens = [item.at for item, _ in planned if item.export == "opens"]
    assert opens == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),  # 02:30 does not exist that day: 03:30 CEST
        utc(2026, 3, 30, 0, 30),
        utc(2026, 3, 31, 0, 30),
    ]
    clicks = [item.at for item, _ in planned if item.export == "clicks"]
    assert clicks == [utc(2026, 3, 27, 12) + timedelta(hours=6 * n) for n in range(1, 17)]
    assert len({item.key for item, _ in planned}) == len(planned)
    for item, when in planned:  # planned exactly when due for this worker, never before
        offset = timedelta(seconds=jitter_offset(item.export, "w1", 900))
        assert when == item.at + offset, item


@pytest.mark.asyncio
async def test_jitter_delays_planning_by_the_workers_offset() -> None:
    plan = [Schedule("opens", every=parse_every("1h"), jitter=3600)]
    offset = jitter_offset("opens", "w7", 3600)
    clock = FakeClock(wall_start=utc(2026, 1, 1, 10, 0, 1))
    planner = Planner(plan, worker_id="w7", clock=clock, last_planned={"opens": utc(2026, 1, 1, 9)})
    assert planner.plan() == []  # 10:00 is due at 10:00 + offset for this worker

    await planner.wait()
    assert clock.wall() == utc(2026, 1, 1, 10) + timedelta(seconds=offset)
    assert planner.plan() == [Occurrence("opens", utc(2026, 1, 1, 10))]


def test_catch_up_after_downtime_is_capped_per_schedule() -> None:
    plan = [
        Schedule("opens", daily=parse_daily("02:30"), timezone=STOCKHOLM, catch_up=3),
        Schedule("clicks", every=parse_every("1h"), catch_up=2),
    ]
    clock = FakeClock(wall_start=utc(2026, 6, 20, 12, 30))
    planner = Planner(plan, worker_id="w1", clock=clock)
    planner.seed(
        [
            "opens@2026-06-01T00:30:00Z",
            "opens@2026-06-02T00:30:00Z",
            "clicks@2026-06-01T00:00:00Z",
            "unscheduled@2026-06-19T00:00:00Z",
            "not-an-occurrence-key",
        ]
    )
    assert [item.key for item in planner.plan()] == [
        "opens@2026-06-18T00:30:00Z",
        "opens@2026-06-19T00:30:00Z",
        "opens@2026-06-20T00:30:00Z",
        "clicks@2026-06-20T11:00:00Z",
        "clicks@2026-06-20T12:00:00Z",
    ]


def test_one_schedule_per_export() -> None:
    twice = [Schedule("a", every=timedelta(hours=1)), Schedule("a", every=timedelta(hours=2))]
    with pytest.raises(ValueError, match="one schedule per export"):
        Planner(twice, worker_id="w", clock=FakeClock())


@pytest.fixture(scope="session")
def postgres() -> PostgresInfo:
    return shared_postgres()


@pytest.mark.asyncio
async def test_a_fleet_planning_the_same_occurrences_stores_each_once(
    postgres: PostgresInfo,
) -> None:
    schema = f"planner_{uuid.uuid4().hex[:12]}"
    start = utc(2026, 10, 23, 12)
    clocks = [FakeClock(wall_start=start) for _ in range(3)]
    planners = [
        Planner(schedules(jitter=600), worker_id=f"w{n}", clock=clock)
        for n, clock in enumerate(clocks)
    ]
    inserted = 0
    async with PostgresStore(postgres.dsn, schema=schema) as store:
        for hour in range(0, 24 * 4):
            for planner, clock in zip(planners, clocks, strict=True):
                clock.advance(3600 if hour else 0)
                rows = [item.state() for item in planner.plan()]
                inserted += await store.add(rows, now=clock.now())
            # a restarted worker replans from its seed: nothing new reaches the store
            again = Planner(schedules(jitter=600), worker_id="w0", clock=clocks[0])
            again.seed(state.key for state in await store.list())
            assert await store.add([item.state() for item in again.plan()], now=0.0) == 0
        keys = [state.key for state in await store.list()]

    assert inserted == len(keys) == len(set(keys))
    opens = sorted(key for key in keys if key.startswith("opens@"))
    assert opens == [  # 2026-10-25: 02:30 happens twice in Stockholm, planned once
        "opens@2026-10-23T00:30:00Z",
        "opens@2026-10-24T00:30:00Z",
        "opens@2026-10-25T00:30:00Z",
        "opens@2026-10-26T01:30:00Z",
        "opens@2026-10-27T01:30:00Z",
    ]
    assert len([key for key in keys if key.startswith("clicks@")]) == 4 * 4 + 1
