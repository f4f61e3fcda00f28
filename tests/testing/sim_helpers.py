"""Small helpers for the simulator tests (polling without fixed sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp


async def poll_json(
    session: aiohttp.ClientSession,
    url: str,
    until: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 15.0,
    **request: Any,
) -> dict[str, Any]:
    """GET ``url`` until ``until(json)`` holds (real time: background work must finish)."""
    deadline = time.monotonic() + timeout
    while True:
        async with session.get(url, **request) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
        if until(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held; last answer {body}")
        await asyncio.sleep(0.02)


async def read_until_error(response: aiohttp.ClientResponse) -> tuple[bytes, BaseException | None]:
    """All body bytes the client received, and the error that ended the body (if any)."""
    received = bytearray()
    try:
        async for piece in response.content.iter_any():
            received += piece
    except (TimeoutError, aiohttp.ClientError) as exc:
        return bytes(received), exc
    return bytes(received), None
