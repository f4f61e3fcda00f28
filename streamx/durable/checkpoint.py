"""Checkpoints: what a killed export needs to resume exactly, and the sink that makes it durable.

The design (proved exact in docs/backfill.md): a checkpoint is taken at a *row boundary* of the
input (after a chunk has been parsed, normalized and written). At that moment the publisher's
open part is sealed (:meth:`~streamx.publish.Publisher.cut`), so every record written so far
lies in sealed parts, and :class:`CheckpointSink` has already placed each sealed part at its
final name (it commits a part as soon as the part is finished, instead of at the export's end).
The checkpoint then records:

* the result files as located (name and size), to notice a result that changed;
* the position: the index of the file being read and how many of its rows were consumed;
* the publisher's state (parts with their sha256, counters, completed source files);
* how many bytes of the quarantine spool belong to it.

Resuming reopens the publisher with those parts, reads the current file again from its start
and skips the rows already consumed (parsing is deterministic), so the records that follow are
exactly those a clean run would write next. Parts written after the checkpoint are not in it:
the resumed run writes the same part numbers again, overwriting them. No manifest names such a
part, because the manifest is written only after a final checkpoint that lists every part.

The quarantine file cannot be rolled like parts (the manifest names one file), so in
checkpointed mode it is written to a local *spool* file that is fsynced at each checkpoint and
truncated back to the checkpointed length on resume; at commit it is copied to the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import Any

from streamx.bytes_like import Bytes
from streamx.exceptions import SinkError
from streamx.manifest import PartInfo, SourceFile
from streamx.pipeline import FileStats
from streamx.publish import PublisherState
from streamx.sinks.base import PartUpload, Sink
from streamx.sinks.local import write_all
from streamx.vendors.base import ResultFile

#: Bumped when the checkpoint layout changes; an unknown version is ignored (clean restart).
CHECKPOINT_VERSION = 1
COPY_CHUNK = 1024 * 1024
_SPOOL_BUFFER = 256 * 1024


@dataclass(frozen=True)
class FileRef:
    """A located result file as the checkpoint remembers it."""

    name: str
    size: int | None


@dataclass(frozen=True)
class Checkpoint:
    """A resumable position in one export (see the module docstring).

    ``file``/``rows``: the file being read and the rows of it already published (``file ==
    len(files)``: every file is read). ``complete``: the export only needs its manifest
    written. ``totals``: the vendor's own row count, checked again at the end.
    """

    files: tuple[FileRef, ...]
    file: int
    rows: int
    publisher: PublisherState
    quarantine_bytes: int = 0
    complete: bool = False
    totals: int | None = None

    @property
    def position(self) -> int:
        """The position as one ordered integer (file index, rows consumed)."""
        return position(self.file, self.rows)

    def matches(self, files: Sequence[ResultFile]) -> bool:
        """True when ``files`` are the files this checkpoint was taken on."""
        return self.files == tuple(FileRef(file.name, file.size) for file in files)

    def to_json(self) -> dict[str, Any]:
        state = self.publisher
        return {
            "version": CHECKPOINT_VERSION,
            "files": [[ref.name, ref.size] for ref in self.files],
            "file": self.file,
            "rows": self.rows,
            "quarantine_bytes": self.quarantine_bytes,
            "complete": self.complete,
            "totals": self.totals,
            "parts": [_part_json(part) for part in state.parts],
            "records": state.records,
            "rows_ok": state.rows_ok,
            "rows_quarantined": state.rows_quarantined,
            "source_files": [dict(entry) for entry in state.source_files],
            "started_at": state.started_at,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Checkpoint | None:
        """The checkpoint stored as ``raw``; None when absent, of another version or malformed
        (the export then starts its transfer over, which is always correct)."""
        if not raw or raw.get("version") != CHECKPOINT_VERSION:
            return None
        try:
            state = PublisherState(
                parts=[PartInfo(**part) for part in raw["parts"]],
                records=int(raw["records"]),
                rows_ok=int(raw["rows_ok"]),
                rows_quarantined=int(raw["rows_quarantined"]),
                source_files=[_source_file(entry) for entry in raw["source_files"]],
                started_at=str(raw["started_at"]),
            )
            return cls(
                files=tuple(FileRef(str(name), size) for name, size in raw["files"]),
                file=int(raw["file"]),
                rows=int(raw["rows"]),
                publisher=state,
                quarantine_bytes=int(raw["quarantine_bytes"]),
                complete=bool(raw["complete"]),
                totals=raw.get("totals"),
            )
        except (KeyError, TypeError, ValueError):
            return None


def consumed(skip_rows: int, stats: FileStats) -> int:
    """Rows of a file published so far by an attempt that resumed after ``skip_rows``.

    Not ``rows_skipped + rows_read``: until the parser has caught up with the skipped rows
    (it buffers the first 64 KiB to sniff the format), ``rows_skipped`` lags behind rows that
    are already published.
    """
    return skip_rows + stats.rows_read


def position(file: int, rows: int) -> int:
    """(file index, rows consumed) as one integer that orders like the pair."""
    return (file << 40) + rows


def _source_file(entry: Mapping[str, Any]) -> SourceFile:
    return SourceFile(
        name=str(entry["name"]),
        rows_read=int(entry["rows_read"]),
        bytes_read=int(entry["bytes_read"]),
    )


def _part_json(part: PartInfo) -> dict[str, Any]:
    return {
        "path": part.path,
        "records": part.records,
        "bytes": part.bytes,
        "uncompressed_bytes": part.uncompressed_bytes,
        "sha256": part.sha256,
    }


class EagerUpload:
    """A part upload that is published at its final name as soon as it is finished.

    Overwrites what a killed run left under that name (every sink replaces atomically). Abort
    after that is a no-op: a published part is only visible through a manifest, and a resumed
    or re-run export overwrites it.
    """

    def __init__(self, inner: PartUpload) -> None:
        self._inner = inner
        self._committed = False

    async def write(self, data: Bytes) -> None:
        await self._inner.write(data)

    async def finish(self) -> None:
        await self.commit()

    async def commit(self) -> None:
        if not self._committed:
            await self._inner.commit()
            self._committed = True

    async def abort(self) -> None:
        if not self._committed:
            await self._inner.abort()


class QuarantineSpool:
    """The quarantine file of a checkpointed export: a local append-only file.

    :meth:`sync` makes it durable and returns its length (recorded in the checkpoint); commit
    copies it to the real sink. Abort keeps the file: the checkpoint still refers to it.
    """

    def __init__(self, path: Path, length: int, sink: Sink, relpath: str) -> None:
        self.path = path
        self._sink = sink
        self._relpath = relpath
        self._handle: FileIO | None = None
        self._length = length
        self._pending: list[Bytes] = []
        self._pending_size = 0
        self._committed = False

    @classmethod
    async def open(cls, path: Path, length: int, sink: Sink, relpath: str) -> QuarantineSpool:
        """Open ``path``, cut back to ``length`` bytes (what the checkpoint covers)."""
        spool = cls(path, length, sink, relpath)
        spool._handle = await asyncio.to_thread(_open_spool, path, length)
        return spool

    @property
    def length(self) -> int:
        """Bytes written so far (durable after :meth:`sync`)."""
        return self._length + self._pending_size

    async def write(self, data: Bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _SPOOL_BUFFER:
            await self._drain()

    async def sync(self) -> int:
        """Write what is buffered and fsync; returns the durable length."""
        await self._drain()
        handle = self._handle
        if handle is not None:
            await asyncio.to_thread(os.fsync, handle.fileno())
        return self._length

    async def finish(self) -> None:
        await self.sync()

    async def commit(self) -> None:
        if self._committed:
            return
        await self.sync()
        upload = await self._sink.open(self._relpath)
        source = await asyncio.to_thread(open, self.path, "rb")
        try:
            while chunk := await asyncio.to_thread(source.read, COPY_CHUNK):
                await upload.write(chunk)
            await upload.commit()
        except BaseException:
            await upload.abort()
            raise
        finally:
            await asyncio.to_thread(source.close)
        self._committed = True
        await self.close()

    async def abort(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the file handle (the file stays)."""
        handle, self._handle = self._handle, None
        self._pending.clear()
        self._pending_size = 0
        if handle is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(handle.close)

    async def _drain(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        handle = self._handle
        if handle is None:
            raise SinkError(f"quarantine spool {self.path} is closed")
        try:
            await asyncio.to_thread(write_all, handle, data)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._length += len(data)


class CheckpointSink:
    """Wraps the engine's sink for one checkpointed export (see the module docstring): parts
    and the manifest go through :class:`EagerUpload`; the quarantine file through a
    :class:`QuarantineSpool` at ``spool_path``, cut back to ``spool_length``."""

    def __init__(self, inner: Sink, spool_path: Path, spool_length: int) -> None:
        self._inner = inner
        self._spool_path = spool_path
        self._spool_length = spool_length
        self.quarantine_relpath: str | None = None
        self.spool: QuarantineSpool | None = None

    async def open(self, relpath: str) -> PartUpload:
        if relpath == self.quarantine_relpath:
            if self.spool is None:
                self.spool = await QuarantineSpool.open(
                    self._spool_path, self._spool_length, self._inner, relpath
                )
            return self.spool
        return EagerUpload(await self._inner.open(relpath))

    def location(self, relpath: str) -> str:
        return self._inner.location(relpath)

    async def close(self) -> None:
        """The inner sink belongs to the engine; only the spool handle is released."""
        if self.spool is not None:
            await self.spool.close()

    async def sync_quarantine(self) -> int:
        """The durable length of the quarantine spool (0 when nothing was quarantined)."""
        if self.spool is None:
            return self._spool_length
        return await self.spool.sync()


def _open_spool(path: Path, length: int) -> FileIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = FileIO(path, "a+b" if path.exists() else "w+b")
    try:
        size = os.fstat(handle.fileno()).st_size
        if size < length:
            raise SinkError(
                f"quarantine spool {path} holds {size} bytes, fewer than the {length} "
                "its checkpoint recorded"
            )
        handle.truncate(length)
        handle.seek(length)
    except BaseException:
        handle.close()
        raise
    return handle


async def remove_spool(path: Path) -> None:
    """Delete a spool once its export is published (missing is fine)."""
    await asyncio.to_thread(path.unlink, missing_ok=True)


__all__ = [
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "CheckpointSink",
    "EagerUpload",
    "FileRef",
    "QuarantineSpool",
    "consumed",
    "position",
    "remove_spool",
]
