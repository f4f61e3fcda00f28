"""An S3 prefix as a :class:`~streamx.sinks.base.Sink`: streaming multipart uploads.

Commit protocol: completing a multipart upload is S3's atomic publish (the key shows either the
old object or the whole new one, never a part), so parts go up while the data is written and
``complete_multipart_upload`` runs only in :meth:`S3PartUpload.commit`; every failure or
cancellation aborts the multipart upload, so no object and no billable orphan parts are left.
(A bucket lifecycle rule ``AbortIncompleteMultipartUpload`` is still advisable for uploads cut
off by a killed process.)

Memory: data is copied into a preallocated ``part_size`` buffer; a full buffer is handed to a
background ``upload_part`` task and the next one starts filling. At most ``parts_in_flight``
buffers exist per upload (the one filling included): when they are all taken, :meth:`write`
waits for an upload to finish, which is the back-pressure that slows the producer to the
network's pace. So one upload holds at most ``part_size * parts_in_flight`` bytes, whatever the
object's size.

Small objects: an upload that is committed without an explicit :meth:`~S3PartUpload.finish` and
never filled a part (the manifest, most quarantine files) is stored with one ``put_object``.
An explicit ``finish()`` must release memory (the Publisher keeps many finished parts until the
export commits), so it uploads what is buffered as the single part of a multipart upload, which
commit then completes; only an empty object is kept (as nothing) for a ``put_object`` at commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
from typing import Any
from urllib.parse import urlsplit

from streamx.bytes_like import Bytes
from streamx.exceptions import ConfigError, SinkError
from streamx.s3 import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    S3Config,
    describe,
    error_code,
    open_client,
)
from streamx.sinks.base import split_relpath

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_PARTS_IN_FLIGHT = 4
#: Part checksum asked of S3 (what boto3's own transfer manager uses); completed parts must
#: repeat it, so it is recorded per part.
CHECKSUM_ALGORITHM = "CRC32"
_CHECKSUM_KEYS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256")


class _PartBody(io.RawIOBase):
    """A read-only, seekable file over one part's buffer, so nothing copies the whole part.

    Given ``bytes``, aiohttp slices and joins the body (two extra copies per part in flight);
    given a file it streams 64 KiB reads, and botocore seeks it back for checksums and
    retries. The buffer is only read while the part is in flight, never written.
    """

    def __init__(self, data: bytearray) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._position = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._position + size
        data = bytes(self._view[self._position : end])
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: Any) -> int:
        data = self._view[self._position : self._position + len(buffer)]
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def drop(self) -> None:
        """Let go of the buffer now: aiohttp keeps the request (and this body) alive in a
        reference cycle until the garbage collector runs, which would hold a whole part."""
        self._view = memoryview(b"")


class S3PartUpload:
    """One object being written as a multipart upload; invisible until :meth:`commit`."""

    def __init__(
        self, client: Any, bucket: str, key: str, *, part_size: int, parts_in_flight: int
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight
        self._buffer: bytearray | None = None
        self._filled = 0
        self._upload_id: str | None = None
        self._next_part = 1
        self._parts: dict[int, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._abort_task: asyncio.Task[None] | None = None
        self._state = "open"
        self.size = 0

    @property
    def location(self) -> str:
        """``s3://bucket/key`` of the object."""
        return f"s3://{self._bucket}/{self._key}"

    @property
    def upload_id(self) -> str | None:
        """The multipart upload id, once one was started (for diagnostics)."""
        return self._upload_id

    async def write(self, data: Bytes) -> None:
        if self._state != "open":
            raise SinkError(f"cannot write {self.location}: upload {self._state}")
        view = memoryview(data)
        while view:
            if self._buffer is None:
                self._buffer = bytearray(self._part_size)
            take = min(len(view), self._part_size - self._filled)
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            self.size += take
            view = view[take:]
            if self._filled == self._part_size:
                await self._guarded(self._ship(keep=self._parts_in_flight - 1))

    async def finish(self) -> None:
        if self._state in ("finished", "committed"):
            return
        if self._state != "open":
            raise SinkError(f"cannot finish {self.location}: upload {self._state}")
        if self._upload_id is not None or self._filled:
            await self._guarded(self._ship(keep=0))
        self._state = "finished"

    async def commit(self) -> None:
        if self._state not in ("open", "finished"):
            raise SinkError(f"cannot commit {self.location}: upload {self._state}")
        if self._upload_id is None and (self._state == "open" or self._filled == 0):
            await self._guarded(self._put())
        else:
            await self.finish()
            await self._guarded(self._complete())
        self._state = "committed"

    async def abort(self) -> None:
        if self._state == "committed":
            return
        self._state = "aborted"
        if self._abort_task is None:
            self._abort_task = asyncio.create_task(self._discard())
        # Shielded: a caller cancelled while aborting must not leave the upload half-aborted.
        await asyncio.shield(self._abort_task)

    # -- internals ------------------------------------------------------------------------

    async def _guarded(self, step: Any) -> None:
        """Run one network step; on any failure or cancellation abort the multipart upload.

        After a failed step the object can no longer be published (a part may be missing),
        so the upload is aborted at once, before the error propagates.
        """
        try:
            await step
        except BaseException:
            if self._state not in ("aborted", "committed"):
                self._state = "failed"
                with contextlib.suppress(Exception):  # the original error matters more
                    await self.abort()
            raise

    async def _ship(self, *, keep: int) -> None:
        """Hand the buffered bytes to a part upload, then wait until at most ``keep`` run."""
        if self._filled:
            buffer, filled = self._buffer, self._filled
            assert buffer is not None
            self._buffer, self._filled = None, 0
            if filled < len(buffer):
                del buffer[filled:]  # the last, short part: shrink in place, no copy
            if self._upload_id is None:
                await self._create()
            number = self._next_part
            if number > MAX_PARTS:
                raise SinkError(
                    f"cannot write {self.location}: more than {MAX_PARTS} parts of "
                    f"{self._part_size} bytes; use a larger part size"
                )
            self._next_part += 1
            self._tasks.add(asyncio.create_task(self._upload_part(number, buffer)))
        await self._wait_for_parts(keep)

    async def _wait_for_parts(self, keep: int) -> None:
        while len(self._tasks) > keep:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._tasks.discard(task)
                task.result()  # re-raise a part's failure here, in the writer

    async def _create(self) -> None:
        try:
            answer = await self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ChecksumAlgorithm=CHECKSUM_ALGORITHM
            )
        except Exception as exc:
            raise self._error("start upload of", exc) from exc
        self._upload_id = str(answer["UploadId"])

    async def _upload_part(self, number: int, buffer: bytearray) -> None:
        body = _PartBody(buffer)
        del buffer
        try:
            answer = await self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
        except Exception as exc:
            raise self._error(f"upload part {number} of", exc) from exc
        finally:
            body.drop()
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        part.update({key: answer[key] for key in _CHECKSUM_KEYS if answer.get(key)})
        self._parts[number] = part

    async def _complete(self) -> None:
        parts = [self._parts[number] for number in sorted(self._parts)]
        try:
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except Exception as exc:
            raise self._error("complete upload of", exc) from exc

    async def _put(self) -> None:
        buffer = self._buffer if self._buffer is not None else bytearray()
        del buffer[self._filled :]
        self._buffer, self._filled = None, 0
        body = _PartBody(buffer)
        del buffer
        try:
            await self._client.put_object(Bucket=self._bucket, Key=self._key, Body=body)
        except Exception as exc:
            raise self._error("write", exc) from exc
        finally:
            body.drop()

    async def _discard(self) -> None:
        self._buffer, self._filled = None, 0
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._upload_id is None:
            return
        try:
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
        except Exception as exc:
            if error_code(exc) != "NoSuchUpload":  # already gone: aborted or never completed
                raise self._error("abort upload of", exc) from exc

    def _error(self, action: str, exc: BaseException) -> SinkError:
        if isinstance(exc, SinkError):
            return exc
        return SinkError(f"cannot {action} {self.location}: {describe(exc)}")


class S3Sink:
    """Publishes objects under ``s3://bucket/prefix``.

    Pass ``client`` to share an existing aioboto3 S3 client (the caller closes it); otherwise
    one is opened from ``config`` on first use and closed by :meth:`close`.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        config: S3Config | None = None,
        client: Any | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigError(
                f"S3 part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes,"
                f" got {part_size}"
            )
        if parts_in_flight < 1:
            raise ConfigError(f"S3 parts_in_flight must be >= 1, got {parts_in_flight}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            split_relpath(self.prefix)
        self._config = config or S3Config()
        self._client = client
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Sink:
        """``s3://bucket/prefix``; options are :class:`S3Sink` keywords or S3Config fields."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"not an S3 sink URL (s3://bucket/prefix): {url!r}")
        names = {item.name for item in dataclasses.fields(S3Config)}
        settings = {key: options.pop(key) for key in list(options) if key in names}
        config = options.pop("config", None)
        if config is not None and settings:
            raise ConfigError("give either an S3Config or S3 settings, not both")
        if config is None:
            config = S3Config(**settings)
        try:
            return cls(parts.netloc, parts.path, config=config, **options)
        except TypeError as exc:
            raise ConfigError(f"S3 sink: {exc}") from None

    def key(self, relpath: str) -> str:
        """The object key of ``relpath`` (prefix included)."""
        name = "/".join(split_relpath(relpath))
        return f"{self.prefix}/{name}" if self.prefix else name

    async def open(self, relpath: str) -> S3PartUpload:
        key = self.key(relpath)
        if self._closed:
            raise SinkError(f"cannot open {self.location(relpath)}: sink closed")
        return S3PartUpload(
            await self._get_client(),
            self.bucket,
            key,
            part_size=self._part_size,
            parts_in_flight=self._parts_in_flight,
        )

    def location(self, relpath: str) -> str:
        return f"s3://{self.bucket}/{self.key(relpath)}"

    async def close(self) -> None:
        self._closed = True
        await self._stack.aclose()

    async def _get_client(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client = await self._stack.enter_async_context(open_client(self._config))
            return self._client


__all__ = ["DEFAULT_PARTS_IN_FLIGHT", "DEFAULT_PART_SIZE", "S3PartUpload", "S3Sink"]
