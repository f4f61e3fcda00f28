"""Shared server fixtures (moto S3, a real OpenSSH sshd) over tests/fixtures/servers.py.

Session-scoped, so the whole suite starts one moto server and one sshd at most.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests/ directory

from fixtures.servers import (
    SSHServerInfo,
    moto_config,
    moto_server,
    openssh_server,
    reset_moto,
)

from streamx.s3 import S3Config, open_client

# The suite (and so CI) runs Hypothesis derandomized: the same examples on every run, so a red
# run is reproducible and a green one is not luck. New examples are explored on purpose with
# STREAMX_HYPOTHESIS=explore (random seeds, as a developer would run it) and `scripts/fuzz`.
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("STREAMX_HYPOTHESIS", "deterministic"))


@pytest.fixture(autouse=True)
def _quiet_servers() -> None:
    """The simulators' aiohttp servers log every connection a test resets or drops on purpose
    (tracebacks included); that noise would bury a real failure's output."""
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    logging.getLogger("aiohttp.access").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_config(moto_endpoint: str) -> Iterator[S3Config]:
    yield moto_config(moto_endpoint)
    reset_moto(moto_endpoint)  # moto keeps every object in memory: start each test empty


@pytest_asyncio.fixture
async def s3_client(s3_config: S3Config) -> AsyncIterator[Any]:
    async with open_client(s3_config) as client:
        yield client


@pytest_asyncio.fixture
async def bucket(s3_client: Any) -> str:
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    await s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def sshd() -> Iterator[SSHServerInfo]:
    with openssh_server() as server:
        yield server


@pytest.fixture
def sftp_root(sshd: SSHServerInfo) -> Iterator[Path]:
    """A fresh directory on the SSH server that its user owns (a landing zone's root)."""
    path = Path(tempfile.mkdtemp(prefix="zone-", dir=sshd.root))
    path.chmod(0o755)
    shutil.chown(path, user=sshd.username)
    yield path
    shutil.rmtree(path, ignore_errors=True)
