"""A bad network between streamx and every vendor call: the proxy-level scenario matrix.

Every vendor call (Symplify start, poll, result URL and result download; Cordial start and
poll; the landing-zone transfer over S3 and SFTP) meets every proxy mode (pass-through, added
latency, a bandwidth cap, a reset once, resets on every connection, a black hole once, a black
hole on every connection). Each scenario ends one of two ways:

* **recoverable** modes: the published export equals, record for record, what the seeded
  generator produced (the landing transfer: the object's exact bytes);
* **persistent** modes: a clear error of the expected type after a bounded number of retries,
  nothing published, and a bounded number of requests reaching the server.

The fault is armed exactly when the call under test begins (on the engine event before it)
and lifted after it, so each row of the matrix hits one call. The engine runs with short read
timeouts (``MATRIX_ENGINE``) so a black hole costs a quarter second per attempt. The fault
knobs of the simulators themselves are tested in ``tests/e2e/test_engine_sim.py``; the outage
and Retry-After tests at the end count what the simulator saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import pytest_asyncio
from proxied_sims import MATRIX_ENGINE, ProxiedSims, proxied_sims

from streamx.config import ExportSpec, LandingConfig
from streamx.engine.backoff import Backoff
from streamx.engine.clock import FakeClock, SystemClock
from streamx.engine.errors import NetworkError, NetworkTimeoutError
from streamx.engine.retry import RetryPolicy
from streamx.engine.runner import EngineEvent
from streamx.exceptions import StreamxError
from streamx.s3 import S3Config, open_client
from streamx.sources.s3 import S3Source
from streamx.sources.sftp import SFTPSource
from streamx.ssh import SFTPSession, SSHConfig
from streamx.testing import FaultProxy, Faults
from streamx.testing.faults import (
    ROUTE_CORDIAL_EXPORT,
    ROUTE_CORDIAL_JOB,
    ROUTE_OBJECT_GET,
    ROUTE_SYMPLIFY_BATCH,
    ROUTE_SYMPLIFY_RESULT_URL,
    ROUTE_SYMPLIFY_START,
)
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ directory
from fixtures.servers import MOTO_KEYS, asyncssh_sftp_server

OPENS = ExportSpec("opens", "sym", "opens", period="LAST_DAY")
ACTIVITY = ExportSpec("activity", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END)
ATTEMPTS = MATRIX_ENGINE.max_attempts
TRANSFERS = MATRIX_ENGINE.transfer_attempts
#: aiohttp resends an idempotent request once when its connection drops (RFC 9112 9.3.1):
#: one streamx attempt may cost two connections.
AIOHTTP_RESEND = 2


@pytest.fixture(autouse=True)
def _quiet_ssh() -> None:
    logging.getLogger("asyncssh").setLevel(logging.CRITICAL)


@pytest_asyncio.fixture
async def net(tmp_path: Path) -> AsyncIterator[ProxiedSims]:
    async with proxied_sims(tmp_path) as running:
        yield running


# --- the matrix: engine calls ---------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One vendor call: which export makes it, through which proxy, and when it happens.

    ``arm_on`` is the engine event right before the call (None: the export's first request),
    ``disarm_on`` the one right after it. ``attempts`` bounds the tries of the call when
    every try fails: the result URL and the download are retried inside a transfer that is
    itself restarted up to ``transfer_attempts`` times.
    """

    name: str
    spec: ExportSpec
    proxy: str
    route: str
    arm_on: str | None
    disarm_on: str | None
    attempts: int
    retries_if_down: int


CALLS = [
    Call("symplify.start", OPENS, "symplify", ROUTE_SYMPLIFY_START, None, "started", ATTEMPTS,
         ATTEMPTS - 1),
    Call("symplify.poll", OPENS, "symplify", ROUTE_SYMPLIFY_BATCH, "started", "transfer_start",
         ATTEMPTS, ATTEMPTS - 1),
    Call("symplify.url", OPENS, "symplify", ROUTE_SYMPLIFY_RESULT_URL, "transfer_start", None,
         TRANSFERS * ATTEMPTS, TRANSFERS * ATTEMPTS - 1),
    # The download retries inside HttpSource (not counted in ExportResult.retries); the
    # transfer restarts are.
    Call("symplify.download", OPENS, "store", ROUTE_OBJECT_GET, None, None,
         TRANSFERS * ATTEMPTS, TRANSFERS - 1),
    Call("cordial.start", ACTIVITY, "cordial", ROUTE_CORDIAL_EXPORT, None, "started", ATTEMPTS,
         ATTEMPTS - 1),
    Call("cordial.poll", ACTIVITY, "cordial", ROUTE_CORDIAL_JOB, "started", "transfer_start",
         ATTEMPTS, ATTEMPTS - 1),
]  # fmt: skip


@dataclass(frozen=True)
class Mode:
    """A proxy mode. ``fails`` names the error a persistent mode must end in (else: exact)."""

    name: str
    apply: Callable[[FaultProxy, bool], None]  # (proxy, is the call a body download)
    fails: type[StreamxError] | None = None
    #: The mode interrupts the call once (a retry or a resume is expected).
    interrupts: bool = False


def _mid(download: bool) -> int:
    """Where a once-fault strikes: inside the result body, or inside the API answer."""
    return 20_000 if download else 10


MODES = [
    Mode("pass-through", lambda proxy, _: proxy.pass_through()),
    Mode("latency", lambda proxy, _: proxy.add_latency(0.03)),
    Mode("bandwidth", lambda proxy, _: proxy.cap_bandwidth(400_000)),
    Mode("reset-once", lambda p, big: p.reset_after(_mid(big), times=1), interrupts=True),
    Mode("reset-always", lambda proxy, _: proxy.reset_after(0), fails=NetworkError),
    Mode("black-hole-once", lambda p, big: p.black_hole(after=_mid(big) if big else 0, times=1),
         interrupts=True),
    Mode("black-hole-always", lambda proxy, _: proxy.black_hole(), fails=NetworkTimeoutError),
]  # fmt: skip


def _arming(net: ProxiedSims, call: Call, mode: Mode) -> Callable[[EngineEvent], None]:
    proxy: FaultProxy = getattr(net, call.proxy)
    download = call.route == ROUTE_OBJECT_GET
    if call.arm_on is None:
        mode.apply(proxy, download)

    def on_event(event: EngineEvent) -> None:
        if event.kind == call.arm_on:
            mode.apply(proxy, download)
        elif event.kind == call.disarm_on:
            proxy.pass_through()

    return on_event


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES, ids=[mode.name for mode in MODES])
@pytest.mark.parametrize("call", CALLS, ids=[call.name for call in CALLS])
async def test_every_call_under_every_network_fault(
    net: ProxiedSims, call: Call, mode: Mode
) -> None:
    config = net.config()
    (result,) = await net.run([call.spec], config, on_event=_arming(net, call, mode))
    proxy: FaultProxy = getattr(net, call.proxy)
    if mode.fails is None:
        net.sims.assert_exact(result, config)
        assert result.retries <= (1 if mode.interrupts else 0), result
        if mode.interrupts:
            assert proxy.stats.resets + proxy.stats.black_holed == 1
        if mode.interrupts and call.route == ROUTE_OBJECT_GET:  # resumed, not restarted
            first, resumed = net.sims.store.ranges
            assert first is None and resumed is not None
            # 20 000 bytes went to the client, the response headers among them.
            assert 19_000 < int(resumed.removeprefix("bytes=").rstrip("-")) < 20_000
        return
    assert result.status == "failed" and result.manifest is None
    assert result.error_type == mode.fails.__name__, result.error
    assert isinstance(result.exception, mode.fails)
    assert result.retries == call.retries_if_down
    assert net.sims.visible_files() == []
    # Bounded: the proxy accepted at most one connection per attempt (two for a resent GET)
    # plus the connection pooled before the fault was armed; none of them reached the route.
    assert proxy.stats.connections <= AIOHTTP_RESEND * call.attempts + 1
    assert net.plan.seen[call.route] == 0


# --- outages, Retry-After: 0, stalls ---------------------------------------------------------


@pytest.mark.asyncio
async def test_a_network_outage_is_capped_by_the_retry_budget(net: ProxiedSims) -> None:
    """20 exports, the vendor unreachable (every connection reset), realistic backoff (2 s
    base, 60 s cap) on a virtual clock: the shared budget stops the retries, not attempts."""
    net.symplify.reset_after(0)
    engine = dataclasses.replace(
        MATRIX_ENGINE,
        backoff_base=2.0,
        backoff_cap=60.0,
        max_attempts=100,
        retry_budget=5,
        retry_budget_per_second=0.01,
        deadline=6 * 3600.0,
    )
    specs = [dataclasses.replace(OPENS, name=f"opens-{n}") for n in range(20)]
    clock = FakeClock()
    results = await net.run(specs, net.config(engine), clock=clock)
    assert {result.error_type for result in results} == {"RetryBudgetExhaustedError"}
    retries = sum(result.retries for result in results)
    assert retries <= 6  # the budget (5) plus what the floor refilled meanwhile
    assert net.symplify.stats.connections <= AIOHTTP_RESEND * (len(specs) + retries)
    assert net.plan.seen[ROUTE_SYMPLIFY_START] == 0
    assert clock.slept < 600  # a storm of max_attempts=100 per export would sleep for hours
    assert net.sims.visible_files() == []


@pytest.mark.asyncio
async def test_a_poll_outage_costs_the_vendor_about_one_request_per_export(
    net: ProxiedSims,
) -> None:
    """The simulator answers every poll with 503: the requests it saw are bounded by the
    number of exports plus the budget, whatever ``max_attempts`` says."""
    net.sims.faults.set_account("5004", Faults(status=503), route=ROUTE_SYMPLIFY_BATCH)
    engine = dataclasses.replace(
        MATRIX_ENGINE, max_attempts=50, retry_budget=4, retry_budget_per_second=0.01
    )
    specs = [dataclasses.replace(OPENS, name=f"opens-{n}") for n in range(12)]
    results = await net.run(specs, net.config(engine), clock=FakeClock())
    assert {result.error_type for result in results} == {"RetryBudgetExhaustedError"}
    assert net.plan.seen[ROUTE_SYMPLIFY_BATCH] <= len(specs) + 4 + 1
    assert net.plan.seen[ROUTE_SYMPLIFY_START] == len(specs)


@pytest.mark.asyncio
async def test_retry_after_zero_never_spins(net: ProxiedSims) -> None:
    """Polls answered 429 ``Retry-After: 0`` forever: each export makes exactly
    ``max_attempts`` polls, and every wait is at least the 50 ms floor."""
    net.sims.faults.set_account(
        "5004", Faults(status=429, retry_after="0"), route=ROUTE_SYMPLIFY_BATCH
    )
    events: list[EngineEvent] = []
    specs = [dataclasses.replace(OPENS, name=f"opens-{n}") for n in range(5)]
    engine = dataclasses.replace(MATRIX_ENGINE, max_attempts=6)
    results = await net.run(specs, net.config(engine), on_event=events.append)
    assert {result.error_type for result in results} == {"RateLimitedError"}
    assert net.plan.seen[ROUTE_SYMPLIFY_BATCH] == len(specs) * 6
    delays = [event.delay for event in events if event.kind == "retry"]
    assert len(delays) == len(specs) * 5
    assert all(delay is not None and 0.05 <= delay <= 0.1 for delay in delays)


@pytest.mark.asyncio
async def test_a_transfer_stalling_on_every_connection_still_completes(net: ProxiedSims) -> None:
    """Each connection to the object store goes silent after 20 kB: every stall times out
    (read timeout 0.25 s) and the download resumes where it stopped, exactly."""
    net.store.black_hole(after=20_000)
    (result,) = await net.run([OPENS])
    net.sims.assert_exact(result)
    starts = [int(r.split("=")[1].rstrip("-")) if r else 0 for r in net.sims.store.ranges]
    steps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert starts[0] == 0 and len(steps) >= result.bytes_read // 20_000
    assert all(19_000 < step < 20_000 for step in steps)  # 20 kB a connection, headers included
    assert net.store.stats.black_holed == len(steps)


# --- the matrix: the landing-zone transfer over the network ----------------------------------

LANDED = secrets.token_bytes(300_000)
SOURCE_POLICY = RetryPolicy(backoff=Backoff(0.01, 0.05), max_attempts=3)


#: ``S3Config(max_attempts=1)``: botocore tries each request once (see
#: test_s3_max_attempts_1_means_one_try below); the retries are streamx's own.
BOTOCORE_TRIES = 1


def _direct(endpoint: str) -> S3Config:
    """Setting up the bucket bypasses the proxy, with patient defaults: not under test."""
    return S3Config(endpoint_url=endpoint, region="us-east-1", **MOTO_KEYS)


def _s3(endpoint: str) -> S3Config:
    return S3Config(
        endpoint_url=endpoint,
        region="us-east-1",
        max_attempts=1,  # as few botocore retries as S3Config allows: the retries are streamx's
        read_timeout=0.25,
        connect_timeout=1.0,
        **MOTO_KEYS,
    )


async def _read_all(source: Any) -> bytes:
    out = bytearray()
    async for chunk in source:
        out += chunk
    return bytes(out)


def _landing_fault(mode: Mode, proxy: FaultProxy) -> None:
    mode.apply(proxy, True)  # once-faults strike 20 kB into the transfer


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES, ids=[mode.name for mode in MODES])
async def test_s3_landing_transfer_under_every_network_fault(
    moto_endpoint: str, mode: Mode
) -> None:
    bucket, key = f"landing-{secrets.token_hex(4)}", "streamx/job/streamx-job_1.json.gz"
    port = int(moto_endpoint.rsplit(":", 1)[1])
    async with open_client(_direct(moto_endpoint)) as direct:
        await direct.create_bucket(Bucket=bucket)
        await direct.put_object(Bucket=bucket, Key=key, Body=LANDED)
    async with FaultProxy("127.0.0.1", port) as proxy, open_client(_s3(proxy.url)) as client:
        _landing_fault(mode, proxy)
        source = S3Source(client, bucket, key, policy=SOURCE_POLICY, clock=SystemClock())
        if mode.fails is None:
            assert await _read_all(source) == LANDED
            assert source.resumes == (1 if mode.interrupts else 0)
            return
        with pytest.raises(mode.fails):
            await _read_all(source)
        assert source.resumes == SOURCE_POLICY.max_attempts - 1
        tries = AIOHTTP_RESEND * BOTOCORE_TRIES * SOURCE_POLICY.max_attempts
        assert proxy.stats.connections <= tries
        assert proxy.stats.bytes_to_server == 0  # nothing reached moto


def _s3_landing(net: ProxiedSims, proxy: FaultProxy, moto_endpoint: str, bucket: str) -> Any:
    """The harness config with Cordial landing in S3: the simulator writes to moto directly,
    streamx lists and reads through ``proxy``."""
    net.sims.cordial.s3_endpoint_url = moto_endpoint
    landing = LandingConfig(
        "s3",
        prefix="landing",
        options={
            "bucket": bucket,
            "region": "us-east-1",
            "endpoint_url": proxy.url,
            "read_timeout": 0.25,
            "connect_timeout": 1.0,
            "max_attempts": 1,
            **MOTO_KEYS,
        },
    )
    return net.config(cor={"landing": landing})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "mode", [mode for mode in MODES if mode.fails is None], ids=lambda mode: mode.name
)
async def test_engine_landing_transfer_over_s3_under_network_faults(
    net: ProxiedSims, moto_endpoint: str, mode: Mode
) -> None:
    """The Cordial export read back from an S3 landing zone through the proxy: exact."""
    bucket = f"landing-{secrets.token_hex(4)}"
    async with open_client(_direct(moto_endpoint)) as direct:
        await direct.create_bucket(Bucket=bucket)
    port = int(moto_endpoint.rsplit(":", 1)[1])
    async with FaultProxy("127.0.0.1", port) as proxy:
        config = _s3_landing(net, proxy, moto_endpoint, bucket)
        mode.apply(proxy, False)  # once-faults strike the listing (or the first read) early
        (result,) = await net.run([ACTIVITY], config)
    net.sims.assert_exact(result, config)
    assert result.files == 3  # 300 rows in chunk files of 100, read in order
    if mode.interrupts:
        assert proxy.stats.resets + proxy.stats.black_holed == 1


@pytest.mark.asyncio
async def test_engine_landing_transfer_respects_the_export_deadline(
    net: ProxiedSims, moto_endpoint: str
) -> None:
    bucket = f"landing-{secrets.token_hex(4)}"
    async with open_client(_direct(moto_endpoint)) as direct:
        await direct.create_bucket(Bucket=bucket)
    port = int(moto_endpoint.rsplit(":", 1)[1])
    async with FaultProxy("127.0.0.1", port) as proxy:
        config = _s3_landing(net, proxy, moto_endpoint, bucket)
        spec = dataclasses.replace(ACTIVITY, deadline=2.0)
        # Each connection goes silent after 2 kB: the listing (~1.5 kB) passes, every object
        # read then stalls again and again, making a little progress each time.
        proxy.black_hole(after=2_000)
        try:
            (result,) = await asyncio.wait_for(net.run([spec], config), 8)
        except TimeoutError:
            pytest.fail("the export was still reading its landing zone 6 s past its deadline")
    assert result.status == "failed"
    assert result.error_type in ("DeadlineExceededError", "NetworkTimeoutError")


@pytest.mark.asyncio
async def test_s3_max_attempts_1_means_one_try(moto_endpoint: str) -> None:
    port = int(moto_endpoint.rsplit(":", 1)[1])
    async with FaultProxy("127.0.0.1", port) as proxy, open_client(_s3(proxy.url)) as client:
        proxy.reset_after(0)
        with pytest.raises(Exception):  # noqa: B017 - only the number of tries matters here
            await client.head_bucket(Bucket="any")
        assert proxy.stats.connections <= AIOHTTP_RESEND  # one try (aiohttp may resend it)


@pytest_asyncio.fixture
async def sftp_server(tmp_path: Path) -> AsyncIterator[Any]:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "streamx-job_1.csv").write_bytes(LANDED)

    def factory(channel: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(channel, chroot=os.fsencode(tmp_path))

    async with asyncssh_sftp_server(tmp_path, factory) as server:
        yield server


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES, ids=[mode.name for mode in MODES])
async def test_sftp_landing_transfer_under_every_network_fault(
    sftp_server: Any, mode: Mode
) -> None:
    async with FaultProxy("127.0.0.1", sftp_server.port) as proxy:
        config = SSHConfig(
            host="127.0.0.1",
            port=proxy.port,
            username=sftp_server.username,
            password=sftp_server.password,
            host_key=sftp_server.host_key,  # pinned: the proxy's port is in no known_hosts
            connect_timeout=0.5,
            keepalive_interval=0.1,  # a silent peer is noticed after ~0.3 s
            keepalive_count_max=2,
        )
        session = SFTPSession(config)
        try:
            source = SFTPSource(
                session,
                "/landing/streamx-job_1.csv",
                policy=SOURCE_POLICY,
                clock=SystemClock(),
                chunk_size=64 * 1024,
            )
            _landing_fault(mode, proxy)
            if mode.fails is None:
                assert await _read_all(source) == LANDED
                assert session.connects == (2 if mode.interrupts else 1)
                return
            with pytest.raises(StreamxError) as raised:
                await _read_all(source)
            assert isinstance(raised.value, NetworkError)  # a timeout or a drop: transient
            assert proxy.stats.connections == SOURCE_POLICY.max_attempts
            assert session.connects == 0
        finally:
            await session.close()
