"""The Symplify client against the Symplify simulator (single attempts, no engine)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from streamx.config import ExportSpec
from streamx.engine.clock import SystemClock
from streamx.engine.errors import AuthError, RateLimitedError, RequestRejectedError
from streamx.engine.retry import RetryPolicy
from streamx.exceptions import ConfigError
from streamx.testing import FaultPlan, Faults, ManualClock, StaticRows, SymplifySim
from streamx.testing.faults import ROUTE_SYMPLIFY_BATCH, ROUTE_SYMPLIFY_START
from streamx.vendors.base import CallOptions, MalformedResponseError
from streamx.vendors.symplify import EXPORT_TYPES, PERIODS, SymplifyClient, split_base_url

ROWS = [
    {"eventId": str(n), "contactId": str(n), "timestamp": 1_700_000_000_000 + n} for n in range(50)
]


class RecordingRows(StaticRows):
    """Remembers which export type and period each batch was created with."""

    def __init__(self) -> None:
        super().__init__(ROWS)
        self.calls: dict[str, tuple[str, str]] = {}

    def symplify_rows(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> Iterator[dict[str, Any]]:
        self.calls[batch_id] = (export_type, period)
        return super().symplify_rows(customer_id, export_type, period, batch_id)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SymplifySim]:
    async with SymplifySim(provider=RecordingRows(), clock=ManualClock(), faults=FaultPlan()) as s:
        yield s


@pytest_asyncio.fixture
async def client(sim: SymplifySim) -> AsyncIterator[SymplifyClient]:
    async with aiohttp.ClientSession() as session:
        yield SymplifyClient(
            session, account="acme", base_url=sim.base_url, token=sim.token,
            customer_id=sim.customer_id, clock=SystemClock(),
        )  # fmt: skip


def _spec(stream: str = "opens", period: str | None = "LAST_DAY", **extra: Any) -> ExportSpec:
    return ExportSpec("e", "acme", stream, period=period, **extra)


@pytest.mark.parametrize(
    ("url", "root", "customer"),
    [
        ("https://eu.example.com", "https://eu.example.com/rest", None),
        ("https://eu.example.com/", "https://eu.example.com/rest", None),
        ("https://eu.example.com/rest", "https://eu.example.com/rest", None),
        ("https://eu.example.com/rest/5004/", "https://eu.example.com/rest", "5004"),
        ("http://www.carmamail.com:80/rest/", "http://www.carmamail.com:80/rest", None),
        ("https://proxy.example.com/symplify", "https://proxy.example.com/symplify/rest", None),
        ("https://p.example.com/symplify/rest/77", "https://p.example.com/symplify/rest", "77"),
    ],
)  # fmt: skip
def test_base_url_forms(url: str, root: str, customer: str | None) -> None:
    assert split_base_url(url) == (root, customer)


@pytest.mark.parametrize("url", ["ftp://x.example.com", "https://x.example.com/rest?a=1", "x"])
def test_bad_base_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        split_base_url(url)


def test_customer_id_must_be_known_and_consistent() -> None:
    session: Any = None
    with pytest.raises(ConfigError, match="no customer_id"):
        SymplifyClient(session, account="a", base_url="https://h", token="t", clock=SystemClock())
    with pytest.raises(ConfigError, match="differs"):
        SymplifyClient(
            session, account="a", base_url="https://h/rest/1", token="t",
            customer_id="2", clock=SystemClock(),
        )  # fmt: skip


@pytest.mark.asyncio
async def test_every_export_type_and_period_is_requested_as_documented(
    sim: SymplifySim, client: SymplifyClient
) -> None:
    sent: dict[str, tuple[str, str]] = {}
    for export_type in EXPORT_TYPES:
        for period in PERIODS:
            spec = _spec(export_type.lower(), period)
            stream = f"symplify.{export_type.lower()}"
            client.check(spec, stream)
            sent[await client.start(spec, stream)] = (export_type, period)
    provider = sim.provider
    assert isinstance(provider, RecordingRows)
    while len(provider.calls) < len(sent):  # the simulator writes each result in a thread
        await asyncio.sleep(0.01)
    assert provider.calls == sent and len(sent) == 50


@pytest.mark.asyncio
async def test_poll_follows_the_batch_to_finished_and_locates_the_result(
    sim: SymplifySim, client: SymplifyClient
) -> None:
    clock = sim.clock
    assert isinstance(clock, ManualClock)
    batch = await client.start(_spec(), "symplify.opens")
    pending = await client.poll(batch)
    assert (pending.state, pending.done, pending.failed) == ("PENDING", False, False)
    clock.advance(sim.timings.pending_s + sim.timings.in_progress_s / 2)
    running = await client.poll(batch)
    assert running.state == "IN_PROGRESS" and not running.done
    clock.advance(60)
    while not (status := await client.poll(batch)).done:
        await asyncio.sleep(0.01)
    assert status.totals is None  # Symplify's counters are progress, not a promised row count
    (result,) = await client.locate(batch)
    assert result.name == f"{batch}_result.json"
    policy = RetryPolicy(max_attempts=2)
    body = b"".join(
        [c async for c in result.open(CallOptions(policy, SystemClock(), random.Random()))]
    )
    assert body.startswith(b"[") and body.count(b"eventId") == len(ROWS)


@pytest.mark.asyncio
async def test_failed_batch_is_terminal_with_its_status(
    sim: SymplifySim, client: SymplifyClient
) -> None:
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(job_failed="x"))
    batch = await client.start(_spec(), "symplify.opens")
    assert isinstance(sim.clock, ManualClock)
    sim.clock.advance(60)
    status = await client.poll(batch)
    assert status.failed and status.state == "ERROR" and "status ERROR" in (status.reason or "")


@pytest.mark.asyncio
async def test_errors_are_classified(sim: SymplifySim, client: SymplifyClient) -> None:
    sim.faults.push(ROUTE_SYMPLIFY_BATCH, Faults(status=429))
    with pytest.raises(RateLimitedError) as limited:
        await client.poll("101111")
    assert limited.value.retry_after == 60.0  # no Retry-After: Symplify's one call per minute
    with pytest.raises(RequestRejectedError, match="Batch not found"):
        await client.poll("999")
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(truncate_at=5))
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await client.start(_spec(), "symplify.opens")
    async with aiohttp.ClientSession() as session:
        bad = SymplifyClient(
            session, account="acme", base_url=sim.base_url, token="nope",
            customer_id=sim.customer_id, clock=SystemClock(),
        )  # fmt: skip
        with pytest.raises(AuthError) as denied:
            await bad.start(_spec(), "symplify.opens")
    assert (denied.value.vendor, denied.value.account) == ("symplify", "acme")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_spec(period=None), "needs period"),
        (_spec(period="LAST_MONTH"), "needs period"),
        (_spec(days=1), "only a period"),
        (_spec(options={"x": 1}), "only a period"),
    ],
)
def test_check_refuses_what_symplify_cannot_do(spec: ExportSpec, message: str) -> None:
    session: Any = None
    client = SymplifyClient(
        session, account="a", base_url="https://h/rest/1", token="t", clock=SystemClock()
    )
    with pytest.raises(ConfigError, match=message):
        client.check(spec, "symplify.opens")
