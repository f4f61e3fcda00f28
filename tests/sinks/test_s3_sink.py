"""S3 sink against a real moto server: streaming multipart uploads, flat memory, clean aborts."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from streamx.exceptions import ConfigError, SinkError
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.publish import OutputOptions, Publisher
from streamx.s3 import S3Config, error_code
from streamx.sinks.s3 import S3PartUpload, S3Sink

MiB = 1024 * 1024
PART = 5 * MiB
BLOCK = os.urandom(MiB)


def chunk(index: int, size: int = MiB) -> bytes:
    """A distinct, deterministic chunk (its index up front), so order and content are checked."""
    return index.to_bytes(8, "big") + BLOCK[8:size]


def expected_digest(count: int, size: int = MiB) -> str:
    digest = hashlib.sha256()
    for index in range(count):
        digest.update(chunk(index, size))
    return digest.hexdigest()


async def stored_digest(client: Any, bucket: str, key: str) -> tuple[str, int, str]:
    """sha256, size and ETag of a stored object, streamed (never read whole)."""
    answer = await client.get_object(Bucket=bucket, Key=key)
    digest, size = hashlib.sha256(), 0
    async with answer["Body"] as body:
        while data := await body.content.read(MiB):
            digest.update(data)
            size += len(data)
    return digest.hexdigest(), size, answer["ETag"]


async def open_uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    return list((await client.list_multipart_uploads(Bucket=bucket)).get("Uploads", []))


async def exists(client: Any, bucket: str, key: str) -> bool:
    try:
        await client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


async def upload_measured(upload: S3PartUpload, count: int) -> int:
    """Write ``count`` MiB through ``upload`` and commit; the peak of traced memory growth."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    for index in range(count):
        await upload.write(chunk(index))
    await upload.commit()
    return tracemalloc.get_traced_memory()[1] - base


@pytest.mark.asyncio
async def test_large_upload_with_small_parts_keeps_memory_flat(s3_client: Any, bucket: str) -> None:
    sink = S3Sink(bucket, "exports", client=s3_client, part_size=PART, parts_in_flight=2)
    peaks = {}
    tracemalloc.start()
    try:
        for count in (32, 96):
            upload = await sink.open(f"big-{count}.bin")
            peaks[count] = await upload_measured(upload, count)
    finally:
        tracemalloc.stop()
    # Two part buffers in flight plus a small constant, whatever the object's size.
    assert peaks[96] <= PART * 2 + 4 * MiB, peaks
    assert peaks[96] <= peaks[32] + MiB, peaks
    for count in (32, 96):
        digest, size, etag = await stored_digest(s3_client, bucket, f"exports/big-{count}.bin")
        assert (digest, size) == (expected_digest(count), count * MiB)
        assert etag.strip('"').endswith(f"-{-(-count * MiB // PART)}")  # one part per 5 MiB
    assert await open_uploads(s3_client, bucket) == []


@pytest.mark.asyncio
async def test_parts_are_invisible_until_commit(s3_client: Any, bucket: str) -> None:
    sink = S3Sink(bucket, client=s3_client, part_size=PART)
    upload = await sink.open("a/b/data.bin")
    for index in range(12):
        await upload.write(chunk(index))
    await upload.finish()
    assert upload.upload_id is not None
    assert not await exists(s3_client, bucket, "a/b/data.bin")
    assert [item["Key"] for item in await open_uploads(s3_client, bucket)] == ["a/b/data.bin"]
    await upload.commit()
    with pytest.raises(SinkError, match="upload committed"):
        await upload.commit()
    digest, size, _ = await stored_digest(s3_client, bucket, "a/b/data.bin")
    assert (digest, size) == (expected_digest(12), 12 * MiB)
    assert await open_uploads(s3_client, bucket) == []
    await upload.abort()  # a no-op after commit
    assert await exists(s3_client, bucket, "a/b/data.bin")


@pytest.mark.asyncio
async def test_small_object_committed_directly_is_one_put(s3_client: Any, bucket: str) -> None:
    sink = S3Sink(bucket, "p", client=s3_client)
    upload = await sink.open("manifest.json")
    await upload.write(b'{"a": ')
    await upload.write(b"1}")
    assert not await exists(s3_client, bucket, "p/manifest.json")
    await upload.commit()
    assert upload.upload_id is None  # never a multipart upload
    answer = await s3_client.get_object(Bucket=bucket, Key="p/manifest.json")
    assert await answer["Body"].read() == b'{"a": 1}'
    assert "-" not in answer["ETag"]
    empty = await sink.open("empty")
    await empty.finish()
    await empty.commit()
    answer = await s3_client.get_object(Bucket=bucket, Key="p/empty")
    assert await answer["Body"].read() == b""
    assert await open_uploads(s3_client, bucket) == []


@pytest.mark.asyncio
async def test_finished_small_object_releases_its_bytes_as_a_one_part_upload(
    s3_client: Any, bucket: str
) -> None:
    sink = S3Sink(bucket, client=s3_client)
    upload = await sink.open("small.txt")
    await upload.write(b"hello ")
    await upload.write(b"world")
    await upload.finish()
    assert upload.upload_id is not None
    assert not await exists(s3_client, bucket, "small.txt")
    await upload.commit()
    answer = await s3_client.get_object(Bucket=bucket, Key="small.txt")
    assert await answer["Body"].read() == b"hello world"
    assert answer["ETag"].strip('"').endswith("-1")


@pytest.mark.asyncio
async def test_commit_replaces_an_existing_object(s3_client: Any, bucket: str) -> None:
    await s3_client.put_object(Bucket=bucket, Key="out.bin", Body=b"old contents")
    sink = S3Sink(bucket, client=s3_client, part_size=PART)
    upload = await sink.open("out.bin")
    for index in range(6):
        await upload.write(chunk(index))
    await upload.finish()
    answer = await s3_client.get_object(Bucket=bucket, Key="out.bin")
    assert await answer["Body"].read() == b"old contents"  # still the old one until commit
    await upload.commit()
    digest, _, _ = await stored_digest(s3_client, bucket, "out.bin")
    assert digest == expected_digest(6)


async def failing_source(count: int) -> AsyncIterator[bytes]:
    for index in range(count):
        yield chunk(index)
    raise OSError("source connection reset")


@pytest.mark.asyncio
async def test_source_failure_mid_upload_leaves_no_object_and_no_upload(
    s3_client: Any, bucket: str
) -> None:
    sink = S3Sink(bucket, client=s3_client, part_size=PART, parts_in_flight=3)
    upload = await sink.open("broken.bin")
    with pytest.raises(OSError, match="source connection reset"):
        try:
            async for data in failing_source(17):
                await upload.write(data)
            await upload.commit()
        except BaseException:
            await upload.abort()
            raise
    assert upload.upload_id is not None  # parts had gone up before the failure
    assert await open_uploads(s3_client, bucket) == []
    assert not await exists(s3_client, bucket, "broken.bin")
    with pytest.raises(SinkError, match="upload aborted"):
        await upload.write(b"more")


@pytest.mark.asyncio
async def test_cancelled_upload_aborts_itself(s3_client: Any, bucket: str) -> None:
    sink = S3Sink(bucket, client=s3_client, part_size=PART, parts_in_flight=2)
    upload = await sink.open("cancelled.bin")
    started = asyncio.Event()

    async def produce() -> None:
        for index in range(1000):
            await upload.write(chunk(index))
            if index == 12:
                started.set()

    task = asyncio.create_task(produce())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Nobody called abort(): the upload aborted itself when its write was cancelled.
    assert await open_uploads(s3_client, bucket) == []
    assert not await exists(s3_client, bucket, "cancelled.bin")
    with pytest.raises(SinkError):
        await upload.commit()


@pytest.mark.asyncio
async def test_server_side_failure_is_a_sink_error_and_aborts(
    s3_config: S3Config, s3_client: Any, bucket: str
) -> None:
    # One attempt per request: moto's 500 below would otherwise be retried with backoff.
    config = replace(s3_config, max_attempts=1)
    sink = S3Sink(bucket, config=config, part_size=PART, parts_in_flight=1)
    upload = await sink.open("victim.bin")
    for index in range(6):  # one 5 MiB part sent, 1 MiB buffered
        await upload.write(chunk(index))
    assert upload.upload_id is not None
    # The upload disappears server-side (as after a lifecycle rule): the next part must fail.
    await s3_client.abort_multipart_upload(
        Bucket=bucket, Key="victim.bin", UploadId=upload.upload_id
    )
    with pytest.raises(SinkError) as info:
        for index in range(6, 20):
            await upload.write(chunk(index))
        await upload.commit()
    # (moto answers a part for a vanished upload with a 500; AWS says NoSuchUpload.)
    assert f"cannot upload part 2 of s3://{bucket}/victim.bin: " in str(info.value)
    assert await open_uploads(s3_client, bucket) == []
    assert not await exists(s3_client, bucket, "victim.bin")
    await sink.close()


@pytest.mark.asyncio
async def test_missing_bucket_is_a_clear_sink_error(s3_client: Any) -> None:
    sink = S3Sink("no-such-bucket-here", "x", client=s3_client)
    upload = await sink.open("file.json")
    await upload.write(b"{}")
    with pytest.raises(SinkError, match=r"s3://no-such-bucket-here/x/file\.json: NoSuchBucket"):
        await upload.commit()


CTX = ExportContext(source="cordial", stream="cordial.contacts", account="acme", export_id="j1")


@pytest.mark.asyncio
async def test_publisher_commits_parts_then_manifest_to_s3(s3_config: S3Config) -> None:
    sink = S3Sink("out", "lake", config=s3_config, part_size=PART)
    client = await sink._get_client()
    await client.create_bucket(Bucket="out")
    options = OutputOptions(compression="none", max_records_per_part=400)
    records = [{"record_id": str(n), "payload": "x" * 2000} for n in range(1000)]
    async with Publisher(sink, CTX, options, dt="2024-05-01") as publisher:
        publisher.count_source_file("contacts.csv", rows_read=1000, bytes_read=1)
        await publisher.write_records(records)
        manifest = await publisher.commit()
    listed = await client.list_objects_v2(Bucket="out", Prefix="lake/")
    keys = sorted(item["Key"] for item in listed["Contents"])
    base = "lake/cordial/cordial.contacts/dt=2024-05-01/acme-j1"
    parts = [f"{base}-part-{n:05d}.jsonl" for n in range(3)]
    assert keys == sorted([*parts, f"{base}.manifest.json"])
    stored = await client.get_object(Bucket="out", Key=f"{base}.manifest.json")
    assert Manifest.from_json(await stored["Body"].read()) == manifest
    assert [info.records for info in manifest.parts] == [400, 400, 200]
    for info in manifest.parts:
        digest, size, _ = await stored_digest(client, "out", f"lake/{info.path}")
        assert (digest, size) == (info.sha256, info.bytes)
    assert await open_uploads(client, "out") == []
    await sink.close()


@pytest.mark.asyncio
async def test_failed_publisher_leaves_nothing_in_s3(s3_client: Any, bucket: str) -> None:
    sink = S3Sink(bucket, client=s3_client, part_size=PART)
    options = OutputOptions(compression="none", max_bytes_per_part=6 * MiB)
    big = [{"record_id": str(n), "payload": "y" * 4000} for n in range(4000)]
    with pytest.raises(RuntimeError, match="parser failed"):
        async with Publisher(sink, CTX, options, dt="2024-05-01") as publisher:
            await publisher.write_records(big)  # ~16 MiB: parts finished, uploads open
            assert await open_uploads(s3_client, bucket) != []
            raise RuntimeError("parser failed")
    assert await open_uploads(s3_client, bucket) == []
    listed = await s3_client.list_objects_v2(Bucket=bucket)
    assert listed.get("Contents", []) == []


def test_configuration_is_checked_and_secrets_stay_hidden() -> None:
    with pytest.raises(ConfigError, match="part_size"):
        S3Sink("bucket", part_size=MiB)
    with pytest.raises(ConfigError, match="parts_in_flight"):
        S3Sink("bucket", parts_in_flight=0)
    with pytest.raises(ConfigError, match="both"):
        S3Config(access_key_id="AKIA")
    config = S3Config(access_key_id="AKIAEXAMPLE", secret_access_key="very-secret-value")
    assert "very-secret-value" not in repr(config)
    sink = S3Sink("bucket", "/a/b/", config=config)
    assert sink.location("c/d.json") == "s3://bucket/a/b/c/d.json"
    with pytest.raises(SinkError, match="refusing"):
        sink.location("../escape")
