"""S3 landing-zone source against a real moto server: listing, streaming, resume, ETag pinning."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from fixtures.servers import CuttingProxy

from streamx.engine.backoff import Backoff
from streamx.engine.clock import FakeClock
from streamx.engine.errors import ObjectChangedError, RequestRejectedError
from streamx.engine.retry import RetryPolicy
from streamx.s3 import S3Config, open_client
from streamx.sources.s3 import S3Source, list_objects

KiB = 1024
MiB = 1024 * KiB
DATA = os.urandom(4 * MiB + 123)


def source(client: Any, bucket: str, key: str, **options: Any) -> S3Source:
    settings: dict[str, Any] = {
        "policy": RetryPolicy(backoff=Backoff(base=0.5, cap=2.0), max_attempts=4),
        "clock": FakeClock(),
        "rng": random.Random(0),
        "chunk_size": 256 * KiB,
        "vendor": "cordial",
        "account": "acme",
        "export_id": "j9",
        **options,
    }
    return S3Source(client, bucket, key, **settings)


async def collect(src: S3Source) -> tuple[bytes, list[int]]:
    got = bytearray()
    sizes = []
    start = src.offset
    async for data in src:
        got += data
        sizes.append(len(data))
        assert src.offset == start + len(got)
    return bytes(got), sizes


@pytest_asyncio.fixture
async def stored(s3_client: Any, bucket: str) -> str:
    await s3_client.put_object(Bucket=bucket, Key="landing/export_1.csv", Body=DATA)
    return bucket


@pytest.mark.asyncio
async def test_listing_is_paginated_and_skips_folder_markers(s3_client: Any, bucket: str) -> None:
    keys = [f"landing/job-7/acts_{n:02d}.csv.gz" for n in range(1, 26)]
    for number, key in enumerate(keys):
        await s3_client.put_object(Bucket=bucket, Key=key, Body=b"x" * number)
    await s3_client.put_object(Bucket=bucket, Key="landing/job-7/", Body=b"")
    await s3_client.put_object(Bucket=bucket, Key="landing/job-8/other.csv", Body=b"y")
    listed = [item async for item in list_objects(s3_client, bucket, "landing/job-7/", page_size=7)]
    assert [item.key for item in listed] == keys
    assert [item.size for item in listed] == list(range(25))
    assert all(item.etag.startswith('"') for item in listed)


@pytest.mark.asyncio
async def test_streams_the_object_in_bounded_chunks(s3_client: Any, stored: str) -> None:
    src = source(s3_client, stored, "landing/export_1.csv")
    got, sizes = await collect(src)
    assert got == DATA
    assert max(sizes) <= 256 * KiB
    assert (src.total, src.offset, src.resumes) == (len(DATA), len(DATA), 0)
    assert src.etag is not None and src.etag.startswith('"')


@pytest.mark.asyncio
async def test_resume_at_an_offset_reads_exactly_the_rest(s3_client: Any, stored: str) -> None:
    first = source(s3_client, stored, "landing/export_1.csv")
    etag = None
    async for _ in first:
        etag = first.etag
        break
    for offset in (1, 3 * MiB + 7, len(DATA) - 1, len(DATA)):
        src = source(
            s3_client, stored, "landing/export_1.csv", start_offset=offset, expected_etag=etag
        )
        got, _ = await collect(src)
        assert got == DATA[offset:]
        assert src.offset == src.total == len(DATA)


@pytest.mark.asyncio
async def test_a_replaced_object_is_refused_on_resume(s3_client: Any, stored: str) -> None:
    head = await s3_client.head_object(Bucket=stored, Key="landing/export_1.csv")
    await s3_client.put_object(Bucket=stored, Key="landing/export_1.csv", Body=b"new" * 1000)
    src = source(
        s3_client, stored, "landing/export_1.csv", start_offset=10, expected_etag=head["ETag"]
    )
    with pytest.raises(ObjectChangedError) as info:
        await collect(src)
    message = str(info.value)
    assert f"s3://{stored}/landing/export_1.csv" in message
    assert "changed" in message
    assert "export=j9" in message


@pytest.mark.asyncio
async def test_missing_object_is_a_permanent_error(s3_client: Any, bucket: str) -> None:
    with pytest.raises(RequestRejectedError, match=r"HTTP 404.*NoSuchKey"):
        await collect(source(s3_client, bucket, "landing/nope.csv"))


@pytest_asyncio.fixture
async def proxied(s3_config: S3Config) -> AsyncIterator[tuple[CuttingProxy, Any]]:
    """A client whose connections go through a proxy that can cut them mid-body."""
    port = int(s3_config.endpoint_url.rsplit(":", 1)[1])  # type: ignore[union-attr]
    proxy = CuttingProxy(port)
    async with proxy, open_client(replace(s3_config, endpoint_url=proxy.endpoint)) as client:
        yield proxy, client


@pytest.mark.asyncio
async def test_dropped_connections_resume_with_range(
    s3_client: Any, stored: str, proxied: tuple[CuttingProxy, Any]
) -> None:
    proxy, client = proxied
    proxy.cut_after, proxy.cuts_left = MiB, 3  # three drops, each after ~1 MiB of response
    src = source(client, stored, "landing/export_1.csv")
    got, _ = await collect(src)
    assert got == DATA
    assert proxy.cuts == 3
    assert src.resumes == 3


@pytest.mark.asyncio
async def test_object_replaced_between_drop_and_resume(
    s3_client: Any, stored: str, proxied: tuple[CuttingProxy, Any]
) -> None:
    proxy, client = proxied
    proxy.cut_after, proxy.cuts_left = MiB, 1
    src = source(client, stored, "landing/export_1.csv")
    with pytest.raises(ObjectChangedError, match="restart"):
        async for data in src:
            if src.offset == len(data):  # right after the first chunk: replace the object
                await s3_client.put_object(
                    Bucket=stored, Key="landing/export_1.csv", Body=b"replaced"
                )
    assert proxy.cuts == 1
    assert 0 < src.offset < len(DATA)
