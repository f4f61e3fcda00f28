"""The Symplify fake follows the statistics export docs."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from sim_helpers import poll_json

from streamx.testing import ManualClock, StaticRows, SymplifyFormat, SymplifySim
from streamx.testing.symplify_sim import EXPORT_TYPES, PERIODS

ROWS = [
    {"eventId": "1", "contactId": "77", "timestamp": 1394636797030, "email": "a@example.com"},
    {"eventId": "2", "contactId": "78", "timestamp": 1394636799710, "email": "b, c@example.com"},
    {"eventId": "3", "contactId": "79", "timestamp": 1394636799999, "email": "Zoë@exempel.se"},
]


class Api:
    """The fake's routes for one customer, with its token."""

    def __init__(self, sim: SymplifySim, session: aiohttp.ClientSession) -> None:
        self.sim, self.session = sim, session
        self.base = f"{sim.base_url}/rest/{sim.customer_id}"
        self.headers = {"X-Carma-Authentication-Token": sim.token}

    async def start(self, body: Any) -> aiohttp.ClientResponse:
        url = f"{self.base}/batches/exports/statistics"
        return await self.session.post(url, data=orjson.dumps(body), headers=self.headers)

    async def started(self, export_type: str = "OPENS", period: str = "LAST_DAY") -> str:
        async with await self.start({"exportType": export_type, "period": period}) as response:
            assert response.status == 200
            return str((await response.json())["batchId"])

    async def batch(self, batch_id: str) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/batches/{batch_id}", headers=self.headers) as r:
            assert r.status == 200
            body: dict[str, Any] = await r.json()
            return body

    async def finished(self, batch_id: str) -> dict[str, Any]:
        return await poll_json(
            self.session,
            f"{self.base}/batches/{batch_id}",
            lambda body: body["status"] != "IN_PROGRESS",
            headers=self.headers,
        )

    async def result_url(self, batch_id: str) -> str:
        url = f"{self.base}/batches/{batch_id}/result/url"
        async with self.session.get(url, headers=self.headers) as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            return await response.text()


@pytest_asyncio.fixture
async def sim(clock: ManualClock) -> AsyncIterator[SymplifySim]:
    async with SymplifySim(provider=StaticRows(ROWS), clock=clock) as running:
        yield running


@pytest.fixture
def api(sim: SymplifySim, session: aiohttp.ClientSession) -> Api:
    return Api(sim, session)


@pytest.mark.asyncio
async def test_documented_example_request_is_accepted(api: Api) -> None:
    async with await api.start({"exportType": "OPENED", "period": "LAST_2_WEEKS"}) as response:
        assert response.status == 200
        body = await response.json()
    assert isinstance(body["batchId"], str) and body["batchId"].isdigit()
    assert api.sim.batch_status(body["batchId"])["status"] == "PENDING"


@pytest.mark.asyncio
async def test_every_documented_value_is_accepted(api: Api) -> None:
    for export_type in EXPORT_TYPES:
        await api.started(export_type, "TODAY")
    for period in PERIODS:
        await api.started("SENT", period)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"exportType": "OPENZ", "period": "TODAY"}, "exportType"),
        ({"exportType": "opens", "period": "TODAY"}, "exportType"),
        ({"exportType": "OPENS", "period": "LAST_MONTH"}, "period"),
        ({"exportType": "OPENS"}, "period"),
        ({"period": "TODAY"}, "exportType"),
        (["OPENS", "TODAY"], "object"),
    ],
)
@pytest.mark.asyncio
async def test_invalid_requests_get_400_with_error(api: Api, body: Any, fragment: str) -> None:
    async with await api.start(body) as response:
        assert response.status == 400
        answer = await response.json()
    assert list(answer) == ["error"]
    assert fragment in answer["error"]


@pytest.mark.asyncio
async def test_body_that_is_not_json_is_400(api: Api) -> None:
    url = f"{api.base}/batches/exports/statistics"
    async with api.session.post(url, data=b"exportType=OPENS", headers=api.headers) as response:
        assert response.status == 400
        assert "error" in await response.json()


@pytest.mark.parametrize("token", [None, "wrong-token"])
@pytest.mark.asyncio
async def test_missing_or_wrong_token_is_401(api: Api, token: str | None) -> None:
    headers = {} if token is None else {"X-Carma-Authentication-Token": token}
    url = f"{api.base}/batches/exports/statistics"
    body = {"exportType": "OPENS", "period": "TODAY"}
    async with api.session.post(url, json=body, headers=headers) as response:
        assert response.status == 401
        assert "error" in await response.json()


@pytest.mark.asyncio
async def test_token_of_another_customer_is_401_and_batches_are_private(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    tokens = {"5004": "token-a", "6000": "token-b"}
    async with SymplifySim(provider=StaticRows(ROWS), clock=clock, tokens=tokens) as sim:
        api = Api(sim, session)
        batch_id = await api.started()
        other = f"{sim.base_url}/rest/6000/batches/{batch_id}"
        async with session.get(other, headers={"X-Carma-Authentication-Token": "token-a"}) as r:
            assert r.status == 401
        async with session.get(other, headers={"X-Carma-Authentication-Token": "token-b"}) as r:
            assert r.status == 404
            assert "error" in await r.json()


@pytest.mark.asyncio
async def test_batch_moves_pending_in_progress_finished(api: Api, clock: ManualClock) -> None:
    batch_id = await api.started()
    pending = await api.batch(batch_id)
    assert pending["status"] == "PENDING"
    assert (pending["affected"], pending["processed"], pending["total"]) == (0, 0, 0)
    assert pending["endTime"] is None
    assert pending["id"] == int(batch_id)
    assert pending["type"] == "STAT_EXPORT"
    assert pending["customerId"] == 5004
    clock.advance(api.sim.timings.pending_s)
    await poll_json(
        api.session,
        f"{api.base}/batches/{batch_id}",
        lambda body: body["total"] == len(ROWS),
        headers=api.headers,
    )
    midway = await api.batch(batch_id)
    assert midway["status"] == "IN_PROGRESS"
    assert midway["processed"] < midway["total"]
    clock.advance(api.sim.timings.in_progress_s / 2)
    later = await api.batch(batch_id)
    assert midway["processed"] <= later["processed"] < later["total"]
    clock.advance(api.sim.timings.in_progress_s)
    done = await api.finished(batch_id)
    assert done["status"] == "FINISHED"
    assert (done["affected"], done["processed"], done["total"]) == (3, 3, 3)
    assert done["endTime"] >= done["startTime"]


@pytest.mark.asyncio
async def test_result_url_is_text_plain_and_serves_a_json_array(
    api: Api, clock: ManualClock
) -> None:
    batch_id = await api.started()
    clock.advance(10)
    await api.finished(batch_id)
    url = await api.result_url(batch_id)
    assert f"/result/5004/{batch_id}_result.json?Expires=" in url
    async with api.session.get(url) as response:
        assert response.status == 200
        assert orjson.loads(await response.read()) == ROWS


@pytest.mark.asyncio
async def test_result_url_refuses_a_json_only_accept_header(api: Api, clock: ManualClock) -> None:
    batch_id = await api.started()
    clock.advance(10)
    await api.finished(batch_id)
    url = f"{api.base}/batches/{batch_id}/result/url"
    headers = {**api.headers, "Accept": "application/json"}
    async with api.session.get(url, headers=headers) as response:
        assert response.status == 406


@pytest.mark.asyncio
async def test_result_before_finished_and_unknown_batch_are_404(api: Api) -> None:
    batch_id = await api.started()
    for path in (f"batches/{batch_id}/result/url", "batches/999/result/url", "batches/999"):
        async with api.session.get(f"{api.base}/{path}", headers=api.headers) as response:
            assert response.status == 404
            assert "error" in await response.json()


@pytest.mark.asyncio
async def test_result_redirects_to_the_object(api: Api, clock: ManualClock) -> None:
    batch_id = await api.started()
    clock.advance(10)
    await api.finished(batch_id)
    url = f"{api.base}/batches/{batch_id}/result"
    async with api.session.get(url, headers=api.headers, allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(f"{api.sim.store.base_url}/result/5004/{batch_id}_result.json?")
    async with api.session.get(url, headers=api.headers) as response:
        assert orjson.loads(await response.read()) == ROWS


@pytest.mark.parametrize(
    ("fmt", "decode"),
    [
        (SymplifyFormat("jsonl", gzip=True), lambda data: [
            orjson.loads(line) for line in gzip.decompress(data).splitlines()]),
        (SymplifyFormat("csv"), lambda data: list(csv.DictReader(io.StringIO(data.decode())))),
    ],
)  # fmt: skip
@pytest.mark.asyncio
async def test_provider_chooses_the_encoding(
    clock: ManualClock, session: aiohttp.ClientSession, fmt: SymplifyFormat, decode: Any
) -> None:
    async with SymplifySim(provider=StaticRows(ROWS, symplify=fmt), clock=clock) as sim:
        api = Api(sim, session)
        batch_id = await api.started()
        clock.advance(10)
        await api.finished(batch_id)
        async with session.get(await api.result_url(batch_id)) as response:
            rows = decode(await response.read())
    expected = ROWS if fmt.encoding != "csv" else [
        {key: str(value) for key, value in row.items()} for row in ROWS]  # fmt: skip
    assert rows == expected


@pytest.mark.asyncio
async def test_url_lifetime_is_configurable(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    async with SymplifySim(provider=StaticRows(ROWS), clock=clock, url_ttl_s=2) as sim:
        api = Api(sim, session)
        batch_id = await api.started()
        clock.advance(10)
        await api.finished(batch_id)
        url = await api.result_url(batch_id)
        clock.advance(3)
        async with session.get(url) as response:
            assert response.status == 403
            assert "Request has expired" in await response.text()
        async with session.get(await api.result_url(batch_id)) as response:
            assert response.status == 200
