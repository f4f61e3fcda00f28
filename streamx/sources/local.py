"""Local files (and stdin) as async byte-chunk iterators.

Reads happen in a worker thread in ~1 MiB chunks so a slow disk never stalls the event loop and
memory stays bounded by the chunk size, whatever the file size.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import BinaryIO

from streamx.exceptions import InputError

CHUNK_SIZE = 1024 * 1024
STDIN_NAME = "-"


async def read_chunks(path: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """Yield the bytes of ``path`` (``-`` = stdin) in chunks of at most ``chunk_size``."""
    handle = _open(path)
    try:
        while True:
            chunk = await asyncio.to_thread(handle.read, chunk_size)
            if not chunk:
                return
            yield chunk
    finally:
        if path != STDIN_NAME:
            handle.close()


def _open(path: str) -> BinaryIO:
    if path == STDIN_NAME:
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), file=path) from exc
