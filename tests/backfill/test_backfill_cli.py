"""``streamx backfill`` and ``streamx status`` as a user runs them, against the simulators:
dry runs, a second run that does only what is missing, failures and --retry-failed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import pytest_asyncio
from backfill_helpers import assert_row_exact, day, run_cli, starts, write_config

from streamx.cli.status import status_text
from streamx.state.base import ExportState
from streamx.state.sqlite import SQLiteStore
from streamx.testing import Faults
from streamx.testing.faults import ROUTE_CORDIAL_EXPORT
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    async with SimHarness(SeededProvider(rows=250), directory=tmp_path) as harness:
        yield harness


def backfill(config: Path, *extra: str, start: int = -3, end: int = -2) -> list[str]:
    return ["backfill", "--config", str(config), "--from", day(start), "--to", day(end), *extra]


@pytest.mark.asyncio
async def test_dry_run_prints_the_plan_and_touches_nothing(
    sims: SimHarness, tmp_path: Path
) -> None:
    config = write_config(sims, tmp_path)
    args = backfill(config, "--streams", "opens,contact_activity", "--dry-run")
    code, out, err = await run_cli(sims, *args)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"plan: {day(-3)}T00:00:00Z .. {day(-1)}T00:00:00Z, window 1d")
    assert "3 export(s)" in lines[0]
    assert sum("[symplify.opens, period LAST_WEEK]  new" in line for line in lines) == 1
    assert sum("[cordial.contact_activity, dt=" in line for line in lines) == 2
    assert not (tmp_path / "state").exists() and starts(sims) == []

    code, out, err = await run_cli(sims, *args, "--json")
    body = orjson.loads(out)
    assert [entry["state"] for entry in body["exports"]] == ["new", "new", "new"]

    assert (await run_cli(sims, *backfill(config, "--streams", "opens,contact_activity")))[0] == 0
    code, out, err = await run_cli(sims, *args, "--json")
    assert [entry["state"] for entry in orjson.loads(out)["exports"]] == ["done"] * 3


@pytest.mark.asyncio
async def test_a_second_run_does_only_what_is_missing(sims: SimHarness, tmp_path: Path) -> None:
    config = write_config(sims, tmp_path)
    code, out, err = await run_cli(sims, *backfill(config, "--streams", "opens", "--json"))
    assert code == 0, err
    first = orjson.loads(out)
    assert [entry["status"] for entry in first["exports"]] == ["done"]

    # A wider run: the published export is not run again, only the new windows are.
    wider = backfill(config, "--streams", "opens,contact_activity", "--json")
    code, out, err = await run_cli(sims, *wider)
    assert code == 0, err
    second = orjson.loads(out)
    assert second["done_before"] == [first["exports"][0]["key"]]
    assert [entry["key"].split("@")[0] for entry in second["exports"]] == [
        "cor.contact_activity",
        "cor.contact_activity",
    ]
    code, out, err = await run_cli(sims, *wider)
    third = orjson.loads(out)
    assert code == 0 and third["exports"] == [] and len(third["done_before"]) == 3
    assert len(starts(sims)) == 3

    async with SQLiteStore(tmp_path / "state" / "streamx-state.sqlite") as store:
        rows = await store.list()
    assert [row.status for row in rows] == ["done"] * 3
    for row in rows:
        assert_row_exact(sims, sims.config(), row)


@pytest.mark.asyncio
async def test_failed_exports_wait_for_retry_failed_and_status_says_why(
    sims: SimHarness, tmp_path: Path
) -> None:
    config = write_config(sims, tmp_path)
    sims.faults.push(ROUTE_CORDIAL_EXPORT, Faults(job_failed="destination bucket is full"))
    args = backfill(config, "--streams", "contact_activity", start=-2, end=-2)

    code, out, err = await run_cli(sims, *args)
    assert code == 1
    assert "FAILED (JobFailedError)" in out and "destination bucket is full" in out

    code, out, _ = await run_cli(sims, "status", "--config", str(config))
    assert code == 0
    assert "failed: 1" in out and "destination bucket is full" in out
    assert "done: 0" in out

    code, out, _ = await run_cli(sims, *args)  # without --retry-failed: left alone
    assert code == 1 and "failed earlier" in out and "--retry-failed" in out
    assert len(starts(sims)) == 1

    code, out, err = await run_cli(sims, *args, "--retry-failed")
    assert code == 0, out + err
    assert len(starts(sims)) == 2  # the vendor failed the job: a new one was started

    code, out, _ = await run_cli(sims, "status", "--config", str(config), "--json")
    (entry,) = [orjson.loads(line) for line in out.splitlines()]
    assert entry["status"] == "done" and entry["attempts"] == 2 and entry["last_error"] is None
    assert entry["records"] == 250 and entry["manifest"]
    async with SQLiteStore(tmp_path / "state" / "streamx-state.sqlite") as store:
        (row,) = await store.list()
    assert row.remote_id == starts(sims)[1][0]
    assert_row_exact(sims, sims.config(), row)


@pytest.mark.asyncio
async def test_status_without_a_store_and_symplify_limits_in_a_dry_run(
    sims: SimHarness, tmp_path: Path
) -> None:
    config = write_config(sims, tmp_path)
    code, out, _ = await run_cli(sims, "status", "--config", str(config))
    assert code == 0 and "nothing has run yet" in out
    args = backfill(config, "--streams", "opens", "--dry-run", start=-40, end=-30)
    code, out, err = await run_cli(sims, *args)
    assert code == 0, err
    assert "0 export(s)" in out and "nothing of this range can be fetched" in out


def test_status_text_groups_exports_and_flags_a_cut_off_start() -> None:
    rows = [
        ExportState(
            "a@1",
            {},
            status="transferring",
            remote_id="9",
            attempts=2,
            bytes_done=2048,
            parts_done=3,
            lease_owner="host:1:x",
            lease_expires=200.0,
        ),
        ExportState("b@1", {}, status="planned", attempts=1, extra={"starting": 50.0}),
        ExportState("c@1", {}, status="failed", attempts=1, last_error="HTTP 500 from vendor"),
        ExportState(
            "d@1",
            {},
            status="done",
            remote_id="7",
            attempts=1,
            manifest_location="/out/m.json",
            extra={"result": {"records": 12}},
        ),
    ]
    lines = status_text(rows, now=100.0).splitlines()
    assert lines == [
        "running or waiting: 2",
        "  a@1 (9): transferring, 2 attempt(s), 2.0 KiB and 3 part(s) checkpointed;"
        " running in host:1:x",
        "  b@1: planned, 1 attempt(s), 0 B and 0 part(s) checkpointed; a start request was cut"
        " off (the vendor may hold an unused job)",
        "failed: 1",
        "  c@1: failed, 1 attempt(s): HTTP 500 from vendor",
        "done: 1",
        "  d@1 (7): done, 1 attempt(s), 12 records; manifest /out/m.json",
    ]
