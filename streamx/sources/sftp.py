"""Files in an SFTP directory (Cordial's landing zone) as resumable async iterators of bytes.

Cordial writes an export's files into a directory streamx owns on an SSH server;
:meth:`SFTPLandingZone.list` lists what arrived and :class:`SFTPSource` streams one file.
Reads are large (``chunk_size``, 2 MiB) and asyncssh splits each into pipelined requests of
the server's maximum size (255 KiB for OpenSSH, ``block_size``) with up to ``max_requests`` in
flight, so a transfer is not one round trip per 255 KiB.

Like :class:`~streamx.sources.http.HttpSource`, a source yields each byte exactly once and in
order. When the connection drops it reconnects (through the shared
:class:`~streamx.ssh.SFTPSession`), reopens the file and continues at the offset reached,
with the shared :class:`~streamx.engine.retry.Retrier` (attempts without progress, deadline,
budget). SFTP has no ETag, so the file's *version* ``"<size>-<mtime>"`` is pinned at the first
open (or given by a checkpoint) and compared on every reopen: a file replaced, truncated or
grown mid-read is a clear :class:`~streamx.engine.errors.ObjectChangedError`, never a stitched
or silently short read.
"""

from __future__ import annotations

import contextlib
import posixpath
import random
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import asyncssh

from streamx.engine.clock import Clock, SystemClock
from streamx.engine.errors import ObjectChangedError
from streamx.engine.retry import Retrier, RetryPolicy
from streamx.exceptions import StreamxError, TransientError
from streamx.ssh import (
    SFTPFileError,
    SFTPSession,
    SSHConfig,
    is_connection_error,
    map_ssh_error,
    sftp_reason,
)

DEFAULT_CHUNK_SIZE = 2 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One listed file: full remote ``path``, ``size`` in bytes, ``mtime`` (epoch seconds)."""

    path: str
    size: int
    mtime: int

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def version(self) -> str:
        """What :class:`SFTPSource` pins: ``"<size>-<mtime>"``."""
        return _version(self.size, self.mtime)


def _version(size: int, mtime: int) -> str:
    return f"{size}-{mtime}"


class SFTPSource:
    """The bytes of the remote file ``path``, resumable at a byte offset. Iterate it once.

    ``start_offset`` and ``expected_version`` resume a read checkpointed by an earlier process.
    Attributes: ``offset`` (absolute position of the next byte), ``version`` (pinned at the
    first open), ``total`` (file size), ``resumes`` (opens after the first one).
    """

    def __init__(
        self,
        session: SFTPSession,
        path: str,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        block_size: int = -1,
        max_requests: int = -1,
        rng: random.Random | None = None,
        start_offset: int = 0,
        expected_version: str | None = None,
        vendor: str | None = None,
        account: str | None = None,
        export_id: str | None = None,
    ) -> None:
        if chunk_size < 1 or start_offset < 0:
            raise ValueError("chunk_size must be >= 1 and start_offset >= 0")
        self._session = session
        self.path = path
        self.name = f"sftp://{session.config.target}{_shown(path)}"
        self._chunk_size = chunk_size
        self._block_size = block_size
        self._max_requests = max_requests
        self._retrier = Retrier(
            policy or RetryPolicy(), clock=clock or SystemClock(), rng=rng or random.Random()
        )
        self._ids: dict[str, Any] = {"vendor": vendor, "account": account, "export_id": export_id}
        self.offset = start_offset
        self.version = expected_version
        self.total: int | None = None
        self.resumes = 0
        self._opens = 0
        self._claimed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Yield the file's bytes from ``offset`` to the end, resuming transparently."""
        if self._claimed:
            raise RuntimeError(f"{self.name}: an SFTPSource can be iterated only once")
        self._claimed = True
        last: StreamxError | None = None
        while True:
            self._retrier.check_deadline(last)
            mark = self.offset
            sftp: asyncssh.SFTPClient | None = None
            handle: asyncssh.SFTPClientFile | None = None
            try:
                sftp = await self._connect()
                handle = await self._open(sftp)
                while chunk := await self._next_chunk(handle):
                    self.offset += len(chunk)
                    yield chunk
                return
            except TransientError as exc:
                last = exc
                if sftp is not None:
                    await self._session.invalidate(sftp)
                if self.offset > mark:
                    self._retrier.reset()
                await self._retrier.backoff(exc)
            finally:
                if handle is not None:
                    with contextlib.suppress(Exception):  # a dead connection cannot close it
                        await handle.close()

    # -- steps -------------------------------------------------------------------------------

    async def _connect(self) -> asyncssh.SFTPClient:
        try:
            return await self._session.client()
        except StreamxError as exc:
            self._stamp(exc)
            raise

    async def _open(self, sftp: asyncssh.SFTPClient) -> asyncssh.SFTPClientFile:
        if self._opens:
            self.resumes += 1
        self._opens += 1
        try:
            handle = await sftp.open(
                self.path, "rb", block_size=self._block_size, max_requests=self._max_requests
            )
        except Exception as exc:
            raise self._mapped(exc, "open") from exc
        try:
            attrs = await handle.stat()
            self._pin(attrs.size or 0, attrs.mtime or 0)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await handle.close()
            if isinstance(exc, StreamxError) or not isinstance(exc, Exception):
                raise
            raise self._mapped(exc, "stat") from exc
        self._retrier.record_success()
        return handle

    def _pin(self, size: int, mtime: int) -> None:
        version = _version(size, mtime)
        if self.version is None:
            self.version = version
        elif version != self.version:
            raise self._changed(f"version (size-mtime) changed from {self.version} to {version}")
        if size < self.offset:
            raise self._changed(f"size {size} is below the {self.offset} bytes already read")
        self.total = size

    async def _next_chunk(self, handle: asyncssh.SFTPClientFile) -> bytes:
        """The next ``chunk_size`` bytes at ``offset``; b"" once the pinned size is reached."""
        assert self.total is not None
        if self.offset >= self.total:
            # The size was pinned at open: a file still growing would be read short. Probe.
            if await self._guarded_read(handle, 1, self.offset):
                raise self._changed(f"file grew past its size of {self.total} bytes while read")
            return b""
        size = min(self._chunk_size, self.total - self.offset)
        data = await self._guarded_read(handle, size, self.offset)
        if not data:
            raise self._changed(f"file ended at byte {self.offset} of {self.total}")
        return data

    async def _guarded_read(self, handle: asyncssh.SFTPClientFile, size: int, at: int) -> bytes:
        try:
            return cast(bytes, await handle.read(size, at))  # opened in binary mode
        except Exception as exc:
            raise self._mapped(exc, "read") from exc

    # -- errors ------------------------------------------------------------------------------

    def _mapped(self, exc: BaseException, action: str) -> StreamxError:
        if isinstance(exc, StreamxError):
            error: StreamxError = exc
        elif is_connection_error(exc) or isinstance(exc, OSError):
            error = map_ssh_error(exc, f"{self.name}: {action}")
        else:
            error = SFTPFileError(
                f"cannot {action} {self.name}: {sftp_reason(exc)}", path=self.path
            )
        return self._stamp(error)

    def _stamp(self, error: StreamxError) -> StreamxError:
        for key, value in self._ids.items():
            if value is not None and getattr(error, key, None) is None:
                setattr(error, key, value)
        return error

    def _changed(self, reason: str) -> ObjectChangedError:
        return ObjectChangedError(
            f"{self.name}: the file changed during the download ({reason});"
            " it must be restarted from byte 0",
            **self._ids,
        )


class SFTPLandingZone:
    """A landing directory on an SSH server: list its files, open a source per file.

    Pass an :class:`~streamx.ssh.SSHConfig` (the zone owns and closes the connection) or a
    shared :class:`~streamx.ssh.SFTPSession`.
    """

    def __init__(self, server: SSHConfig | SFTPSession, directory: str) -> None:
        self._owns_session = isinstance(server, SSHConfig)
        self.session = SFTPSession(server) if isinstance(server, SSHConfig) else server
        self.directory = directory

    async def list(
        self, *, include_hidden: bool = False, missing_ok: bool = False
    ) -> list[RemoteFile]:
        """Regular files directly in the directory, sorted by name (dot-files skipped).

        A missing directory is an error, or no files with ``missing_ok``. A name that is not a
        plain file name (it holds ``/`` or NUL) is refused: joined to the directory it would
        lead elsewhere, and a sane server never lists one.
        """
        where = f"sftp://{self.session.config.target}{_shown(self.directory)}"
        sftp = await self.session.client()
        try:
            entries = [entry async for entry in sftp.scandir(self.directory)]
        except Exception as exc:
            if missing_ok and isinstance(exc, asyncssh.SFTPNoSuchFile):
                return []
            if is_connection_error(exc) or isinstance(exc, OSError):
                await self.session.invalidate(sftp)
                raise map_ssh_error(exc, f"{where}: list") from exc
            raise SFTPFileError(
                f"cannot list {where}: {sftp_reason(exc)}", path=self.directory
            ) from exc
        files = [self._listed(entry, where) for entry in entries]
        kept = [
            file
            for file in files
            if file is not None and (include_hidden or not file.name.startswith("."))
        ]
        return sorted(kept, key=lambda item: item.name)

    def _listed(self, entry: asyncssh.SFTPName, where: str) -> RemoteFile | None:
        """The regular file an entry names (None for ``.``, ``..``, folders, links...)."""
        name = str(entry.filename)
        if name in (".", ".."):
            return None
        if not name or "/" in name or "\x00" in name:
            raise SFTPFileError(
                f"refusing the name {name!r} listed in {where}: not a plain file name",
                path=self.directory,
            )
        attrs = entry.attrs
        if attrs.permissions is None or not stat.S_ISREG(attrs.permissions):
            return None
        return RemoteFile(posixpath.join(self.directory, name), attrs.size or 0, attrs.mtime or 0)

    def source(self, file: RemoteFile | str, **options: Any) -> SFTPSource:
        """A source for ``file`` (a listed file, or a name in the directory); options go to
        :class:`SFTPSource`. A listed file's version is pinned unless one is given."""
        if isinstance(file, RemoteFile):
            options.setdefault("expected_version", file.version)
            path = file.path
        else:
            path = posixpath.join(self.directory, file)
        return SFTPSource(self.session, path, **options)

    async def close(self) -> None:
        """Close the connection if the zone owns it."""
        if self._owns_session:
            await self.session.close()


def _shown(path: str) -> str:
    return path if path.startswith("/") else f"/~/{path}"


__all__ = ["DEFAULT_CHUNK_SIZE", "RemoteFile", "SFTPLandingZone", "SFTPSource"]
