"""Every fault knob is observable with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import zlib
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import pytest_asyncio
from sim_helpers import poll_json, read_until_error

from streamx.testing import FaultPlan, Faults, ManualClock, StaticRows, SymplifySim, http_date
from streamx.testing.faults import (
    ROUTE_OBJECT_GET,
    ROUTE_SYMPLIFY_BATCH,
    ROUTE_SYMPLIFY_RESULT_URL,
    ROUTE_SYMPLIFY_START,
)

ROWS = [{"eventId": str(n), "contactId": str(1000 + n), "timestamp": n} for n in range(3000)]
START = {"exportType": "OPENS", "period": "LAST_DAY"}
TOKENS = {"5004": "token-a", "6000": "token-b"}


@pytest_asyncio.fixture
async def sim(clock: ManualClock) -> AsyncIterator[SymplifySim]:
    async with SymplifySim(provider=StaticRows(ROWS), clock=clock, tokens=TOKENS) as running:
        yield running


def _url(sim: SymplifySim, customer: str, path: str) -> str:
    return f"{sim.base_url}/rest/{customer}/{path}"


def _auth(customer: str = "5004") -> dict[str, str]:
    return {"X-Carma-Authentication-Token": TOKENS[customer]}


async def _start(
    sim: SymplifySim, session: aiohttp.ClientSession, customer: str = "5004"
) -> aiohttp.ClientResponse:
    url = _url(sim, customer, "batches/exports/statistics")
    return await session.post(url, json=START, headers=_auth(customer))


async def _finished_url(
    sim: SymplifySim, session: aiohttp.ClientSession, clock: ManualClock
) -> tuple[str, bytes]:
    """A finished batch's result URL and the complete file it serves."""
    async with await _start(sim, session) as response:
        batch_id = (await response.json())["batchId"]
    clock.advance(10)
    batch_url = _url(sim, "5004", f"batches/{batch_id}")
    await poll_json(session, batch_url, lambda b: b["status"] == "FINISHED", headers=_auth())
    async with session.get(f"{batch_url}/result/url", headers=_auth()) as response:
        url = await response.text()
    async with session.get(url) as response:
        return url, await response.read()


@pytest.mark.parametrize("retry_after", ["0", "7", http_date(1_900_000_000)])
@pytest.mark.asyncio
async def test_429_with_retry_after_then_recovery(
    sim: SymplifySim, session: aiohttp.ClientSession, retry_after: str
) -> None:
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(status=429, retry_after=retry_after))
    async with await _start(sim, session) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == retry_after
        assert "error" in await response.json()
    async with await _start(sim, session) as response:
        assert response.status == 200


def test_http_date_is_rfc_7231() -> None:
    parsed = email.utils.parsedate_to_datetime(http_date(1_900_000_000))
    assert parsed.timestamp() == 1_900_000_000
    assert http_date(0).endswith(" GMT")


@pytest.mark.asyncio
async def test_next_two_polls_get_503(sim: SymplifySim, session: aiohttp.ClientSession) -> None:
    async with await _start(sim, session) as response:
        batch_id = (await response.json())["batchId"]
    sim.faults.push(ROUTE_SYMPLIFY_BATCH, Faults(status=503), times=2)
    statuses = []
    for _ in range(3):
        async with session.get(_url(sim, "5004", f"batches/{batch_id}"), headers=_auth()) as r:
            statuses.append(r.status)
    assert statuses == [503, 503, 200]
    assert sim.faults.pending(ROUTE_SYMPLIFY_BATCH) == 0


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.asyncio
async def test_server_errors(sim: SymplifySim, session: aiohttp.ClientSession, status: int) -> None:
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(status=status))
    async with await _start(sim, session) as response:
        assert response.status == status


@pytest.mark.asyncio
async def test_account_faults_touch_only_that_account(
    sim: SymplifySim, session: aiohttp.ClientSession
) -> None:
    sim.faults.set_account("6000", Faults(status=503))
    for _ in range(2):
        async with await _start(sim, session, "6000") as response:
            assert response.status == 503
        async with await _start(sim, session, "5004") as response:
            assert response.status == 200
    sim.faults.set_account("6000", None)
    async with await _start(sim, session, "6000") as response:
        assert response.status == 200


@pytest.mark.asyncio
async def test_account_faults_can_target_one_route(
    sim: SymplifySim, session: aiohttp.ClientSession
) -> None:
    sim.faults.set_account("5004", Faults(status=429, retry_after="1"), route=ROUTE_SYMPLIFY_BATCH)
    async with await _start(sim, session) as response:
        assert response.status == 200
        batch_id = (await response.json())["batchId"]
    async with session.get(_url(sim, "5004", f"batches/{batch_id}"), headers=_auth()) as r:
        assert r.status == 429


@pytest.mark.asyncio
async def test_one_shot_fault_for_one_account_waits_for_it(
    sim: SymplifySim, session: aiohttp.ClientSession
) -> None:
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(status=500), account="6000")
    async with await _start(sim, session, "5004") as response:
        assert response.status == 200
    async with await _start(sim, session, "6000") as response:
        assert response.status == 500


@pytest.mark.asyncio
async def test_unknown_route_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault route"):
        FaultPlan().push("symplify.nope", Faults(status=500))


@pytest.mark.asyncio
async def test_stall_before_headers_times_a_client_out(
    sim: SymplifySim, session: aiohttp.ClientSession
) -> None:
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(stall_s=2.0))
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    url = _url(sim, "5004", "batches/exports/statistics")
    with pytest.raises(asyncio.TimeoutError):
        await session.post(url, json=START, headers=_auth(), timeout=timeout)


@pytest.mark.asyncio
async def test_stall_mid_body(
    sim: SymplifySim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    url, full = await _finished_url(sim, session, clock)
    sim.faults.push(ROUTE_OBJECT_GET, Faults(stall_s=2.0, stall_after_bytes=1000))
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    async with session.get(url, timeout=timeout) as response:
        assert response.status == 200
        received, error = await read_until_error(response)
    assert isinstance(error, asyncio.TimeoutError)
    assert received == full[:1000]


@pytest.mark.asyncio
async def test_connection_reset_after_n_bytes(
    sim: SymplifySim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    url, full = await _finished_url(sim, session, clock)
    sim.faults.push(ROUTE_OBJECT_GET, Faults(reset_after_bytes=5000))
    async with session.get(url) as response:
        assert response.headers["Content-Length"] == str(len(full))
        received, error = await read_until_error(response)
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert received == full[:5000]
    async with session.get(url, headers={"Range": "bytes=5000-"}) as response:
        assert received + await response.read() == full


@pytest.mark.asyncio
async def test_truncated_gzip_has_an_honest_content_length(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    from streamx.testing import SymplifyFormat

    provider = StaticRows(ROWS, symplify=SymplifyFormat("json_array", gzip=True))
    async with SymplifySim(provider=provider, clock=clock, tokens=TOKENS) as sim:
        url, full = await _finished_url(sim, session, clock)
        assert orjson.loads(gzip.decompress(full)) == ROWS
        sim.faults.push(ROUTE_OBJECT_GET, Faults(truncate_at=len(full) // 2))
        async with session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(full) // 2)
            cut = await response.read()
    assert cut == full[: len(full) // 2]
    decompressor = zlib.decompressobj(31)
    decompressor.decompress(cut)
    assert not decompressor.eof


@pytest.mark.asyncio
async def test_content_length_that_lies(
    sim: SymplifySim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    url, full = await _finished_url(sim, session, clock)
    sim.faults.push(ROUTE_OBJECT_GET, Faults(content_length_excess=100))
    async with session.get(url) as response:
        assert response.headers["Content-Length"] == str(len(full) + 100)
        received, error = await read_until_error(response)
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert received == full


@pytest.mark.asyncio
async def test_trickle_sends_small_pieces(
    sim: SymplifySim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    url, full = await _finished_url(sim, session, clock)
    sim.faults.push(ROUTE_OBJECT_GET, Faults(trickle_bps=20_000))
    pieces = []
    async with session.get(url, headers={"Range": "bytes=0-4999"}) as response:
        async for piece in response.content.iter_any():
            pieces.append(piece)
    assert b"".join(pieces) == full[:5000]
    assert len(pieces) >= 3  # 1000-byte writes 50 ms apart, not one 5000-byte write
    assert max(map(len, pieces)) < 5000


@pytest.mark.asyncio
async def test_expired_url_fault_on_the_result_url(
    sim: SymplifySim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    url, full = await _finished_url(sim, session, clock)
    batch_path = url.split("/result/5004/")[1].split("_")[0]
    sim.faults.push(ROUTE_SYMPLIFY_RESULT_URL, Faults(expire_url=True))
    result_url = _url(sim, "5004", f"batches/{batch_path}/result/url")
    async with session.get(result_url, headers=_auth()) as response:
        expired = await response.text()
    async with session.get(expired) as response:
        assert response.status == 403
        assert "Request has expired" in await response.text()
    async with session.get(result_url, headers=_auth()) as response:
        fresh = await response.text()
    async with session.get(fresh) as response:
        assert await response.read() == full


@pytest.mark.asyncio
async def test_job_failed_and_never_finishing_batches(
    sim: SymplifySim, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(job_failed="disk full"))
    sim.faults.push(ROUTE_SYMPLIFY_START, Faults(never_finish=True))
    ids = []
    for _ in range(2):
        async with await _start(sim, session) as response:
            ids.append((await response.json())["batchId"])
    clock.advance(3600)
    await asyncio.sleep(0.2)  # let the result files be written: they must not change the outcome
    failed = await poll_json(
        session, _url(sim, "5004", f"batches/{ids[0]}"), lambda b: True, headers=_auth()
    )
    endless = await poll_json(
        session, _url(sim, "5004", f"batches/{ids[1]}"), lambda b: True, headers=_auth()
    )
    assert failed["status"] == "ERROR"
    assert endless["status"] == "IN_PROGRESS"
    assert endless["processed"] < endless["total"]
    async with session.get(
        _url(sim, "5004", f"batches/{ids[0]}/result/url"), headers=_auth()
    ) as response:
        assert response.status == 404
