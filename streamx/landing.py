"""Landing zones: the place a Cordial export job writes its files and streamx reads them back.

Cordial never hands out a download URL; it writes the export to the ``destination`` named in the
request. So streamx owns a landing zone per Cordial account (an S3 prefix, an SFTP directory or,
for the demo and the simulator, a local directory), gives every job its own fresh sub-path in it
(so a retried request can never mix its files with another job's), and after the job is Done
lists that sub-path and streams each chunk file in order.

A landing zone type is one class plus one line in :data:`LANDING_ZONES`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from streamx.config import LandingConfig
from streamx.exceptions import ConfigError, InputError, PermanentError

if TYPE_CHECKING:
    from streamx.vendors.base import CallOptions

CHUNK_SIZE = 1024 * 1024
_DIGITS = re.compile(r"(\d+)")


class LandingZone(Protocol):
    """Where one Cordial account's export files land.

    Paths are ``/``-separated and relative to the zone's root; ``job_path`` makes a fresh one.
    """

    def job_path(self, token: str) -> str:
        """The sub-path a job identified by ``token`` writes into."""
        ...

    def destination(self, path: str) -> dict[str, Any]:
        """The ``destination`` object of a Cordial export request that writes into ``path``."""
        ...

    async def prepare(self, path: str) -> None:
        """Make ``path`` ready to receive files (SFTP servers need the folder to exist)."""
        ...

    async def list_files(self, path: str) -> list[tuple[str, int]]:
        """``(name, size)`` of every file under ``path``, in chunk order (``x_2`` before
        ``x_10``); ``name`` is what :meth:`open` takes."""
        ...

    def open(
        self, name: str, offset: int = 0, options: CallOptions | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes of ``name`` from ``offset``, in chunks of about 1 MiB. Network reads retry
        under ``options`` (the export's policy: deadline, retry budget, clock), so a stalled
        landing zone cannot keep an export busy past its deadline."""
        ...

    def location(self, name: str) -> str:
        """``name`` as people should see it (absolute path or URI)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def retry_options(options: CallOptions | None) -> dict[str, Any]:
    """Keyword arguments of a network byte source (S3Source, SFTPSource) that make its reads
    retry under the export's own policy, clock and random source (none: the source's default)."""
    if options is None:
        return {}
    return {"policy": options.policy, "clock": options.clock, "rng": options.rng}


def check_relative(name: str) -> None:
    """Refuse a vendor-listed or configured name that could leave the zone: absolute, with an
    empty, ``.`` or ``..`` segment, a backslash or a NUL."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise PermanentError(f"refusing landing path {name!r}: not a relative path")
    if not is_plain(name):
        raise PermanentError(f"refusing landing path {name!r}: empty, '.' or '..' segment")


def is_plain(name: str) -> bool:
    """No empty, ``.`` or ``..`` segment, no backslash or NUL."""
    if "\\" in name or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def checked_options(
    options: Mapping[str, Any], types: Mapping[str, tuple[type, ...]], zone: str
) -> dict[str, Any]:
    """``options`` of a ``zone`` landing zone with unknown keys and wrong TOML types refused."""
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise ConfigError(f"{zone} landing zone: unknown key(s) {', '.join(unknown)}")
    for key, value in options.items():
        kinds = types[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(kind.__name__ for kind in kinds)
            raise ConfigError(f"{zone} landing zone: {key} must be {expected}, got {value!r}")
    return dict(options)


def chunk_order(name: str) -> tuple[Any, ...]:
    """Sort key putting numbered chunk files in numeric order (``_2`` before ``_10``)."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


class LocalLandingZone:
    """A local directory (the demo, the simulator's ``local`` destination, shared mounts).

    Cordial itself cannot write to a local directory: the request's destination is
    ``{"type": "local", "path": ...}``, which only the simulator understands. ``root`` must be
    the directory the simulator was given as ``local_root``.
    """

    def __init__(self, root: str | os.PathLike[str], *, prefix: str = "streamx") -> None:
        self.root = os.path.realpath(os.fspath(root))
        self.prefix = prefix.strip("/")

    @classmethod
    def from_config(cls, config: LandingConfig) -> LocalLandingZone:
        if config.dir is None:
            raise ConfigError("a local landing zone needs dir")
        if config.options:
            raise ConfigError(f"local landing zone: unknown key(s) {', '.join(config.options)}")
        return cls(config.dir, prefix=config.prefix)

    def job_path(self, token: str) -> str:
        return f"{self.prefix}/{token}" if self.prefix else token

    def destination(self, path: str) -> dict[str, Any]:
        return {"type": "local", "path": path}

    async def prepare(self, path: str) -> None:
        await asyncio.to_thread(os.makedirs, self._resolve(path), exist_ok=True)

    async def list_files(self, path: str) -> list[tuple[str, int]]:
        return await asyncio.to_thread(self._list, path)

    async def open(
        self, name: str, offset: int = 0, options: CallOptions | None = None
    ) -> AsyncIterator[bytes]:
        path = self._resolve(name)
        handle = await asyncio.to_thread(_open_at, path, offset)
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            handle.close()

    def location(self, name: str) -> str:
        return self._resolve(name)

    async def close(self) -> None:
        return None

    def _list(self, path: str) -> list[tuple[str, int]]:
        directory = self._resolve(path)
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PermanentError(f"cannot list landing zone {directory}: {exc.strerror}") from exc
        files = [
            (f"{path.rstrip('/')}/{entry.name}", entry.stat().st_size)
            for entry in entries
            if entry.is_file() and not entry.name.startswith(".")
        ]
        return sorted(files, key=lambda item: chunk_order(item[0]))

    def _resolve(self, name: str) -> str:
        if name.startswith("/") or "\\" in name or "\x00" in name:
            raise PermanentError(f"refusing landing path {name!r}")
        path = os.path.realpath(os.path.join(self.root, name))
        if os.path.commonpath([path, self.root]) != self.root:
            raise PermanentError(f"landing path {name!r} leads outside {self.root}")
        return path


def _open_at(path: str, offset: int) -> BinaryIO:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by LocalLandingZone.open
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), file=path) from exc
    handle.seek(offset)
    return handle


def _lazy(module: str, name: str) -> Callable[[LandingConfig], LandingZone]:
    """``module.name.from_config``, imported on first use: a local run never imports aioboto3
    or asyncssh (and those modules import this one)."""

    def factory(config: LandingConfig) -> LandingZone:
        zone_type: Any = getattr(importlib.import_module(module), name)
        return cast(LandingZone, zone_type.from_config(config))

    return factory


#: Landing zone type -> factory.
LANDING_ZONES: dict[str, Callable[[LandingConfig], LandingZone]] = {
    "local": LocalLandingZone.from_config,
    "s3": _lazy("streamx.landing_s3", "S3LandingZone"),
    "sftp": _lazy("streamx.landing_sftp", "SFTPZone"),
}


def open_landing_zone(config: LandingConfig) -> LandingZone:
    """The landing zone a configuration describes; ConfigError for an unknown type."""
    factory = LANDING_ZONES.get(config.type)
    if factory is None:
        known = ", ".join(LANDING_ZONES)
        raise ConfigError(f"landing zone type {config.type!r} is not available (known: {known})")
    return factory(config)


__all__ = [
    "LANDING_ZONES",
    "LandingZone",
    "LocalLandingZone",
    "chunk_order",
    "open_landing_zone",
]
