"""A directory on an SSH server as a :class:`~streamx.sinks.base.Sink`, over SFTP.

Commit protocol: bytes go to ``.<final>.tmp-<random>`` in the final directory;
:meth:`~SFTPPartUpload.finish` ``fsync``\\ s it (OpenSSH's ``fsync@openssh.com``, when the
server offers it) and closes it; commit renames it onto the final name with OpenSSH's
``posix-rename@openssh.com``, which replaces an existing file atomically. (Plain SFTP
``rename`` fails when the target exists; only when the server lacks the extension does commit
fall back to remove-then-rename, which is not atomic.) Missing directories under the root are
created; leftover temp files start with ``.``, which readers ignore.

Writes are buffered to ``buffer_size`` (1 MiB) and each buffer goes out as one asyncssh write,
which asyncssh splits into pipelined requests of the server's maximum size (255 KiB for
OpenSSH), so small producer writes cost no round trips and memory stays bounded by the buffer.

All uploads of a sink share one SSH connection (:class:`~streamx.ssh.SFTPSession`). Every
failure is a :class:`~streamx.exceptions.SinkError` naming the remote path and the reason
(``permission denied``, a refused host key, a dropped connection...).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import posixpath
import secrets
from collections.abc import Awaitable
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncssh

from streamx.bytes_like import Bytes
from streamx.exceptions import ConfigError, SinkError
from streamx.sinks.base import split_relpath
from streamx.ssh import SFTPSession, SSHConfig, sftp_reason

BUFFER_SIZE = 1024 * 1024


class SFTPPartUpload:
    """One remote file being written under a temporary name next to its final name."""

    def __init__(
        self,
        sftp: asyncssh.SFTPClient,
        handle: asyncssh.SFTPClientFile,
        *,
        temp: str,
        final: str,
        url: str,
        buffer_size: int,
        fsync: bool,
    ) -> None:
        self._sftp = sftp
        self._handle: asyncssh.SFTPClientFile | None = handle
        self._temp = temp
        self._final = final
        self._url = url
        self._buffer_size = buffer_size
        self._fsync = fsync
        self._pending: list[Bytes] = []
        self._pending_size = 0
        self._offset = 0
        self._state = "open"

    @property
    def temp_path(self) -> str:
        """The remote temporary file (for diagnostics; gone after commit or abort)."""
        return self._temp

    async def write(self, data: Bytes) -> None:
        if self._state != "open":
            raise SinkError(f"cannot write {self._url}: upload {self._state}")
        if not data:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= self._buffer_size:
            await self._guarded(self._drain(), "write")

    async def finish(self) -> None:
        if self._state in ("finished", "committed"):
            return
        if self._state != "open":
            raise SinkError(f"cannot finish {self._url}: upload {self._state}")
        await self._guarded(self._drain(), "write")
        await self._guarded(self._sync_and_close(), "write")
        self._state = "finished"

    async def commit(self) -> None:
        if self._state not in ("open", "finished"):
            raise SinkError(f"cannot commit {self._url}: upload {self._state}")
        await self.finish()
        await self._guarded(self._publish(), "publish")
        self._state = "committed"

    async def abort(self) -> None:
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._pending.clear()
        self._pending_size = 0
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(Exception):  # the data is being thrown away anyway
                await handle.close()
        try:
            await self._sftp.remove(self._temp)
        except asyncssh.SFTPNoSuchFile:
            pass
        except Exception as exc:
            raise SinkError(
                f"cannot remove {self._temp} ({self._url}): {sftp_reason(exc)}"
            ) from exc

    async def _guarded(self, step: Awaitable[None], action: str) -> None:
        """Run one remote step; if it fails (or is cancelled) only abort is allowed afterwards.

        A failed write may have lost bytes, so publishing what is there would publish a
        truncated file.
        """
        try:
            await step
        except BaseException as exc:
            if self._state != "aborted":
                self._state = "failed"
            if isinstance(exc, Exception) and not isinstance(exc, SinkError):
                raise SinkError(f"cannot {action} {self._url}: {sftp_reason(exc)}") from exc
            raise

    async def _drain(self) -> None:
        if not self._pending:
            return
        # bytes for asyncssh (a lone ``bytes`` is returned as it is, a view is copied)
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if self._handle is None:
            raise SinkError(f"cannot write {self._url}: upload closed")
        await self._handle.write(data, self._offset)
        self._offset += len(data)

    async def _sync_and_close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            if self._fsync:
                with contextlib.suppress(asyncssh.SFTPOpUnsupported):  # server without fsync
                    await handle.fsync()
        finally:
            await handle.close()

    async def _publish(self) -> None:
        try:
            await self._sftp.posix_rename(self._temp, self._final)
        except asyncssh.SFTPOpUnsupported:
            # No atomic replace on this server: remove the old file first (not atomic).
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await self._sftp.remove(self._final)
            await self._sftp.rename(self._temp, self._final)


class SFTPSink:
    """Publishes files under the directory ``root`` of an SSH server (created on first use).

    A relative ``root`` is relative to the login directory. Pass ``session`` to share a
    connection with other users of the same server; :meth:`close` then leaves it open.
    """

    def __init__(
        self,
        config: SSHConfig,
        root: str,
        *,
        buffer_size: int = BUFFER_SIZE,
        fsync: bool = True,
        session: SFTPSession | None = None,
    ) -> None:
        if buffer_size < 1:
            raise ConfigError(f"SFTP buffer_size must be >= 1, got {buffer_size}")
        root = root.rstrip("/") or ("/" if root.startswith("/") else "")
        if "\x00" in root:
            raise ConfigError("SFTP root contains a NUL byte")
        self.config = config
        self.root = root or "."
        self._buffer_size = buffer_size
        self._fsync = fsync
        self._owns_session = session is None
        self._session = session or SFTPSession(config)
        self._lock = asyncio.Lock()
        self._real_root: str | None = None
        self._directories: set[str] = set()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SFTPSink:
        """``sftp://user@host:port/dir`` (``/~/dir`` = relative to the login directory).

        Options are :class:`SFTPSink` keywords or :class:`~streamx.ssh.SSHConfig` fields
        (``password``, ``client_keys``, ``known_hosts``, ``host_key``...). A password inside the
        URL is refused: secrets belong in the configuration's secret sources, not in URLs.
        """
        parts = urlsplit(url)
        if parts.scheme != "sftp" or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"not an SFTP sink URL (sftp://user@host:port/dir): {url!r}")
        if parts.password is not None:
            raise ConfigError("SFTP sink URL must not contain a password; pass it as an option")
        path = unquote(parts.path) or "/"
        root = path[3:] if path.startswith("/~/") else "." if path == "/~" else path
        names = {item.name for item in dataclasses.fields(SSHConfig)}
        settings = {key: options.pop(key) for key in list(options) if key in names}
        if "client_keys" in settings:
            settings["client_keys"] = tuple(settings["client_keys"])
        try:
            port = parts.port or 22
        except ValueError as exc:
            raise ConfigError(f"SFTP sink URL has an invalid port: {exc}") from None
        username = unquote(parts.username) if parts.username else None
        config = SSHConfig(host=parts.hostname, port=port, username=username, **settings)
        try:
            return cls(config, root, **options)
        except TypeError as exc:
            raise ConfigError(f"SFTP sink: {exc}") from None

    def path(self, relpath: str) -> str:
        """The remote path of ``relpath``."""
        return posixpath.join(self.root, *split_relpath(relpath))

    def location(self, relpath: str) -> str:
        path = self.path(relpath)
        shown = path if path.startswith("/") else f"/~/{path}"
        return f"sftp://{self.config.target}{shown}"

    async def open(self, relpath: str) -> SFTPPartUpload:
        parts = split_relpath(relpath)
        url = self.location(relpath)
        if self._closed:
            raise SinkError(f"cannot open {url}: sink closed")
        sftp = await self._client(url)
        directory = await self._directory(sftp, parts[:-1])
        final = posixpath.join(directory, parts[-1])
        temp = posixpath.join(directory, f".{parts[-1]}.tmp-{secrets.token_hex(8)}")
        try:
            handle = await sftp.open(temp, "xb")
        except Exception as exc:
            raise SinkError(f"cannot create {self._url(temp)}: {sftp_reason(exc)}") from exc
        return SFTPPartUpload(
            sftp,
            handle,
            temp=temp,
            final=final,
            url=url,
            buffer_size=self._buffer_size,
            fsync=self._fsync,
        )

    async def close(self) -> None:
        self._closed = True
        if self._owns_session:
            await self._session.close()

    # -- internals ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        shown = path if path.startswith("/") else f"/~/{path}"
        return f"sftp://{self.config.target}{shown}"

    async def _client(self, url: str) -> asyncssh.SFTPClient:
        try:
            return await self._session.client()
        except Exception as exc:
            reason = getattr(exc, "message", None) or sftp_reason(exc)
            raise SinkError(f"cannot open {url}: {reason}") from exc

    async def _directory(self, sftp: asyncssh.SFTPClient, names: tuple[str, ...]) -> str:
        """Create (or walk) ``names`` under the root; refuse a symlink that leads outside."""
        async with self._lock:
            if self._real_root is None:
                await self._make_dirs(sftp, self.root)
                self._real_root = await self._realpath(sftp, self.root)
            current = self.root
            for name in names:
                current = posixpath.join(current, name)
                if current in self._directories:
                    continue
                await self._make_dir(sftp, current)
                real = await self._realpath(sftp, current)
                if not _within(real, self._real_root):
                    raise SinkError(
                        f"refusing {self._url(current)}: it leads outside the root {self.root}"
                    )
                self._directories.add(current)
            return current

    async def _make_dirs(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        try:
            if await sftp.isdir(path):
                return
            await sftp.makedirs(path, exist_ok=True)
        except Exception as exc:
            raise SinkError(
                f"cannot create directory {self._url(path)}: {sftp_reason(exc)}"
            ) from exc

    async def _make_dir(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        try:
            await sftp.mkdir(path)
        except Exception as exc:
            # OpenSSH answers a mkdir over an existing entry with a generic failure.
            if await _is_dir(sftp, path):
                return
            reason = sftp_reason(exc)
            if isinstance(exc, asyncssh.SFTPFailure) and await _exists(sftp, path):
                reason = "exists and is not a directory"
            raise SinkError(f"cannot create directory {self._url(path)}: {reason}") from exc

    async def _realpath(self, sftp: asyncssh.SFTPClient, path: str) -> str:
        try:
            return str(await sftp.realpath(path))
        except Exception as exc:
            raise SinkError(f"cannot resolve {self._url(path)}: {sftp_reason(exc)}") from exc


async def _is_dir(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        return bool(await sftp.isdir(path))
    except asyncssh.SFTPError:
        return False


async def _exists(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        return bool(await sftp.exists(path))
    except asyncssh.SFTPError:
        return False


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


__all__ = ["BUFFER_SIZE", "SFTPPartUpload", "SFTPSink"]
