"""SSH connections for the SFTP sink and the SFTP landing-zone source, with verified host keys.

Every SSH connection streamx opens goes through :func:`connect`, so the rules hold everywhere:

* **Host keys are always verified**: against ``~/.ssh/known_hosts`` (or a configured file) by
  default, or against a pinned key (``host_key``: an OpenSSH public key line or its
  ``SHA256:`` fingerprint, as ``ssh-keygen -lf`` prints it). There is no option to skip the
  check. An unknown host and a *changed* key (a possible man in the middle) are refused with
  different, explicit messages that show the fingerprint the server presented.
* Authentication by password and/or private key files. With neither, asyncssh's defaults
  apply (ssh-agent, ``~/.ssh/id_*``). ``~/.ssh/config`` is not read, so a connection does
  exactly what its :class:`SSHConfig` says.
* Ciphers: ``aes128-gcm@openssh.com`` first (about twice the throughput of asyncssh's default
  choice on AES-NI hardware), then the other modern ones as fall-backs.
* Errors map onto the streamx tree: :class:`HostKeyError` and :class:`SSHAuthError` are
  permanent, refused connections, timeouts and drops are transient
  :class:`~streamx.engine.errors.NetworkError`. Messages name ``user@host:port``, never a
  password or a key.

:class:`SFTPSession` keeps one SFTP client per destination and reconnects after a drop, so
concurrent transfers share a connection and a resumed read does not need a new object.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from streamx.engine.errors import NetworkError, NetworkTimeoutError
from streamx.exceptions import ConfigError, PermanentError, StreamxError

#: Preferred ciphers, fastest first; the server picks the first one it supports.
FAST_CIPHERS: tuple[str, ...] = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class HostKeyError(PermanentError):
    """The server's host key is unknown, changed, or not the pinned one: refused."""


class SSHAuthError(PermanentError):
    """The server refused the login (wrong password or key, or user not allowed)."""


class SFTPFileError(PermanentError):
    """An SFTP operation on ``path`` was refused (no such file, permission denied, ...)."""

    def __init__(self, message: str, *, path: str, **context: str | None) -> None:
        super().__init__(message, **context)
        self.path = path


@dataclass(frozen=True)
class SSHConfig:
    """Where and how to log in. Secrets (``password``, ``passphrase``) stay out of ``repr``."""

    host: str
    port: int = 22
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: Private key files (OpenSSH or PEM format).
    client_keys: tuple[str, ...] = ()
    passphrase: str | None = field(default=None, repr=False)
    #: A known_hosts file; None = ``~/.ssh/known_hosts``. Ignored when ``host_key`` is set.
    known_hosts: str | None = None
    #: Pin the host key: ``"ssh-ed25519 AAAA..."`` or ``"SHA256:..."``.
    host_key: str | None = None
    connect_timeout: float = 30.0
    keepalive_interval: float = 30.0
    keepalive_count_max: int = 3
    ciphers: tuple[str, ...] = FAST_CIPHERS

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("SSH: host is required")
        if not 0 < self.port < 65536:
            raise ConfigError(f"SSH: invalid port {self.port}")
        if self.host_key is not None:
            pinned_fingerprint(self.host_key)  # fail on a malformed pin now, not at connect

    @property
    def target(self) -> str:
        """``user@host:port`` for messages."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"


def pinned_fingerprint(host_key: str) -> str:
    """The ``SHA256:`` fingerprint of a pinned host key (a key line or a fingerprint)."""
    text = host_key.strip()
    if text.startswith("SHA256:"):
        return text
    try:
        return str(asyncssh.import_public_key(text).get_fingerprint("sha256"))
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(
            f"SSH: host_key must be an OpenSSH public key line or a SHA256: fingerprint ({exc})"
        ) from None


class _Client(asyncssh.SSHClient):
    """Remembers the host key the server presented, and checks it against a pin if given."""

    def __init__(self, pinned: str | None) -> None:
        self.pinned = pinned
        self.presented: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # Called only for keys not already trusted by known_hosts.
        self.presented = str(key.get_fingerprint("sha256"))
        return self.pinned is not None and self.presented == self.pinned


def _known_hosts_path(config: SSHConfig) -> str:
    return os.path.expanduser(config.known_hosts or DEFAULT_KNOWN_HOSTS)


def connect_options(config: SSHConfig) -> dict[str, Any]:
    """Keyword arguments for :func:`asyncssh.connect` (host key checks added by
    :func:`connect`)."""
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "username": config.username,
        "config": None,  # never read ~/.ssh/config: the SSHConfig is the whole truth
        "encryption_algs": list(config.ciphers),
        "connect_timeout": config.connect_timeout,
        "keepalive_interval": config.keepalive_interval,
        "keepalive_count_max": config.keepalive_count_max,
    }
    if config.password is not None:
        options["password"] = config.password
    if config.client_keys:
        options["client_keys"] = list(config.client_keys)
        options["passphrase"] = config.passphrase
    if config.password is not None or config.client_keys:
        options["agent_path"] = None  # only what was configured, no surprise agent keys
        options.setdefault("client_keys", [])
    return options


async def connect(config: SSHConfig) -> asyncssh.SSHClientConnection:
    """Open a verified, authenticated SSH connection; errors mapped onto the streamx tree."""
    pinned = pinned_fingerprint(config.host_key) if config.host_key else None
    client = _Client(pinned)
    options = connect_options(config)
    if pinned is not None:
        options["known_hosts"] = ([], [], [])  # trust nothing by default; the pin decides
    else:
        path = _known_hosts_path(config)
        if config.known_hosts is not None and not os.path.isfile(path):
            raise ConfigError(f"SSH {config.target}: known_hosts file {path} does not exist")
        options["known_hosts"] = path if os.path.isfile(path) else ([], [], [])
    try:
        connection, _ = await asyncssh.create_connection(lambda: client, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise _host_key_error(config, client, pinned) from exc
    except Exception as exc:
        raise map_ssh_error(exc, f"SSH {config.target}") from exc
    return connection


def _host_key_error(config: SSHConfig, client: _Client, pinned: str | None) -> HostKeyError:
    where = f"SSH {config.target}"
    shown = f"the server presented {client.presented}" if client.presented else "no usable key"
    if pinned is not None:
        return HostKeyError(
            f"{where}: host key does not match the pinned key {pinned} ({shown}); refusing to"
            " connect"
        )
    path = _known_hosts_path(config)
    if os.path.isfile(path) and _has_entry(path, config):
        return HostKeyError(
            f"{where}: host key CHANGED: it does not match {path} ({shown}). Someone may be"
            " intercepting the connection, or the server was reinstalled; refusing to connect"
        )
    return HostKeyError(
        f"{where}: unknown host key ({shown}), not in {path}; add the host to known_hosts"
        " (ssh-keyscan) or pin its key (host_key)"
    )


def _has_entry(path: str, config: SSHConfig) -> bool:
    port = None if config.port == 22 else config.port
    try:
        keys = asyncssh.match_known_hosts(path, config.host, config.host, port)[0]
    except (OSError, ValueError):
        return False
    return bool(keys)


def map_ssh_error(exc: BaseException, where: str) -> StreamxError:
    """Map an asyncssh/socket failure onto the tree: auth and key problems are permanent,
    drops, refusals and timeouts transient."""
    if isinstance(exc, StreamxError):
        return exc
    if isinstance(exc, asyncssh.PermissionDenied):
        return SSHAuthError(f"{where}: login refused (permission denied): {exc.reason}")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyError(f"{where}: host key not verifiable: {exc.reason}")
    if isinstance(exc, asyncio.TimeoutError):
        return NetworkTimeoutError(f"{where}: timed out")
    if isinstance(exc, asyncssh.ConnectionLost | asyncssh.sftp.SFTPConnectionLost):
        return NetworkError(f"{where}: connection lost: {exc.reason}")
    if isinstance(exc, asyncssh.sftp.SFTPNoConnection):
        return NetworkError(f"{where}: no connection: {exc.reason}")
    if isinstance(exc, asyncssh.DisconnectError):
        return PermanentError(f"{where}: disconnected: {exc.reason}")
    if isinstance(exc, OSError):
        return NetworkError(f"{where}: {exc.strerror or exc}")
    return PermanentError(f"{where}: {type(exc).__name__}: {exc}")


def sftp_reason(exc: BaseException) -> str:
    """A short reason for a failed SFTP operation ("permission denied", "no such file"...)."""
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return "permission denied"
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return "no such file or directory"
    if isinstance(exc, asyncssh.SFTPError):
        return str(exc.reason) or type(exc).__name__
    if isinstance(exc, StreamxError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def is_connection_error(exc: BaseException) -> bool:
    """True if ``exc`` means the SSH connection itself is gone (reconnect and retry)."""
    return isinstance(
        exc,
        asyncssh.ConnectionLost
        | asyncssh.sftp.SFTPConnectionLost
        | asyncssh.sftp.SFTPNoConnection
        | ConnectionError
        | asyncio.TimeoutError,
    )


class SFTPSession:
    """One shared SFTP client for a destination, (re)connected on demand.

    :meth:`client` connects on first use; after a transfer saw the connection drop it calls
    :meth:`invalidate` with the broken client, and the next :meth:`client` reconnects (once,
    however many transfers noticed the drop).
    """

    def __init__(self, config: SSHConfig) -> None:
        self.config = config
        self._lock = asyncio.Lock()
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self.connects = 0

    async def client(self) -> asyncssh.SFTPClient:
        """The live SFTP client, connecting first if needed."""
        async with self._lock:
            if self._sftp is not None and self._connection is not None:
                if not self._connection.is_closed():
                    return self._sftp
                self._forget()
            connection = await connect(self.config)
            try:
                sftp = await connection.start_sftp_client()
            except BaseException as exc:
                connection.abort()
                if isinstance(exc, Exception):
                    raise map_ssh_error(exc, f"SFTP {self.config.target}") from exc
                raise
            self._connection, self._sftp = connection, sftp
            self.connects += 1
            return sftp

    async def invalidate(self, broken: asyncssh.SFTPClient) -> None:
        """Drop ``broken`` (if it is still the current client) so the next call reconnects."""
        async with self._lock:
            if self._sftp is broken:
                self._forget()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        async with self._lock:
            connection, sftp = self._connection, self._sftp
            self._connection, self._sftp = None, None
        if sftp is not None:
            sftp.exit()
        if connection is not None:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()

    def _forget(self) -> None:
        """Abandon the current (broken) connection without waiting for it."""
        if self._sftp is not None:
            self._sftp.exit()
        if self._connection is not None:
            self._connection.abort()
        self._connection, self._sftp = None, None


__all__ = [
    "DEFAULT_KNOWN_HOSTS",
    "FAST_CIPHERS",
    "HostKeyError",
    "SFTPFileError",
    "SFTPSession",
    "SSHAuthError",
    "SSHConfig",
    "connect",
    "connect_options",
    "is_connection_error",
    "map_ssh_error",
    "pinned_fingerprint",
    "sftp_reason",
]
