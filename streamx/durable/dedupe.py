"""Removing overlapping Symplify records by ``record_id``, on disk, in step with checkpoints.

Why: Symplify knows only periods relative to now (TODAY ... LAST_2_WEEKS). Two exports of the
same stream taken on different days overlap, and one export may list an event twice. Records
carry a stable ``record_id`` (the vendor's id, or a hash of the row), unique within
``(account, stream)``, so overlaps are removed by remembering which ids were published.

Where: inside the export, between normalization and the publisher, so the published output
holds each record once. The index is an SQLite file on local disk (memory does not grow with
the number of records) with one row per ``(scope, record_id)``: the export that claimed it
(``owner``, the state-store key), the input position of the batch that did, and whether that
export is published (``done``). A record is dropped when its id was already claimed by the
same export (a repeat within it) or by a *published* export; an id held by another export
that is still running is kept (both may publish it; readers can still deduplicate on
``record_id``), because that export might never publish and the record would be lost.

Exactness under kill -9: entries carry the position of their batch, checkpoints are taken at
batch ends, and resuming deletes the export's entries past the checkpoint
(:meth:`DedupeIndex.rollback`), so the resumed run filters exactly as the killed one did. A
transfer started over forgets the export's entries (:meth:`DedupeIndex.forget`). Entries of
published exports are kept for :data:`RETENTION_SECONDS` (Symplify reaches back two weeks).

Scopes: event streams share one scope per ``(account, stream)`` (events are immutable, so an
id seen twice is the same event); entity and metric streams are snapshots whose later version
must not be dropped, so their scope is the export itself (only repeats within it go).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streamx.records import STREAMS
from streamx.state.sqlite_thread import SQLiteThread, immediate

RETENTION_SECONDS = 35 * 86400.0
#: Ids looked up per query (below SQLite's bound-parameter limit).
_SLICE = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    scope TEXT NOT NULL,
    record_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    pos INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL,
    PRIMARY KEY (scope, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_owner ON seen (owner, pos)
"""


def scope_of(account: str, stream: str, owner: str) -> str:
    """The dedupe scope of an export (see the module docstring)."""
    info = STREAMS.get(stream)
    if info is not None and info.kind == "event":
        return f"{account}\x1f{stream}"
    return f"{account}\x1f{stream}\x1f{owner}"


class DedupeIndex:
    """The on-disk record-id index. Use as ``async with DedupeIndex(path) as index:``.

    All SQLite work runs on one dedicated thread (never on the event loop).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db = SQLiteThread("DedupeIndex", "streamx-dedupe")

    async def __aenter__(self) -> Self:
        await self._db.open(self._open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._db.close()

    async def filter(
        self, scope: str, owner: str, pos: int, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The records of one batch whose id is new (claimed now by ``owner`` at ``pos``)."""
        return await self._db.call(self._filter, scope, owner, pos, records)

    async def rollback(self, owner: str, pos: int) -> None:
        """Forget ``owner``'s entries claimed after position ``pos`` (resume from there)."""
        await self._db.call(
            self._execute, "DELETE FROM seen WHERE owner = ? AND pos > ?", owner, pos
        )

    async def forget(self, owner: str) -> None:
        """Forget every entry of ``owner`` (its transfer starts over)."""
        await self._db.call(self._execute, "DELETE FROM seen WHERE owner = ?", owner)

    async def seal(self, owner: str) -> None:
        """``owner`` is published: its ids now remove overlaps from other exports."""
        await self._db.call(self._execute, "UPDATE seen SET done = 1 WHERE owner = ?", owner)

    # -- the worker thread ----------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "DELETE FROM seen WHERE done = 1 AND at < ?", (time.time() - RETENTION_SECONDS,)
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _execute(self, sql: str, *args: Any) -> None:
        self._db.connection().execute(sql, args)

    def _filter(
        self, scope: str, owner: str, pos: int, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """One batch: look the ids up in slices, keep the new ones and claim them at once."""
        conn, now = self._db.connection(), time.time()
        ids = [record.get("record_id") for record in records]
        wanted = list({rid for rid in ids if isinstance(rid, str)})
        with immediate(conn):
            known: dict[str, tuple[str, int]] = {}
            for start in range(0, len(wanted), _SLICE):
                chunk = wanted[start : start + _SLICE]
                marks = ", ".join("?" for _ in chunk)
                for record_id, holder, done in conn.execute(
                    f"SELECT record_id, owner, done FROM seen WHERE scope = ? "
                    f"AND record_id IN ({marks})",
                    [scope, *chunk],
                ):
                    known[record_id] = (holder, done)
            kept, claimed = _select(records, ids, known, owner)
            conn.executemany(
                "INSERT OR IGNORE INTO seen (scope, record_id, owner, pos, at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(scope, record_id, owner, pos, now) for record_id in claimed],
            )
        return kept


def _select(
    records: list[dict[str, Any]],
    ids: list[Any],
    known: dict[str, tuple[str, int]],
    owner: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The records to keep, and the ids ``owner`` claims now (see the module docstring)."""
    kept: list[dict[str, Any]] = []
    claimed: list[str] = []
    in_batch: set[str] = set()
    for record, record_id in zip(records, ids, strict=True):
        if not isinstance(record_id, str):
            kept.append(record)
            continue
        if record_id in in_batch:
            continue  # a repeat within this batch
        in_batch.add(record_id)
        holder = known.get(record_id)
        if holder is None:
            claimed.append(record_id)
            kept.append(record)
        elif holder[0] != owner and not holder[1]:
            kept.append(record)  # held by an export still running: it may never publish
    return kept, claimed


__all__ = ["RETENTION_SECONDS", "DedupeIndex", "scope_of"]
