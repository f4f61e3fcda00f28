"""Health: the verdict (lag, loop ticks), the lag probe against a really blocked loop, and the
HTTP endpoints over a real socket."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamx.engine.clock import FakeClock, SystemClock
from streamx.engine.export import EngineEvent
from streamx.worker.health import Health, HealthServer, LagMonitor, start_lag_monitor
from streamx.worker.metrics import WorkerMetrics


def test_healthy_until_the_loop_stops_ticking_or_lags() -> None:
    clock = FakeClock()
    health = Health(clock, max_lag=0.5, max_tick_age=30)
    assert health.report()[0]

    clock.advance(31)
    healthy, body = health.report()
    assert not healthy
    assert body["status"] == "unhealthy" and body["last_tick_seconds_ago"] == 31
    assert body["problems"] == ["worker loop last ticked 31.0 s ago > 30 s"]

    health.tick()
    health.draining = True
    healthy, body = health.report()
    assert healthy and body["draining"] is True and body["problems"] == []

    health.record_lag(0.75)
    healthy, body = health.report()
    assert not healthy and body["event_loop_lag_seconds"] == 0.75
    assert body["problems"] == ["event-loop lag 0.750 s > 0.5 s"]


@pytest.mark.asyncio
async def test_the_lag_probe_sees_a_blocked_loop() -> None:
    samples: list[float] = []
    monitor = LagMonitor(SystemClock(), interval=0.02, on_sample=(samples.append,))
    probe = asyncio.create_task(monitor.sample())
    await asyncio.sleep(0)  # the probe is asleep now
    time.sleep(0.3)  # a CPU step that never yields
    lag = await probe
    assert lag >= 0.25 and samples == [lag] and monitor.lag == lag


@pytest.mark.asyncio
async def test_the_lag_probe_measures_on_the_injected_clock() -> None:
    monitor = LagMonitor(FakeClock(), interval=0.5)
    assert await monitor.sample() == 0.0
    with pytest.raises(ValueError):
        LagMonitor(FakeClock(), interval=0)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with session.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.read()


@pytest.mark.asyncio
async def test_the_endpoints_serve_health_and_metrics() -> None:
    clock = FakeClock()
    health, metrics = Health(clock, max_tick_age=10), WorkerMetrics(clock)
    metrics.observe(EngineEvent("e", "retry", detail="HTTP 503 from https://x"))
    async with HealthServer(health, metrics, port=0) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"
        status, kind, body = await get(http, f"{base}/healthz")
        assert (status, kind) == (200, "application/json")
        assert b'"status":"ok"' in body

        clock.advance(11)
        status, _, body = await get(http, f"{base}/healthz")
        assert status == 503 and b'"status":"unhealthy"' in body

        status, kind, body = await get(http, f"{base}/metrics")
        assert status == 200 and kind.startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        assert samples[("streamx_retries_total", (("reason", "server_error"),))] == 1.0

        status, _, _ = await get(http, f"{base}/nope")
        assert status == 404
    with pytest.raises(RuntimeError):
        _ = server.port


@pytest.mark.asyncio
async def test_a_blocked_loop_turns_healthz_red_until_it_recovers() -> None:
    clock = SystemClock()
    health, metrics = Health(clock, max_lag=0.2), WorkerMetrics(clock)
    # The next sample, which would clear the lag, comes a whole interval after the late one.
    monitor = start_lag_monitor(health, metrics, clock=clock, interval=0.5)
    try:
        async with HealthServer(health, metrics) as server, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}/healthz"
            await asyncio.sleep(0.05)  # the probe is asleep now
            time.sleep(0.8)  # block the loop
            await asyncio.sleep(0)  # let the probe wake up late and record it
            while health.lag < 0.2:
                await asyncio.sleep(0.001)
            status, _, body = await get(http, url)
            assert status == 503 and b"event-loop lag" in body
            assert metrics.value("streamx_event_loop_lag_seconds") >= 0.2

            while (await get(http, url))[0] != 200:  # the next samples are on time again
                await asyncio.sleep(0.05)
    finally:
        monitor.cancel()
        with pytest.raises(asyncio.CancelledError):
            await monitor
