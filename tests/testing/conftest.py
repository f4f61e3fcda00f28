"""Fixtures shared by the simulator's own tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from streamx.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(autouse=True)
def _quiet_moto() -> None:
    """moto logs every request (aiohttp's servers are quieted in tests/conftest.py)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
