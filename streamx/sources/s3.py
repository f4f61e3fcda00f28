"""Objects in an S3 prefix (Cordial's landing zone) as resumable async iterators of bytes.

Cordial writes an export's files into an S3 prefix that streamx owns; after the job is done,
:func:`list_objects` lists what arrived (paginated: a prefix may hold more than 1000 keys) and
:class:`S3Source` streams each object in ~1 MiB chunks. Like
:class:`~streamx.sources.http.HttpSource` it yields every byte exactly once and in order: when
the body breaks off it asks again with ``Range: bytes=<offset>-`` and ``If-Match: <ETag seen
first>``. The ETag is pinned at the first response (or given by a checkpoint), so an object
replaced mid-read is a clear :class:`~streamx.engine.errors.ObjectChangedError` instead of a
file stitched together from two versions.

botocore (``standard`` mode) retries each request; this module retries the *transfer*: drops
and timeouts while streaming a body resume at the offset reached, with the shared
:class:`~streamx.engine.retry.Retrier` (attempts without progress, deadline, retry budget).
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from streamx.engine.clock import Clock, SystemClock
from streamx.engine.errors import IncompleteBodyError, ObjectChangedError
from streamx.engine.retry import Retrier, RetryPolicy
from streamx.exceptions import StreamxError, TransientError
from streamx.s3 import classify, error_code

DEFAULT_CHUNK_SIZE = 1 << 20
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class S3Object:
    """One listed object: its key, size, ETag (quoted, as S3 sends it) and modification time."""

    key: str
    size: int
    etag: str
    last_modified: datetime


async def list_objects(
    client: Any, bucket: str, prefix: str = "", *, page_size: int = 1000
) -> AsyncIterator[S3Object]:
    """Every object under ``prefix`` in key order, one page of ``page_size`` at a time.

    Keys ending in ``/`` (folder markers made by consoles) are skipped.
    """
    token: str | None = None
    while True:
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if token:
            request["ContinuationToken"] = token
        try:
            page = await client.list_objects_v2(**request)
        except Exception as exc:
            _fail(exc, f"s3://{bucket}/{prefix}")
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                yield S3Object(item["Key"], item["Size"], item["ETag"], item["LastModified"])
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


class S3Source:
    """The bytes of ``s3://bucket/key``, resumable at a byte offset. Iterate it once.

    ``start_offset`` and ``expected_etag`` resume a read checkpointed by an earlier process.
    Attributes: ``offset`` (absolute position of the next byte), ``etag`` (pinned at the first
    response), ``total`` (object size), ``resumes`` (requests after the first one).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        rng: random.Random | None = None,
        start_offset: int = 0,
        expected_etag: str | None = None,
        vendor: str | None = None,
        account: str | None = None,
        export_id: str | None = None,
    ) -> None:
        if chunk_size < 1 or start_offset < 0:
            raise ValueError("chunk_size must be >= 1 and start_offset >= 0")
        self._client = client
        self.bucket = bucket
        self.key = key
        self.name = f"s3://{bucket}/{key}"
        self._chunk_size = chunk_size
        self._retrier = Retrier(
            policy or RetryPolicy(), clock=clock or SystemClock(), rng=rng or random.Random()
        )
        self._ids: dict[str, Any] = {"vendor": vendor, "account": account, "export_id": export_id}
        self.offset = start_offset
        self.etag = expected_etag
        self.total: int | None = None
        self.resumes = 0
        self._requests = 0
        self._claimed = False
        self._pending: BaseException | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Yield the object's bytes from ``offset`` to the end, resuming transparently."""
        if self._claimed:
            raise RuntimeError(f"{self.name}: an S3Source can be iterated only once")
        self._claimed = True
        last: StreamxError | None = None
        while self.total is None or self.offset < self.total:
            self._retrier.check_deadline(last)
            mark = self.offset
            body: Any = None
            try:
                body = await self._open()
                while chunk := await self._read_chunk(body):
                    self.offset += len(chunk)
                    yield chunk
                if self.total is not None and self.offset < self.total:
                    raise self._incomplete(f"body ended at byte {self.offset} of {self.total}")
            except TransientError as exc:
                last = exc
                if self.offset > mark:
                    self._retrier.reset()
                await self._retrier.backoff(exc)
            finally:
                if body is not None:
                    body.close()

    # -- one request -------------------------------------------------------------------------

    async def _open(self) -> Any:
        """GET the rest of the object; returns its streaming body (None if nothing is left)."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.offset > 0:
            request["Range"] = f"bytes={self.offset}-"
        if self.etag:
            request["IfMatch"] = self.etag
        if self._requests:
            self.resumes += 1
        self._requests += 1
        try:
            answer = await self._client.get_object(**request)
        except Exception as exc:
            if error_code(exc) == "InvalidRange":
                await self._check_complete()
                return None
            self._fail(exc)
        self._pending = None
        try:
            self._accept(answer)
        except BaseException:
            answer["Body"].close()
            raise
        self._retrier.record_success()
        return answer["Body"]

    def _check_etag(self, etag: str | None) -> None:
        if self.etag is None:
            self.etag = etag
        elif etag is not None and etag != self.etag:
            raise self._changed(f"ETag changed from {self.etag} to {etag}")

    def _accept(self, answer: dict[str, Any]) -> None:
        self._check_etag(answer.get("ETag"))
        content_range = answer.get("ContentRange")
        if content_range:
            match = _CONTENT_RANGE_RE.fullmatch(content_range.strip())
            if match is None:
                raise self._incomplete(f"unusable Content-Range {content_range!r}")
            if int(match[1]) != self.offset:
                raise self._incomplete(f"asked for bytes from {self.offset}, got from {match[1]}")
            if match[3] != "*":
                self._set_total(int(match[3]))
        elif self.offset == 0:
            self._set_total(int(answer["ContentLength"]))
        else:
            raise self._incomplete("a range request was answered without a Content-Range")

    async def _check_complete(self) -> None:
        """416 to ``bytes=<offset>-``: fine only if the object is exactly ``offset`` long."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.etag:
            request["IfMatch"] = self.etag
        try:
            head = await self._client.head_object(**request)
        except Exception as exc:
            self._fail(exc)
        self._check_etag(head.get("ETag"))
        size = int(head["ContentLength"])
        if size != self.offset:
            raise self._changed(f"size {size} does not match the resume offset {self.offset}")
        self._set_total(size)

    def _set_total(self, total: int) -> None:
        if self.total is not None and total != self.total:
            raise self._changed(f"size changed from {self.total} to {total} bytes")
        if total < self.offset:
            raise self._changed(f"size {total} is below the {self.offset} bytes already read")
        self.total = total

    # -- reading -----------------------------------------------------------------------------

    async def _read_chunk(self, body: Any) -> bytes:
        """Up to ``chunk_size`` bytes (b"" at the end of this body).

        If the body breaks after part of a chunk arrived, that part is returned first and the
        failure is raised by the next call, so a link dropping every few hundred KiB still
        makes progress.
        """
        if body is None:
            return b""
        if self._pending is not None:
            error, self._pending = self._pending, None
            raise error
        parts: list[bytes] = []
        size = 0
        try:
            while size < self._chunk_size:
                data = await body.read(self._chunk_size - size)
                if not data:
                    break
                parts.append(data)
                size += len(data)
        except Exception as exc:
            mapped = _mapped(exc, self.name, **self._ids)
            if not size or not isinstance(mapped, TransientError):
                self._fail(exc)
            self._pending = mapped
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- errors ------------------------------------------------------------------------------

    def _fail(self, exc: Exception) -> NoReturn:
        _fail(exc, self.name, **self._ids)

    def _incomplete(self, reason: str) -> IncompleteBodyError:
        return IncompleteBodyError(
            f"{self.name}: {reason}", expected=self.total, received=self.offset, **self._ids
        )

    def _changed(self, reason: str) -> ObjectChangedError:
        return ObjectChangedError(
            f"{self.name}: the object changed during the download ({reason});"
            " it must be restarted from byte 0",
            **self._ids,
        )


def _mapped(exc: BaseException, subject: str, **ids: Any) -> StreamxError | None:
    """``exc`` mapped onto the streamx tree and stamped with the export's ids, else None."""
    error = classify(exc, subject=subject)
    if error is not None and error is not exc:
        for name, value in ids.items():
            if value is not None:
                setattr(error, name, value)
    return error


def _fail(exc: Exception, subject: str, **ids: Any) -> NoReturn:
    """Raise ``exc`` mapped onto the streamx tree (unknown exceptions propagate unchanged)."""
    error = _mapped(exc, subject, **ids)
    if error is None or error is exc:
        raise exc
    raise error from exc


__all__ = ["DEFAULT_CHUNK_SIZE", "S3Object", "S3Source", "list_objects"]
