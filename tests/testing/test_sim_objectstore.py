"""The presigned object store behaves like S3: expiry, signature, Range, ETag, HEAD."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest
import pytest_asyncio

from streamx.testing import ManualClock, ObjectStore
from streamx.testing.faults import ROUTE_OBJECT_GET, Faults

KEY = "result/5004/3232465_result.json"
BODY = bytes(range(256)) * 40  # 10240 bytes


@pytest_asyncio.fixture
async def store(clock: ManualClock) -> AsyncIterator[ObjectStore]:
    async with ObjectStore(clock=clock) as running:
        running.put_bytes(KEY, BODY, content_type="application/json")
        yield running


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.asyncio
async def test_presigned_url_has_the_documented_shape(store: ObjectStore) -> None:
    url = store.presign(KEY, expires_in=60)
    parts = urlsplit(url)
    assert parts.path == "/result/5004/3232465_result.json"
    assert set(parse_qs(parts.query)) == {"Expires", "AWSAccessKeyId", "Signature"}


@pytest.mark.asyncio
async def test_get_serves_the_object_with_md5_etag(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    async with session.get(store.presign(KEY)) as response:
        assert response.status == 200
        assert await response.read() == BODY
        assert response.headers["ETag"] == f'"{hashlib.md5(BODY).hexdigest()}"'
        assert response.headers["Content-Length"] == str(len(BODY))
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Content-Type"] == "application/json"


@pytest.mark.asyncio
async def test_expired_url_is_rejected_like_s3(
    store: ObjectStore, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    url = store.presign(KEY, expires_in=30)
    clock.advance(31)
    async with session.get(url) as response:
        assert response.status == 403
        text = await response.text()
    assert "<Code>AccessDenied</Code>" in text
    assert "<Message>Request has expired</Message>" in text
    async with session.get(store.presign(KEY, expires_in=30)) as response:
        assert response.status == 200


@pytest.mark.asyncio
async def test_url_expiring_mid_download_finishes_but_cannot_resume(
    store: ObjectStore, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """S3 checks Expires when a request starts: the running GET completes, a resume fails."""
    url = store.presign(KEY, expires_in=5)
    async with session.get(url) as response:
        first = await response.content.readexactly(1000)
        clock.advance(10)
        rest = await response.read()
    assert first + rest == BODY
    async with session.get(url, headers={"Range": "bytes=1000-"}) as response:
        assert response.status == 403
        assert "Request has expired" in await response.text()


@pytest.mark.parametrize(
    "change",
    [
        {"Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
        {"Expires": "9999999999"},
    ],
)
@pytest.mark.asyncio
async def test_tampered_query_fails_the_signature(
    store: ObjectStore, session: aiohttp.ClientSession, change: dict[str, str]
) -> None:
    url = _with_query(store.presign(KEY), **change)
    async with session.get(url) as response:
        assert response.status == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in await response.text()


@pytest.mark.asyncio
async def test_signature_covers_the_key(store: ObjectStore, session: aiohttp.ClientSession) -> None:
    store.put_bytes("result/5004/other_result.json", b"[]")
    url = store.presign(KEY).replace("3232465_result.json", "other_result.json")
    async with session.get(url) as response:
        assert response.status == 403
        assert "SignatureDoesNotMatch" in await response.text()


@pytest.mark.asyncio
async def test_missing_query_auth_and_unknown_key_id(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{store.base_url}/{KEY}") as response:
        assert response.status == 403
        assert "<Code>AccessDenied</Code>" in await response.text()
    async with session.get(_with_query(store.presign(KEY), AWSAccessKeyId="AKIAOTHER")) as response:
        assert response.status == 403
        assert "<Code>InvalidAccessKeyId</Code>" in await response.text()


@pytest.mark.asyncio
async def test_unknown_object_is_no_such_key(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    async with session.get(store.presign("result/5004/none_result.json")) as response:
        assert response.status == 404
        assert "<Code>NoSuchKey</Code>" in await response.text()


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=100-", 100, len(BODY) - 1), ("bytes=10-19", 10, 19), ("bytes=-5", len(BODY) - 5,
     len(BODY) - 1), ("bytes=10000-999999", 10000, len(BODY) - 1)],
)  # fmt: skip
@pytest.mark.asyncio
async def test_range_gives_206_with_content_range(
    store: ObjectStore, session: aiohttp.ClientSession, header: str, start: int, end: int
) -> None:
    async with session.get(store.presign(KEY), headers={"Range": header}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
        assert await response.read() == BODY[start : end + 1]


@pytest.mark.asyncio
async def test_range_beyond_the_end_is_416(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    async with session.get(store.presign(KEY), headers={"Range": "bytes=20000-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{len(BODY)}"
        assert "<Code>InvalidRange</Code>" in await response.text()


@pytest.mark.asyncio
async def test_if_match_fails_once_the_object_changed(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    url = store.presign(KEY)
    async with session.get(url, headers={"Range": "bytes=0-99"}) as response:
        etag = response.headers["ETag"]
    headers = {"Range": "bytes=100-", "If-Match": etag}
    async with session.get(url, headers=headers) as response:
        assert response.status == 206
        assert await response.read() == BODY[100:]
    store.put_bytes(KEY, BODY[::-1])
    async with session.get(url, headers=headers) as response:
        assert response.status == 412
        assert "<Code>PreconditionFailed</Code>" in await response.text()
    current = store.get(KEY)
    assert current is not None and current.etag != etag
    async with session.get(url, headers={"If-None-Match": current.etag}) as response:
        assert response.status == 304


@pytest.mark.asyncio
async def test_head_needs_a_head_signature(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    async with session.head(store.presign(KEY, method="HEAD")) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(BODY))
        assert response.headers["ETag"] == f'"{hashlib.md5(BODY).hexdigest()}"'
        assert await response.read() == b""
    async with session.head(store.presign(KEY)) as response:
        assert response.status == 403


@pytest.mark.asyncio
async def test_large_object_is_streamed_from_a_generator(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    block = os.urandom(1 << 20)
    store.put_chunks("big", (block for _ in range(12)))
    digest = hashlib.md5()
    size = 0
    async with session.get(store.presign("big")) as response:
        async for piece in response.content.iter_chunked(1 << 16):
            digest.update(piece)
            size += len(piece)
    assert size == 12 << 20
    assert digest.hexdigest() == hashlib.md5(block * 12).hexdigest()


@pytest.mark.asyncio
async def test_expire_url_fault_rejects_a_valid_url_once(
    store: ObjectStore, session: aiohttp.ClientSession
) -> None:
    store.faults.push(ROUTE_OBJECT_GET, Faults(expire_url=True))
    url = store.presign(KEY)
    async with session.get(url) as response:
        assert response.status == 403
        assert "Request has expired" in await response.text()
    async with session.get(url) as response:
        assert response.status == 200
