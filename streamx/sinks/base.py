"""The transport-neutral sink protocol every output destination implements.

A sink stores named objects under a root (a directory, an S3 prefix, an SFTP directory). Each
object is written through a :class:`PartUpload` whose bytes stay invisible under the final name
until :meth:`PartUpload.commit`: local = temp file + ``os.replace``, S3 = multipart upload
completed, SFTP = temp name + ``posix-rename``. Publishing is two-phase so a whole export becomes
visible only at its end without holding buffers open meanwhile: :meth:`PartUpload.finish` ends
the writing and makes the bytes durable *under the temporary name* (closing files, uploading the
last S3 part), and :meth:`PartUpload.commit` later only renames/completes. Until commit, readers
see nothing; :meth:`PartUpload.abort` removes every trace.

Relative paths (``relpath``) always use ``/`` separators and are checked by
:func:`split_relpath`, so no sink can be steered outside its root.
"""

from __future__ import annotations

from typing import Protocol

from streamx.bytes_like import Bytes
from streamx.exceptions import SinkError


class PartUpload(Protocol):
    """One object being written; invisible under its final name until :meth:`commit`."""

    async def write(self, data: Bytes) -> None:
        """Append ``data`` (``bytes`` or a read-only view: read, sliced and buffered, never
        changed); awaiting it is the back-pressure that paces the producer."""
        ...

    async def finish(self) -> None:
        """End writing and make the bytes durable, still under the temporary name.

        Releases buffers and handles, so many finished-but-uncommitted uploads cost no memory.
        Idempotent; :meth:`commit` calls it if needed.
        """
        ...

    async def commit(self) -> None:
        """Atomically publish the object under its final name (replacing any older one)."""
        ...

    async def abort(self) -> None:
        """Discard the upload and its temporary data. Idempotent; a no-op after commit."""
        ...


class Sink(Protocol):
    """A destination for published objects (local directory, S3 prefix, SFTP directory)."""

    async def open(self, relpath: str) -> PartUpload:
        """Start writing the object ``relpath`` (``/``-separated, relative to the root)."""
        ...

    def location(self, relpath: str) -> str:
        """Where ``relpath`` lives, for people and logs: an absolute path or a URI."""
        ...

    async def close(self) -> None:
        """Release connections and clients; uploads still open must have been committed/aborted."""
        ...


def split_relpath(relpath: str) -> tuple[str, ...]:
    """The components of ``relpath``; :class:`SinkError` if it could escape the sink's root.

    Refused: empty paths, absolute paths, ``.`` / ``..`` / empty components, backslashes (a
    Windows separator on some servers) and NUL bytes.
    """
    if not relpath or relpath.startswith("/"):
        raise SinkError(f"refusing path {relpath!r}: must be a non-empty relative path")
    if "\\" in relpath or "\x00" in relpath:
        raise SinkError(f"refusing path {relpath!r}: backslash or NUL byte in path")
    parts = tuple(relpath.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise SinkError(f"refusing path {relpath!r}: {part or 'empty'!r} component")
    return parts
