"""Small byte-level helpers shared by the parsers: BOM removal and lossless-ish raw text.

The parsers work on bytes and cut only at ASCII bytes (newline, quote, comma, brace), which never
occur inside a multi-byte UTF-8 sequence; so they never need an incremental text decoder. The one
thing that must be handled across chunk boundaries is the 3-byte UTF-8 byte order mark, which a
chunk split can cut in two: :class:`BomSkipper` holds back up to two bytes until it can tell.
"""

from __future__ import annotations

UTF8_BOM = b"\xef\xbb\xbf"


class BomSkipper:
    """Remove one UTF-8 byte order mark from the very start of a byte stream.

    ``feed`` returns the bytes that are known not to be (part of) a leading BOM; ``flush``
    returns whatever was held back because the input ended before the question was settled.
    """

    __slots__ = ("_decided", "_held")

    def __init__(self) -> None:
        self._decided = False
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        """Pass ``data`` through, minus a leading BOM (possibly split across feeds)."""
        if self._decided:
            return data
        head = self._held + data
        if len(head) < len(UTF8_BOM) and UTF8_BOM.startswith(head):
            self._held = head
            return b""
        self._decided = True
        self._held = b""
        return head[len(UTF8_BOM) :] if head.startswith(UTF8_BOM) else head

    @property
    def pending(self) -> int:
        """Bytes held back while undecided (at most two)."""
        return len(self._held)

    def flush(self) -> bytes:
        """Return bytes held back (a strict prefix of a BOM that never completed)."""
        self._decided = True
        held, self._held = self._held, b""
        return held


def lossy_text(raw: bytes | bytearray | memoryview, encoding: str = "utf-8") -> str:
    """Decode raw bytes for quarantine: invalid bytes become ``\\xNN`` escapes, never an error."""
    return bytes(raw).decode(encoding, errors="backslashreplace")
