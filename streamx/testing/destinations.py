"""Where a simulated Cordial job writes its files: a local directory, S3, or an SFTP server.

Cordial never hands back a download URL; it writes the export into the destination named in the
request. The fake does the same for real: files land in any S3 endpoint (a moto server in tests),
on any SSH server over SFTP (asyncssh client), or in a local directory (the demo). Each file is a
*synchronous* generator of byte chunks (CPU work: row shaping, CSV, gzip); it is pulled in a
worker thread one chunk at a time, so the event loop keeps answering polls and memory stays
flat: S3 files go up as a multipart upload of ``part_size`` parts once they outgrow one part,
SFTP files are written in pieces no larger than OpenSSH's 255 KiB request limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from streamx.testing.provider import as_boolean

S3_MIN_PART = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
SFTP_MAX_WRITE = 261_120
CORDIAL_EXTENSIONS = {"csv": ".csv", "json": ".json", "txt": ".txt"}


class Destination(Protocol):
    """An open connection to a job's destination; use as an async context manager."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def write(self, target: str, chunks: Iterator[bytes]) -> int:
        """Write one file (``target`` is a path or key); returns the bytes written."""
        ...


async def pull(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Iterate a CPU-bound chunk generator in a worker thread, one chunk at a time."""
    while True:
        chunk = await asyncio.to_thread(next, chunks, None)
        if chunk is None:
            return
        if chunk:
            yield chunk


class _NoConnection:
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


class LocalDirDestination(_NoConnection):
    """Files under ``root`` (created as needed); targets are relative paths that must stay
    inside it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def resolve(self, target: str) -> Path:
        path = (self.root / target.lstrip("/")).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"path {target!r} escapes the destination directory")
        return path

    async def write(self, target: str, chunks: Iterator[bytes]) -> int:
        path = self.resolve(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with path.open("wb") as handle:
            async for chunk in pull(chunks):
                await asyncio.to_thread(handle.write, chunk)
                written += len(chunk)
        return written


class DiscardDestination(_NoConnection):
    """Produces and counts the bytes, keeps none (Cordial's own UI storage, when not kept)."""

    async def write(self, target: str, chunks: Iterator[bytes]) -> int:
        written = 0
        async for chunk in pull(chunks):
            written += len(chunk)
        return written


class S3Destination:
    """Objects in ``bucket`` at ``endpoint_url`` (moto, MinIO, or AWS), with the request's keys."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        access_key_id: str,
        secret_access_key: str,
        region: str,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if part_size < S3_MIN_PART:
            raise ValueError(f"S3 parts must be at least {S3_MIN_PART} bytes")
        self.bucket = bucket
        self.part_size = part_size
        self._settings = {
            "endpoint_url": endpoint_url,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "region_name": region,
        }
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> Self:
        import aioboto3  # lazy: only jobs that deliver to S3 pay for the import

        session = aioboto3.Session()
        self._client = await self._stack.enter_async_context(session.client("s3", **self._settings))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def write(self, target: str, chunks: Iterator[bytes]) -> int:
        buffer = bytearray()
        upload: _Multipart | None = None
        written = 0
        try:
            async for chunk in pull(chunks):
                buffer += chunk
                written += len(chunk)
                while len(buffer) >= self.part_size:
                    upload = upload or await _Multipart.create(self._client, self.bucket, target)
                    await upload.add(bytes(buffer[: self.part_size]))
                    del buffer[: self.part_size]
            if upload is None:
                await self._client.put_object(Bucket=self.bucket, Key=target, Body=bytes(buffer))
            else:
                if buffer:
                    await upload.add(bytes(buffer))
                await upload.complete()
        except BaseException:
            if upload is not None:
                await upload.abort()
            raise
        return written


class _Multipart:
    """One S3 multipart upload (parts in order, completed or aborted)."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self.client, self.bucket, self.key, self.upload_id = client, bucket, key, upload_id
        self.parts: list[dict[str, Any]] = []

    @classmethod
    async def create(cls, client: Any, bucket: str, key: str) -> _Multipart:
        created = await client.create_multipart_upload(Bucket=bucket, Key=key)
        return cls(client, bucket, key, created["UploadId"])

    async def add(self, data: bytes) -> None:
        number = len(self.parts) + 1
        answer = await self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})

    async def complete(self) -> None:
        await self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    async def abort(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )


class SFTPDestination:
    """Files on an SSH server over SFTP, by password or by a private key (``savedKey``).

    Host keys are not verified: like the vendor, the fake trusts the server it was told to use.
    Target folders must exist (the fake does not create them, so a wrong path fails the job)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str | None = None,
        client_key: str | os.PathLike[str] | None = None,
    ) -> None:
        self._connect_args: dict[str, Any] = {
            "host": host,
            "port": port,
            "username": username,
            "password": password,
            "known_hosts": None,
            "agent_path": None,
            # an empty list, not None: never fall back to the machine's own ~/.ssh keys
            "client_keys": [os.fspath(client_key)] if client_key is not None else [],
        }
        self._stack = contextlib.AsyncExitStack()
        self._sftp: Any = None

    async def __aenter__(self) -> Self:
        import asyncssh  # lazy: only jobs that deliver over SFTP pay for the import

        connection = await self._stack.enter_async_context(
            await asyncssh.connect(**self._connect_args)
        )
        self._sftp = await self._stack.enter_async_context(await connection.start_sftp_client())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def write(self, target: str, chunks: Iterator[bytes]) -> int:
        written = 0
        async with self._sftp.open(target, "wb") as handle:
            async for chunk in pull(chunks):
                for start in range(0, len(chunk), SFTP_MAX_WRITE):
                    await handle.write(chunk[start : start + SFTP_MAX_WRITE])
                written += len(chunk)
        return written


class CordialTargets:
    """Where each file of a Cordial job goes, per the destination's ``path`` rules.

    Names are ``<name>.<ext>`` (``name`` defaults to ``export-<jobId>``), ``<stem>_<n>.<ext>``
    for ``limitRecordsPerFile`` chunks, ``.gz`` appended when compressed. S3: a ``path`` whose
    last segment holds a dot names the file, otherwise the key is ``<path>/<file>`` verbatim
    (``folder/`` gives ``folder//file``, as the docs warn). SFTP / local: ``path`` is a folder.
    ``aws`` (Cordial's UI storage): ``aws/<jobId>/<file>`` under the simulator's local root."""

    def __init__(self, request: Mapping[str, Any], job_id: str) -> None:
        destination = request["destination"]
        self.kind = str(destination["type"]).lower()
        self.extension = CORDIAL_EXTENSIONS[str(request.get("exportType", "csv")).lower()]
        self.gz = ".gz" if as_boolean(request.get("compress", False)) else ""
        self.stem = str(request.get("name") or f"export-{job_id}")
        self.folder = str(destination.get("path", ""))
        if self.kind == "s3":
            self.folder = self.folder.lstrip("/")
            head, _, last = self.folder.rpartition("/")
            if "." in last:
                self.folder = head
                self.stem, _, extension = last.rpartition(".")
                self.extension = f".{extension}"
        elif self.kind == "aws":
            self.folder = f"aws/{job_id}"

    def name(self, index: int | None) -> str:
        """The target of the whole file (``None``) or of chunk ``index`` (from 1)."""
        base = self.stem if index is None else f"{self.stem}_{index}"
        file_name = f"{base}{self.extension}{self.gz}"
        if self.kind == "s3":
            return f"{self.folder}/{file_name}" if self.folder else file_name
        return posixpath.join(self.folder, file_name) if self.folder else file_name


class Staging:
    """Files held back on local disk until all exist, then delivered together (Cordial's S3
    behaviour with ``compress`` and ``limitRecordsPerFile``)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="streamx-cordial-stage-"))
        self.local = LocalDirDestination(self.directory)
        self.files: list[tuple[str, Path]] = []

    async def write(self, target: str, chunks: Iterator[bytes]) -> None:
        path = self.directory / f"{len(self.files):06d}"
        await self.local.write(path.name, chunks)
        self.files.append((target, path))

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def read_chunks(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    """A file as chunks (re-reading staged files)."""
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


__all__ = [
    "CORDIAL_EXTENSIONS",
    "DEFAULT_PART_SIZE",
    "CordialTargets",
    "Destination",
    "DiscardDestination",
    "LocalDirDestination",
    "S3Destination",
    "SFTPDestination",
    "Staging",
    "pull",
    "read_chunks",
]
