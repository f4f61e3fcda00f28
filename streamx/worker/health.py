"""Liveness for orchestrators: ``/healthz`` and ``/metrics`` over HTTP, and the loop-lag probe.

Why event-loop lag is part of liveness: every export, poll and lease heartbeat of a worker
runs on one asyncio loop. A loop blocked by a runaway CPU step stops renewing leases (so other
workers take its exports over) and stops answering polls; such a worker is alive as a process
but useless, and a supervisor should restart it. :class:`LagMonitor` measures how late a short
sleep wakes up; :class:`Health` turns that and the worker loop's last tick into the verdict.
The probe shares the loop it measures: when the loop is blocked the endpoint answers late
(or times out), which a supervisor's probe timeout treats as failure too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from streamx.engine.clock import Clock, SystemClock
from streamx.worker.metrics import WorkerMetrics


class Health:
    """The worker's liveness verdict.

    Healthy when the measured event-loop lag is at most ``max_lag`` seconds and the worker
    loop called :meth:`tick` within the last ``max_tick_age`` seconds (the clock starts
    counting at construction, so a worker that is still starting is given that long).
    ``draining`` is reported but does not make the worker unhealthy: a draining worker is
    finishing its exports, and restarting it would only cut them short.
    """

    def __init__(self, clock: Clock, *, max_lag: float = 1.0, max_tick_age: float = 60.0) -> None:
        self.clock = clock
        self.max_lag = max_lag
        self.max_tick_age = max_tick_age
        self.lag = 0.0
        self.draining = False
        self._last_tick = clock.now()

    def tick(self) -> None:
        """The worker loop is alive (call once per iteration)."""
        self._last_tick = self.clock.now()

    def record_lag(self, seconds: float) -> None:
        self.lag = seconds

    def report(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, body)``: the verdict and the JSON body ``/healthz`` serves."""
        age = self.clock.now() - self._last_tick
        problems = []
        if self.lag > self.max_lag:
            problems.append(f"event-loop lag {self.lag:.3f} s > {self.max_lag} s")
        if age > self.max_tick_age:
            problems.append(f"worker loop last ticked {age:.1f} s ago > {self.max_tick_age} s")
        body = {
            "status": "unhealthy" if problems else "ok",
            "event_loop_lag_seconds": round(self.lag, 6),
            "last_tick_seconds_ago": round(age, 3),
            "draining": self.draining,
            "problems": problems,
        }
        return not problems, body


class LagMonitor:
    """Samples event-loop lag: sleep ``interval`` seconds, lag = how much later it woke.

    Each sample goes to every ``on_sample`` callback (e.g. :meth:`Health.record_lag` and
    :meth:`WorkerMetrics.observe_lag`). Run :meth:`run` as a task; cancel it to stop.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        interval: float = 0.5,
        on_sample: tuple[Callable[[float], None], ...] = (),
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.clock = clock
        self.interval = interval
        self.on_sample = on_sample
        self.lag = 0.0

    async def sample(self) -> float:
        """Measure once (one ``interval`` sleep) and report it."""
        before = self.clock.now()
        await self.clock.sleep(self.interval)
        self.lag = max(0.0, self.clock.now() - before - self.interval)
        for callback in self.on_sample:
            callback(self.lag)
        return self.lag

    async def run(self) -> None:
        while True:
            await self.sample()


class HealthServer:
    """``GET /healthz`` (200 or 503, JSON) and ``GET /metrics`` (Prometheus text) on
    ``host:port``; port 0 picks a free one (see :attr:`port`). ``async with`` starts and
    stops it."""

    def __init__(
        self, health: Health, metrics: WorkerMetrics, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.health, self.metrics = health, metrics
        self.host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (available inside ``async with``)."""
        if self._runner is None:
            raise RuntimeError("the health server is not running")
        for address in self._runner.addresses:
            return int(address[1])
        raise RuntimeError("the health server has no listening socket")

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, body = self.health.report()
        return web.Response(
            body=orjson.dumps(body),
            status=200 if healthy else 503,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = self.metrics.content_type
        return response


def start_lag_monitor(
    health: Health, metrics: WorkerMetrics, *, clock: Clock | None = None, interval: float = 0.5
) -> asyncio.Task[None]:
    """Start a :class:`LagMonitor` feeding ``health`` and ``metrics``; cancel the task to stop."""
    monitor = LagMonitor(
        clock or SystemClock(),
        interval=interval,
        on_sample=(health.record_lag, metrics.observe_lag),
    )
    return asyncio.get_running_loop().create_task(monitor.run(), name="streamx-lag-monitor")


__all__ = ["Health", "HealthServer", "LagMonitor", "start_lag_monitor"]
