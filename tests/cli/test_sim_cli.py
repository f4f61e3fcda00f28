"""`streamx sim` as a user runs it: a real process serving both vendor fakes until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "streamx", "sim", "--landing", str(tmp_path / "landing"),
         "--rows", "25", "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        assert time.monotonic() < deadline, "streamx sim did not become ready"
        time.sleep(0.05)
    try:
        yield process, orjson.loads(ready.read_bytes())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.asyncio
async def test_sim_serves_both_vendors_and_stops_cleanly(
    sim_process: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    process, info = sim_process
    base = f"{info['symplify_base_url']}/rest/{info['symplify_customer_id']}"
    token = {"X-Carma-Authentication-Token": info["symplify_token"]}
    async with aiohttp.ClientSession() as http:
        body = {"exportType": "OPENED", "period": "LAST_2_WEEKS"}  # the docs' own example
        async with http.post(f"{base}/batches/exports/statistics", json=body, headers=token) as r:
            assert r.status == 200
            batch_id = (await r.json())["batchId"]
            assert isinstance(batch_id, str)
        async with http.post(f"{base}/batches/exports/statistics", json=body) as r:
            assert r.status == 401
        auth = aiohttp.encode_basic_auth(info["cordial_api_key"], "")
        job = {
            "name": "demo-job",
            "exportType": "json",
            "destination": {"type": "local", "path": "x"},
            "selected_timeframe_start": "2026-10-30T00:00:00.000Z",
            "selected_timeframe_end": "2026-10-31T00:00:00.000Z",
        }
        url = f"{info['cordial_base_url']}/contactactivityexport"
        async with http.post(url, json=job, headers={"Authorization": auth}) as r:
            assert r.status == 200, await r.text()
            assert "jobId" in await r.json()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert process.stdout is not None
    out = process.stdout.read().decode()
    assert info["symplify_base_url"] in out and info["cordial_base_url"] in out
    assert f"{info['symplify_token']}   (public demo value)" in out
    assert f"{info['cordial_api_key']}   (public demo value)" in out
    ready = Path(info["landing"]).parent / "ready.json"
    assert ready.stat().st_mode & 0o077 == 0  # credentials readable by the owner only
