"""Incremental gzip decoding, chosen by magic bytes (never by file name).

Why these rules:

* **Multi-member.** ``cat a.gz b.gz`` is a valid gzip file (RFC 1952 section 2.2) and some exporters
  write one member per flush; every member is decoded in turn. NUL padding between or after
  members is skipped, as GNU gzip and Python's ``gzip`` module do (tape/block writers pad).
* **Truncation is an error.** A stream that stops inside a member (header, deflate data or the
  CRC/size trailer) raises :class:`CorruptInputError` at ``flush``: a short read must never look
  like a complete file. Garbage after a member that is not another member is an error too.
* **Bombs.** Output is produced in pieces of at most ``_PIECE`` bytes; after every piece the
  output/input ratio is checked, so a 1000x-compressible stream is stopped after at most
  ``max(min_bomb_bytes, max_ratio * consumed)`` bytes instead of filling memory in one call.
  One ``feed`` returns at most ``max_ratio`` times the compressed bytes consumed so far (once past
  ``min_bomb_bytes``): large for pathological input, but bounded.
* **Speed.** ``isal`` (Intel ISA-L, ~1.5x zlib here) is used when importable, else stdlib zlib.
  isal 1.9.1 fails (checksum / invalid block errors) when a header with FHCRC or FNAME+FCOMMENT
  is split across ``decompress`` calls, so each member's header is buffered until complete and
  handed over in one call.
"""

from __future__ import annotations

import zlib
from types import ModuleType

from streamx.bytes_like import Bytes
from streamx.exceptions import CorruptInputError, DecompressionBombError

try:  # pragma: no cover - which branch runs depends on the environment
    from isal import isal_zlib as _fast_zlib

    _ZLIB: ModuleType = _fast_zlib
except ImportError:  # pragma: no cover
    _ZLIB = zlib

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 31  # 16 + MAX_WBITS: expect a gzip header and trailer
_PIECE = 1 << 20  # max bytes produced per decompress() call, between two bomb checks
_MAX_HEADER = 1 << 20  # FEXTRA is at most 64 KiB; file names and comments are short
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 2, 4, 8, 16


def _header_length(head: bytes) -> int:
    """Length of the gzip member header at the start of ``head``; -1 if it is incomplete."""
    if len(head) < 10:
        return -1
    flags, end = head[3], 10
    if flags & _FEXTRA:
        if len(head) < end + 2:
            return -1
        end += 2 + int.from_bytes(head[end : end + 2], "little")
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            nul = head.find(b"\x00", end)
            if nul < 0:
                return -1
            end = nul + 1
    if flags & _FHCRC:
        end += 2
    return end if len(head) >= end else -1


def is_gzip(prefix: bytes) -> bool:
    """True when ``prefix`` starts with the gzip magic bytes ``1f 8b``."""
    return prefix[:2] == GZIP_MAGIC


class IdentityDecoder:
    """The decoder for uncompressed input: bytes pass through unchanged."""

    def feed(self, data: bytes) -> bytes:
        """Return ``data`` as is."""
        return data

    def flush(self) -> bytes:
        """Nothing is ever held back."""
        return b""


class GzipDecoder:
    """Decode a (multi-member) gzip stream fed in chunks split anywhere."""

    def __init__(self, *, max_ratio: int = 1000, min_bomb_bytes: int = 64 * 1024 * 1024) -> None:
        self._max_ratio = max_ratio
        self._min_bomb_bytes = min_bomb_bytes
        self._member: zlib._Decompress | None = None
        self._held = b""  # bytes after a member, too few to tell whether a new member starts
        self._members = 0
        self._consumed = 0  # compressed bytes handed to (or skipped before) a member
        self._fed = 0  # compressed bytes received
        self._produced = 0  # decompressed bytes returned

    @property
    def members(self) -> int:
        """Number of complete gzip members decoded so far."""
        return self._members

    def feed(self, data: Bytes) -> bytes:
        """Decompress ``data``; return the output that is ready (possibly empty)."""
        self._fed += len(data)
        pieces: list[bytes] = []
        rest = data
        while rest:
            if self._member is None:
                rest = self._start_member(rest)
                if self._member is None:
                    break
            rest = self._inflate(rest, pieces)
        return b"".join(pieces)

    def flush(self) -> bytes:
        """Check that the stream ended on a member boundary; raise if it was cut short."""
        if self._member is not None or self._held:
            raise CorruptInputError(
                f"truncated gzip stream: member {self._members + 1} is incomplete",
                offset=self._fed,
            )
        if self._members == 0:
            raise CorruptInputError("empty gzip stream: no gzip member found", offset=self._fed)
        return b""

    def _start_member(self, data: Bytes) -> bytes:
        """Open the next member if ``data`` starts one; skip NUL padding; hold a partial magic."""
        head = self._held + data
        self._held = b""
        if self._members:
            stripped = head.lstrip(b"\x00")
            self._consumed += len(head) - len(stripped)
            head = stripped
        if len(head) < len(GZIP_MAGIC) and GZIP_MAGIC.startswith(head):
            self._held = head
            return b""
        if not head.startswith(GZIP_MAGIC):
            what = "trailing garbage after gzip member" if self._members else "not a gzip stream"
            raise CorruptInputError(what, offset=self._consumed)
        if _header_length(head) < 0:  # hand isal the whole header in one call (see above)
            if len(head) > _MAX_HEADER:
                raise CorruptInputError("gzip header too long", offset=self._consumed)
            self._held = head
            return b""
        self._member = _ZLIB.decompressobj(_GZIP_WBITS)
        return head

    def _inflate(self, data: Bytes, pieces: list[bytes]) -> bytes:
        """Feed ``data`` to the current member piecewise; return input left after its end."""
        member = self._member
        assert member is not None
        chunk = data
        while True:
            try:
                out = member.decompress(chunk, _PIECE)
            except _ZLIB.error as exc:
                raise CorruptInputError(f"invalid gzip data: {exc}", offset=self._consumed) from exc
            if member.eof:
                self._account(len(chunk) - len(member.unused_data), out, pieces)
                self._member = None
                self._members += 1
                return member.unused_data
            self._account(len(chunk) - len(member.unconsumed_tail), out, pieces)
            chunk = member.unconsumed_tail
            if not chunk and len(out) < _PIECE:
                return b""

    def _account(self, used: int, out: bytes, pieces: list[bytes]) -> None:
        """Record one decompress step and stop a decompression bomb."""
        self._consumed += used
        self._produced += len(out)
        if out:
            pieces.append(out)
        if self._produced > self._min_bomb_bytes and self._produced > self._max_ratio * max(
            self._consumed, 1
        ):
            raise DecompressionBombError(
                f"decompression bomb: {self._produced} bytes out of {self._consumed} compressed "
                f"bytes exceeds the allowed ratio {self._max_ratio}",
                offset=self._consumed,
            )


def make_decoder(
    prefix: bytes,
    *,
    max_ratio: int = 1000,
    min_bomb_bytes: int = 64 * 1024 * 1024,
) -> GzipDecoder | IdentityDecoder:
    """Choose the decoder from the first bytes of the raw stream (at least 2 unless shorter)."""
    if is_gzip(prefix):
        return GzipDecoder(max_ratio=max_ratio, min_bomb_bytes=min_bomb_bytes)
    return IdentityDecoder()
