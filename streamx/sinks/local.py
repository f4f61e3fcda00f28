"""A directory on the local file system as a :class:`~streamx.sinks.base.Sink`.

Commit protocol: bytes go to ``.<final>.tmp-<random>`` in the final directory (same file system,
so the rename is atomic); :meth:`~LocalPartUpload.finish` flushes and ``fsync``\\ s it; commit is
``os.replace`` onto the final name followed by an ``fsync`` of the directory, so after a crash a
final name either holds complete, durable bytes or does not exist. Leftover temp files start with
``.``, which readers ignore.

Blocking calls run in a worker thread, and writes are batched to about 1 MiB per thread hop, so
a slow or full disk never stalls the event loop and small writes cost no extra hops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Awaitable
from io import FileIO
from pathlib import Path

from streamx.bytes_like import Bytes
from streamx.exceptions import SinkError
from streamx.sinks.base import split_relpath

BUFFER_SIZE = 1024 * 1024


def _error(action: str, path: Path | str, exc: OSError) -> SinkError:
    reason = exc.strerror or str(exc)
    return SinkError(f"cannot {action} {path}: {reason}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(handle: FileIO, data: Bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may be partial)."""
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if written is None:  # only for non-blocking files, which these are not
            raise BlockingIOError(f"short write to {handle.name}")
        view = view[written:]


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


class LocalPartUpload:
    """One file being written under a temporary name next to its final name."""

    def __init__(self, final: Path, temp: Path, handle: FileIO, buffer_size: int) -> None:
        self._final = final
        self._temp = temp
        self._handle: FileIO | None = handle
        self._buffer_size = buffer_size
        self._pending: list[Bytes] = []
        self._pending_size = 0
        self._state = "open"
        # Serializes the blocking calls: a write left running in its thread by a cancelled task
        # must finish before abort closes the handle under it.
        self._io_lock = threading.Lock()

    @property
    def temp_path(self) -> Path:
        """The temporary file (for diagnostics; it disappears at commit or abort)."""
        return self._temp

    async def write(self, data: Bytes) -> None:
        if self._state != "open":
            raise SinkError(f"cannot write {self._final}: upload {self._state}")
        if not data:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= self._buffer_size:
            await self._guarded(self._drain())

    async def finish(self) -> None:
        if self._state in ("finished", "committed"):
            return
        if self._state != "open":
            raise SinkError(f"cannot finish {self._final}: upload {self._state}")
        await self._guarded(self._drain())
        await self._guarded(asyncio.to_thread(self._sync_and_close))
        self._state = "finished"

    async def commit(self) -> None:
        if self._state not in ("open", "finished"):
            raise SinkError(f"cannot commit {self._final}: upload {self._state}")
        await self.finish()
        await self._guarded(asyncio.to_thread(self._publish))
        self._state = "committed"

    async def abort(self) -> None:
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._pending.clear()
        self._pending_size = 0
        await asyncio.to_thread(self._discard)

    async def _guarded(self, step: Awaitable[None]) -> None:
        """Run one I/O step; if it fails (or is cancelled) the upload can no longer commit.

        A failed write may have lost bytes, so publishing what is there would publish a
        truncated file: only abort is allowed afterwards.
        """
        try:
            await step
        except BaseException:
            if self._state != "aborted":
                self._state = "failed"
            raise

    async def _drain(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        await asyncio.to_thread(self._write, data)

    def _write(self, data: Bytes) -> None:
        with self._io_lock:
            if self._handle is None:
                raise SinkError(f"cannot write {self._final}: upload closed")
            try:
                write_all(self._handle, data)
            except OSError as exc:
                raise _error("write", self._temp, exc) from exc

    def _sync_and_close(self) -> None:
        with self._io_lock:
            handle, self._handle = self._handle, None
            if handle is None:
                return
            try:
                os.fsync(handle.fileno())
            except OSError as exc:
                raise _error("write", self._temp, exc) from exc
            finally:
                with contextlib.suppress(OSError):  # a failed flush was reported above
                    handle.close()

    def _publish(self) -> None:
        try:
            os.replace(self._temp, self._final)
            _fsync_dir(self._final.parent)
        except OSError as exc:
            raise _error("publish", self._final, exc) from exc

    def _discard(self) -> None:
        with self._io_lock:
            handle, self._handle = self._handle, None
            if handle is not None:
                with contextlib.suppress(OSError):  # the data is being thrown away anyway
                    handle.close()
        try:
            self._temp.unlink(missing_ok=True)
        except OSError as exc:
            raise _error("remove", self._temp, exc) from exc


class LocalSink:
    """Publishes files under the directory ``root`` (created on first use)."""

    def __init__(self, root: str | os.PathLike[str], *, buffer_size: int = BUFFER_SIZE) -> None:
        self._root = os.path.realpath(os.fspath(root))
        self._buffer_size = buffer_size
        self._closed = False

    @property
    def root(self) -> str:
        """The absolute, symlink-resolved root directory."""
        return self._root

    async def open(self, relpath: str) -> LocalPartUpload:
        parts = split_relpath(relpath)
        if self._closed:
            raise SinkError(f"cannot open {self.location(relpath)}: sink closed")
        return await asyncio.to_thread(self._open, parts)

    def location(self, relpath: str) -> str:
        return os.path.join(self._root, *split_relpath(relpath))

    async def close(self) -> None:
        self._closed = True

    def _open(self, parts: tuple[str, ...]) -> LocalPartUpload:
        directory = self._directory(parts[:-1])
        final = directory / parts[-1]
        temp = directory / f".{parts[-1]}.tmp-{secrets.token_hex(8)}"
        try:
            # Unbuffered: writes already arrive in ~1 MiB blocks, a second buffer would only copy.
            handle = open(temp, "xb", buffering=0)  # noqa: SIM115 - closed at finish/abort
        except OSError as exc:
            raise _error("create", temp, exc) from exc
        return LocalPartUpload(final, temp, handle, self._buffer_size)

    def _directory(self, names: tuple[str, ...]) -> Path:
        """Create (or walk) ``names`` under the root, refusing any symlink that leads outside."""
        try:
            os.makedirs(self._root, exist_ok=True)
        except OSError as exc:
            raise _error("create directory", self._root, exc) from exc
        current = self._root
        for name in names:
            candidate = os.path.join(current, name)
            self._make_dir(candidate, current)
            real = os.path.realpath(candidate)
            if not _within(real, self._root):
                raise SinkError(f"refusing {candidate}: it leads outside the root {self._root}")
            if not os.path.isdir(real):
                raise SinkError(f"cannot create directory {candidate}: not a directory")
            current = real
        return Path(current)

    @staticmethod
    def _make_dir(path: str, parent: str) -> None:
        try:
            os.mkdir(path)
        except FileExistsError:
            return  # an existing entry (maybe a symlink) is checked by the caller
        except OSError as exc:
            raise _error("create directory", path, exc) from exc
        try:
            _fsync_dir(Path(parent))  # make the new directory entry itself durable
        except OSError as exc:
            raise _error("sync directory", parent, exc) from exc
