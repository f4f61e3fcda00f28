"""Streaming compressors for published parts: gzip, zstd, none.

Each part gets a fresh compressor and is one standard container: a single gzip member (readable
by ``gzip.open``, ``zcat``, DuckDB…) or a single zstd frame. gzip uses python-isal when it is
installed (about ten times faster than zlib at its fastest level) and the stdlib ``zlib``
otherwise; zstd needs the optional ``zstandard`` package (``pip install 'streamx[zstd]'``).

Levels default to *fast*: output is usually re-read by machines, and compression is the most
expensive step of publishing. A level is the backend's own scale; isal only has levels 0-3, so a
gzip level above 3 means isal's best (3) when isal is in use.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from streamx.bytes_like import Bytes
from streamx.exceptions import ConfigError


def _optional(module: str) -> ModuleType | None:
    """Import an optional accelerator or codec; ``None`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


_isal_zlib = _optional("isal.isal_zlib")
_zstandard = _optional("zstandard")

_GZIP_WBITS = 31  # deflate with a gzip header and trailer
_ISAL_MAX_LEVEL = 3

#: Which library writes gzip here: ``"isal"`` or ``"zlib"``.
GZIP_BACKEND = "isal" if _isal_zlib is not None else "zlib"


class Compressor(Protocol):
    """Incremental compressor: feed with :meth:`compress`, end the stream with :meth:`flush`."""

    def compress(self, data: Bytes) -> Bytes: ...

    def flush(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Compression:
    """One compression method: its name, file suffix and how to make a compressor."""

    name: str
    #: Appended to the part name: ``.gz``, ``.zst`` or empty.
    extension: str
    default_level: int | None
    min_level: int
    max_level: int
    factory: Callable[[int], Compressor]

    def new(self, level: int | None = None) -> Compressor:
        """A compressor for one part; ``level`` ``None`` means this method's fast default."""
        if level is None:
            level = self.default_level if self.default_level is not None else 0
        elif not self.min_level <= level <= self.max_level:
            raise ConfigError(
                f"{self.name} compression level must be in {self.min_level}..{self.max_level}, "
                f"got {level}"
            )
        return self.factory(level)


class _Identity:
    """The ``none`` method: bytes pass through unchanged."""

    def compress(self, data: Bytes) -> Bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _gzip(level: int) -> Compressor:
    if _isal_zlib is not None:
        backend: ModuleType = _isal_zlib
        level = min(level, _ISAL_MAX_LEVEL)
    else:
        backend = zlib
    compressor: Compressor = backend.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    return compressor


def _zstd(level: int) -> Compressor:
    if _zstandard is None:
        raise _zstd_missing()
    compressor: Compressor = _zstandard.ZstdCompressor(level=level).compressobj()
    return compressor


def _zstd_missing() -> ConfigError:
    return ConfigError(
        "compression 'zstd' needs the zstandard package: install the 'zstd' extra "
        "(pip install 'streamx[zstd]')"
    )


COMPRESSIONS: dict[str, Compression] = {
    "gzip": Compression("gzip", ".gz", 1, 0, 9, _gzip),
    "zstd": Compression("zstd", ".zst", 3, 1, 22, _zstd),
    "none": Compression("none", "", None, 0, 0, lambda _level: _Identity()),
}


def get_compression(name: str) -> Compression:
    """The compression method ``name``, checked to be usable here (else :class:`ConfigError`)."""
    try:
        method = COMPRESSIONS[name]
    except KeyError:
        known = ", ".join(sorted(COMPRESSIONS))
        raise ConfigError(f"unknown compression {name!r} (known: {known})") from None
    if name == "zstd" and _zstandard is None:
        raise _zstd_missing()
    return method
