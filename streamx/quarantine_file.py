"""An export's quarantine file: the source rows that could not become records, one JSON line each.

Why a file of its own: a bad row must neither stop the export nor vanish, so it is kept (file,
line, reason and the raw row) beside the parts as uncompressed JSON lines, and counted in the
manifest's row accounting (``rows_ok + rows_quarantined == rows_read``). The file is opened
through the sink only when the first row is quarantined, so a clean export has none, and like
the parts it stays under a temporary name until the publisher commits.
"""

from __future__ import annotations

import orjson

from streamx.sinks.base import PartUpload, Sink


def quarantine_line(file: str, line: int, reason: str, raw: str) -> bytes:
    """One quarantine entry as a JSON line; undecodable input stays visible as escapes."""
    entry = {"file": file, "line": line, "reason": reason, "raw": raw}
    try:
        return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # Lone surrogates (undecodable input kept via surrogateescape) are not valid UTF-8:
        # keep them visible as \udcXX text instead of losing the row.
        entry = {key: _printable(value) for key, value in entry.items()}
        return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)


def _printable(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


class QuarantineFile:
    """The quarantine file at ``relpath`` in ``sink``, opened on first use.

    Not safe for concurrent writes: the caller serializes them.
    """

    def __init__(self, sink: Sink, relpath: str) -> None:
        self._sink = sink
        self.relpath = relpath
        self._upload: PartUpload | None = None

    @property
    def opened(self) -> bool:
        """Whether the file exists (a row was quarantined or it was reopened): only then does
        the manifest name it."""
        return self._upload is not None

    async def open(self) -> PartUpload:
        """The file's upload, opened through the sink if it is not yet.

        A publisher restored from a checkpoint reopens the file this way: the sink must still
        hold what was written before (the engine's checkpoint sink does).
        """
        if self._upload is None:
            self._upload = await self._sink.open(self.relpath)
        return self._upload

    async def write(self, entry: bytes) -> None:
        """Append one entry (a :func:`quarantine_line`)."""
        upload = await self.open()
        await upload.write(entry)

    async def finish(self) -> None:
        """Make what was written durable, still under the temporary name (if it was opened)."""
        if self._upload is not None:
            await self._upload.finish()

    async def commit(self) -> None:
        """Publish the file under its final name (if it was opened)."""
        if self._upload is not None:
            await self._upload.commit()

    def uploads(self) -> list[PartUpload]:
        """The file's upload, if it was opened (to abort it)."""
        return [] if self._upload is None else [self._upload]


__all__ = ["QuarantineFile", "quarantine_line"]
