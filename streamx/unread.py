"""Decoded bytes not yet cut into blocks, kept where the decoder put them.

The block-wise paths (the CSV lanes, the JSON lines blocks) cut blocks as views of these bytes,
not copies. A chunk that arrives with nothing left over is kept as it is; a rest is joined to
the next chunk (one copy), so no byte is copied more than once before its block is parsed. The
``bytearray`` these paths used before copied every byte twice (in on append, out per block)
and regrew as it went, all of it holding the GIL on the event loop: a sixth of the time the
JSON lines fast path held it, an eighth of the CSV one's.

A view keeps the chunk it comes from alive until its block is written: with a few blocks in
flight, a few chunks (~1 MB each) at most.
"""

from __future__ import annotations


class Unread:
    """``data[start:]``: what is left of the decoded input. Lengths and positions given to and
    returned by the methods count from ``start``."""

    __slots__ = ("data", "start")

    def __init__(self) -> None:
        self.data = b""
        self.start = 0

    def __len__(self) -> int:
        return len(self.data) - self.start

    def append(self, chunk: bytes) -> None:
        """Add decoded bytes after the rest."""
        if not len(self):
            self.data, self.start = bytes(chunk), 0  # bytes(): a no-op for ``bytes``
            return
        with memoryview(self.data) as view:
            self.data = b"".join((view[self.start :], chunk))
        self.start = 0

    def view(self, size: int) -> memoryview:
        """The first ``size`` bytes, without copying them."""
        return memoryview(self.data)[self.start : self.start + size]

    def copy(self, size: int) -> bytes:
        """The first ``size`` bytes as ``bytes`` (for consumers that need them: the row
        parsers, the helper process)."""
        return self.data[self.start : self.start + size]

    def drop(self, size: int) -> None:
        """Step over the first ``size`` bytes."""
        self.start += size

    def count(self, needle: bytes, size: int) -> int:
        """Occurrences of ``needle`` in the first ``size`` bytes."""
        return self.data.count(needle, self.start, self.start + size)

    def ends_with_newline(self) -> bool:
        return len(self) > 0 and self.data[-1] == 0x0A

    def after_last_newline(self, size: int | None = None) -> int:
        """Length up to and including the last newline in the first ``size`` bytes (all of
        them by default); 0 when there is none."""
        stop = len(self.data) if size is None else self.start + size
        found = self.data.rfind(b"\n", self.start, stop)
        return 0 if found < 0 else found + 1 - self.start

    def after_newline_from(self, skip: int) -> int:
        """Length up to and including the first newline at or after ``skip``; 0: none."""
        found = self.data.find(b"\n", self.start + skip)
        return 0 if found < 0 else found + 1 - self.start
