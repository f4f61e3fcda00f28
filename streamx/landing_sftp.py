"""An SFTP landing zone: Cordial writes an export's files into a directory on an SSH server.

The request's ``destination`` is what Cordial's export docs and OpenAPI subset describe for
SFTP: ``type: "sftp"``, ``server``, ``port`` (an integer), ``username``, ``password`` (or
``savedKey``, the *name* of a key pair saved in Cordial, instead of the password) and ``path``,
the folder the files go to. Cordial may reach the server under another name than streamx does
(a public address in front of an internal one): ``cordial_host``/``cordial_port`` say so.
Cordial does not create the folder, so :meth:`SFTPZone.prepare` makes it before the job starts.

Reading wraps :mod:`streamx.sources.sftp` (named ``SFTPZone`` because that module already has a
lower-level ``SFTPLandingZone``, one directory without the job layout): the job's folder is
listed, and each file is streamed with large pipelined reads, resumed at the offset reached
after a drop, and pinned to the version (``size-mtime``) it was listed with, so a file replaced
or still growing is a clear :class:`~streamx.engine.errors.ObjectChangedError`.

Host keys are always verified (:mod:`streamx.ssh`). Every name is checked before use: relative,
no ``.``/``..``/empty segments, inside the zone's prefix; a listed name holding ``/`` is refused
by the listing itself.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import asyncssh

from streamx.config import LandingConfig
from streamx.exceptions import ConfigError, PermanentError
from streamx.landing import check_relative, checked_options, chunk_order, is_plain, retry_options
from streamx.sources.sftp import RemoteFile, SFTPLandingZone, SFTPSource
from streamx.ssh import (
    SFTPFileError,
    SFTPSession,
    SSHConfig,
    is_connection_error,
    map_ssh_error,
    sftp_reason,
)

if TYPE_CHECKING:
    from streamx.vendors.base import CallOptions

#: How many listed files keep their version for pinning (older ones are pinned at first read).
PINNED_LIMIT = 10_000
#: Configuration keys and their TOML types (secrets arrive resolved from ``…_env``/``…_file``).
OPTION_TYPES: Mapping[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "username": (str,),
    "password": (str,),
    "client_keys": (list,),
    "passphrase": (str,),
    "known_hosts": (str,),
    "host_key": (str,),
    "connect_timeout": (int, float),
    "keepalive_interval": (int, float),
    "keepalive_count_max": (int,),
    "path": (str,),
    "saved_key": (str,),
    "cordial_host": (str,),
    "cordial_port": (int,),
}
_SSH_CONFIG_KEYS = (
    "host",
    "port",
    "username",
    "password",
    "client_keys",
    "passphrase",
    "known_hosts",
    "host_key",
    "connect_timeout",
    "keepalive_interval",
    "keepalive_count_max",
)


class SFTPZone:
    """The directory ``root`` on an SSH server, as a :class:`~streamx.landing.LandingZone`.

    ``root`` is absolute, or relative to the login directory ("" = the login directory); jobs
    write to ``<root>/<prefix>/<token>``. Cordial logs in as ``config.username`` with
    ``config.password``, or with the key saved in Cordial as ``saved_key``. Pass ``session``
    to share a connection (the caller closes it).
    """

    def __init__(
        self,
        config: SSHConfig,
        *,
        root: str = "",
        prefix: str = "streamx",
        saved_key: str | None = None,
        cordial_host: str | None = None,
        cordial_port: int | None = None,
        session: SFTPSession | None = None,
    ) -> None:
        if not config.username:
            raise ConfigError("SFTP landing zone: username is required (Cordial logs in with it)")
        if config.password is None and not saved_key:
            raise ConfigError(
                "SFTP landing zone: Cordial needs password_env / password_file, or saved_key"
                " (a key saved in Cordial)"
            )
        if "\x00" in root:
            raise ConfigError("SFTP landing zone: path contains a NUL byte")
        if cordial_port is not None and not 0 < cordial_port < 65536:
            raise ConfigError(f"SFTP landing zone: invalid cordial_port {cordial_port}")
        self.config = config
        self.root = root.rstrip("/") or ("/" if root.startswith("/") else "")
        self.prefix = prefix.strip("/")
        if self.prefix and not is_plain(self.prefix):
            raise ConfigError(f"SFTP landing zone: invalid prefix {prefix!r}")
        self.saved_key = saved_key
        self.cordial_host = cordial_host or config.host
        self.cordial_port = cordial_port or config.port
        self._owns_session = session is None
        self.session = session or SFTPSession(config)
        self._listed: OrderedDict[str, RemoteFile] = OrderedDict()

    def __repr__(self) -> str:
        return f"SFTPZone({self.location(self.prefix or '.')!r})"

    @classmethod
    def from_config(cls, config: LandingConfig) -> SFTPZone:
        """The zone a ``type = "sftp"`` landing table describes (keys: docs/configuration.md)."""
        if config.dir is not None:
            raise ConfigError("sftp landing zone: the remote directory is path, not dir")
        options = _checked(config.options)
        if "host" not in options:
            raise ConfigError("sftp landing zone: host is required")
        settings = {key: options.pop(key) for key in _SSH_CONFIG_KEYS if key in options}
        settings["client_keys"] = tuple(settings.get("client_keys", ()))
        return cls(
            SSHConfig(**settings),
            root=options.pop("path", ""),
            prefix=config.prefix,
            saved_key=options.pop("saved_key", None),
            cordial_host=options.pop("cordial_host", None),
            cordial_port=options.pop("cordial_port", None),
        )

    # -- the LandingZone protocol ---------------------------------------------------------

    def job_path(self, token: str) -> str:
        if not token or "/" in token or token in (".", ".."):
            raise ValueError(f"invalid job token {token!r}")
        return f"{self.prefix}/{token}" if self.prefix else token

    def destination(self, path: str) -> dict[str, Any]:
        """Cordial's SFTP destination writing into the folder ``path`` of the zone."""
        self._check(path)
        destination: dict[str, Any] = {
            "type": "sftp",
            "server": self.cordial_host,
            "port": self.cordial_port,
            "username": self.config.username,
        }
        if self.saved_key:
            destination["savedKey"] = self.saved_key
        else:
            destination["password"] = self.config.password
        destination["path"] = self.remote(path)
        return destination

    async def prepare(self, path: str) -> None:
        """Create the job's folder (and missing parents): Cordial does not."""
        self._check(path)
        remote = self.remote(path)
        sftp = await self.session.client()
        if await self._make_dir(sftp, remote, strict=False):
            return  # the usual case: only the job's own folder was missing
        parts = remote.split("/")
        for end in range(1, len(parts) + 1):
            current = "/".join(parts[:end])
            if current not in ("", "."):
                await self._make_dir(sftp, current, strict=True)

    async def list_files(self, path: str) -> list[tuple[str, int]]:
        """Regular files directly in ``path`` (none if it is missing), chunk order."""
        self._check(path)
        listed = await SFTPLandingZone(self.session, self.remote(path)).list(missing_ok=True)
        files = []
        for file in listed:
            name = f"{path}/{file.name}"
            self._check(name)
            self._pin(name, file)
            files.append((name, file.size))
        return sorted(files, key=lambda item: chunk_order(item[0]))

    async def open(
        self, name: str, offset: int = 0, options: CallOptions | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes from ``offset``, pinned to the version it was listed with."""
        self._check(name)
        listed = self._listed.get(name)
        source = SFTPSource(
            self.session,
            self.remote(name),
            start_offset=offset,
            **retry_options(options),
            expected_version=listed.version if listed is not None else None,
        )
        async with contextlib.aclosing(source.chunks()) as chunks:
            async for chunk in chunks:
                yield chunk

    def location(self, name: str) -> str:
        return self._url(self.remote(name))

    async def close(self) -> None:
        if self._owns_session:
            await self.session.close()

    # -- internals ------------------------------------------------------------------------

    async def _make_dir(self, sftp: asyncssh.SFTPClient, remote: str, *, strict: bool) -> bool:
        """mkdir ``remote``; True if it is a folder now. A failure is an error if ``strict``
        (naming the folder and the reason), else False (a parent may be missing)."""
        try:
            await sftp.mkdir(remote)
            return True
        except Exception as exc:
            if is_connection_error(exc):
                await self.session.invalidate(sftp)
                raise map_ssh_error(exc, f"{self._url(remote)}: mkdir") from exc
            with contextlib.suppress(asyncssh.SFTPError):
                if await sftp.isdir(remote):
                    return True
            if not strict:
                return False
            raise SFTPFileError(
                f"cannot create landing folder {self._url(remote)}: {sftp_reason(exc)}",
                path=remote,
            ) from exc

    def remote(self, name: str) -> str:
        """The server-side path of the zone-relative ``name``."""
        return posixpath.join(self.root, name) if self.root else name

    def _url(self, path: str) -> str:
        shown = path if path.startswith("/") else f"/~/{path}"
        return f"sftp://{self.config.target}{shown}"

    def _check(self, name: str) -> None:
        """Refuse a name that is not a plain relative path inside the zone's prefix."""
        check_relative(name)
        if self.prefix and not name.startswith(f"{self.prefix}/"):
            raise PermanentError(
                f"refusing landing path {name!r}: it is outside the zone's prefix {self.prefix!r}"
            )

    def _pin(self, name: str, file: RemoteFile) -> None:
        self._listed[name] = file
        self._listed.move_to_end(name)
        while len(self._listed) > PINNED_LIMIT:
            self._listed.popitem(last=False)


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with unknown keys and wrong TOML types refused."""
    checked = checked_options(options, OPTION_TYPES, "sftp")
    keys = checked.get("client_keys", [])
    if not all(isinstance(item, str) and item for item in keys):
        raise ConfigError("sftp landing zone: client_keys must be a list of key file paths")
    return checked


__all__ = ["OPTION_TYPES", "PINNED_LIMIT", "SFTPZone"]
