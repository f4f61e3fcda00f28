"""The fault proxy itself: each mode does what it says to real HTTP traffic over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from streamx.testing import FaultProxy
from streamx.testing.proxy import ProxyMode

BODY = bytes(range(256)) * 1024  # 256 KiB


class Origin:
    """A tiny HTTP server counting the requests it answered."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=BODY)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/body", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest_asyncio.fixture
async def origin() -> AsyncIterator[Origin]:
    server = Origin()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def proxy(origin: Origin) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", origin.port) as running:
        yield running


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(sock_read=0.3, sock_connect=1)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        yield client


async def fetch(session: aiohttp.ClientSession, proxy: FaultProxy) -> bytes:
    async with session.get(f"{proxy.url}/body") as response:
        return await response.read()


async def fetch_fresh(proxy: FaultProxy) -> bytes:
    """One request on a new connection (no pooling: per-connection faults are exact)."""
    timeout = aiohttp.ClientTimeout(sock_read=0.3, sock_connect=1)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        return await fetch(client, proxy)


@pytest.mark.asyncio
async def test_pass_through_is_byte_exact(
    proxy: FaultProxy, session: aiohttp.ClientSession, origin: Origin
) -> None:
    assert [await fetch(session, proxy) for _ in range(3)] == [BODY] * 3
    assert origin.requests == 3
    assert proxy.stats.bytes_to_client > 3 * len(BODY)
    assert proxy.stats.resets == proxy.stats.black_holed == 0


@pytest.mark.asyncio
async def test_latency_delays_each_direction_without_corrupting(
    proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add_latency(0.1)
    started = time.monotonic()
    assert await fetch(session, proxy) == BODY
    assert time.monotonic() - started >= 0.2  # request there, answer back: 2 x latency
    assert proxy.mode == ProxyMode(latency=0.1)


@pytest.mark.asyncio
async def test_bandwidth_cap_paces_the_body(
    proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.cap_bandwidth(1_000_000)
    started = time.monotonic()
    assert await fetch(session, proxy) == BODY
    assert time.monotonic() - started >= 0.2  # 262 kB at 1 MB/s cannot arrive sooner


@pytest.mark.asyncio
async def test_reset_once_cuts_one_connection_after_n_bytes(proxy: FaultProxy) -> None:
    proxy.reset_after(10_000, times=1)
    with pytest.raises(aiohttp.ClientPayloadError, match="ConnectionResetError"):
        await fetch_fresh(proxy)
    assert proxy.stats.bytes_to_client == 10_000
    assert await fetch_fresh(proxy) == BODY  # the fault was spent
    assert proxy.stats.resets == 1


@pytest.mark.asyncio
async def test_reset_at_zero_never_reaches_the_server(proxy: FaultProxy, origin: Origin) -> None:
    proxy.reset_after(0)
    for _ in range(3):
        with pytest.raises(aiohttp.ClientOSError):
            await fetch_fresh(proxy)
    assert origin.requests == 0
    # aiohttp resends an idempotent request once when its connection drops (RFC 9112 9.3.1),
    # so each GET cost two connections; streamx's own retry counts are on top of that.
    assert proxy.stats.resets == proxy.stats.connections == 6
    assert proxy.stats.bytes_to_server == 0


@pytest.mark.asyncio
async def test_black_hole_accepts_and_never_answers(proxy: FaultProxy, origin: Origin) -> None:
    proxy.black_hole()
    with pytest.raises(asyncio.TimeoutError):
        await fetch_fresh(proxy)
    assert origin.requests == 0
    assert proxy.stats.black_holed == 1 and proxy.stats.bytes_to_client == 0


@pytest.mark.asyncio
async def test_black_hole_after_n_bytes_stalls_a_transfer_once(proxy: FaultProxy) -> None:
    proxy.black_hole(after=50_000, times=1)
    with pytest.raises(asyncio.TimeoutError):
        await fetch_fresh(proxy)
    assert proxy.stats.bytes_to_client == 50_000
    assert await fetch_fresh(proxy) == BODY


@pytest.mark.asyncio
async def test_a_mode_change_reaches_open_keep_alive_connections(
    proxy: FaultProxy, session: aiohttp.ClientSession, origin: Origin
) -> None:
    assert await fetch(session, proxy) == BODY
    assert proxy.stats.connections == 1
    proxy.black_hole()  # the pooled connection goes silent at its next request
    with pytest.raises(asyncio.TimeoutError):
        await fetch(session, proxy)
    assert origin.requests == 1
    proxy.pass_through()
    assert await fetch(session, proxy) == BODY


def test_modes_are_validated() -> None:
    with pytest.raises(ValueError, match="not both"):
        ProxyMode(reset_after=1, black_hole_after=1)
    with pytest.raises(ValueError, match="latency"):
        ProxyMode(latency=-1)
    with pytest.raises(ValueError, match="bandwidth"):
        ProxyMode(bandwidth=0)
