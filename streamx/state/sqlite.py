"""The SQLite state store: the default, one file next to the configuration, for one host.

Why SQLite in WAL mode: a backfill or a worker on one machine needs durable, transactional
state without running a server. WAL lets ``streamx status`` read while a backfill writes, and
``synchronous = FULL`` makes every committed transaction survive a power cut, not just a killed
process (the store is written at state changes and checkpoints, a few times a minute, so the
fsync per commit costs nothing that matters).

Why one thread: :mod:`sqlite3` blocks, and the event loop must never wait on a disk. Every call
runs on one dedicated worker thread that owns the only connection, so calls from many tasks are
serialized there (no locking inside the process) and none blocks the loop. A call whose task is
cancelled still completes on the thread: a transaction is never left half done.

Leases: :meth:`SQLiteStore.claim` runs under ``BEGIN IMMEDIATE``, which takes SQLite's write
lock before reading, so two processes claiming at once (two backfills on one host) never get the
same row. Updates with an ``owner`` check the lease in the same transaction.

Migrations: :data:`MIGRATIONS` is an ordered, append-only list of scripts; ``schema_version``
records which ran. A database newer than this streamx is refused rather than misread. Rows are
mapped to and from :class:`~streamx.state.base.ExportState` by :mod:`streamx.state.sqlite_rows`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from streamx.exceptions import PermanentError, TransientError
from streamx.state.base import OPEN_STATUSES, ExportState, ExportStatus, LeaseLostError
from streamx.state.checks import check_status, checked_statuses
from streamx.state.sqlite_rows import COLUMNS, assignments, insert_values, to_state
from streamx.state.sqlite_thread import SQLiteThread, immediate

T = TypeVar("T")
# Aliases: inside SQLiteStore the name ``list`` is the contract's method.
_Keys = list[str]
_Rows = list[ExportState]
_Values = list[tuple[Any, ...]]
_Assignments = list[tuple[str, Any]]

#: Ordered schema migrations ``(version, script)``. Append only: a released migration is never
#: edited; a change is a new version.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE exports (
            key TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('planned', 'started', 'transferring', 'done', 'failed')),
            remote_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            bytes_done INTEGER NOT NULL DEFAULT 0,
            parts_done INTEGER NOT NULL DEFAULT 0,
            checkpoint TEXT,
            manifest_location TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            lease_owner TEXT,
            lease_expires REAL,
            extra TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX exports_by_status ON exports (status, created_at, key);
        CREATE INDEX exports_by_created ON exports (created_at, key);
        """,
    ),
)

#: How long a connection waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 30_000


class SQLiteStore:
    """A :class:`~streamx.state.base.StateStore` in one SQLite file (see the module docstring).

    ``path`` is created (with its directory) on first use. Use as ``async with
    SQLiteStore(path) as store:``; the store is not reusable after it is closed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db = SQLiteThread("SQLiteStore", "streamx-sqlite")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    async def __aenter__(self) -> Self:
        try:
            await self._db.open(self._open)
        except sqlite3.OperationalError as exc:
            raise TransientError(f"state store {self.path}: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        """The migration version the database is at."""
        return await self._call(self._version)

    # -- the StateStore contract ----------------------------------------------------------

    async def add(self, rows: Sequence[ExportState], *, now: float) -> int:
        for row in rows:
            check_status(row.status)
        values = [insert_values(row, now) for row in rows]
        return await self._call(self._add, values) if values else 0

    async def get(self, key: str) -> ExportState | None:
        return await self._call(self._get, key)

    async def list(self, statuses: Collection[ExportStatus] | None = None) -> Sequence[ExportState]:
        wanted = None if statuses is None else checked_statuses(statuses)
        return await self._call(self._list, wanted)

    async def update(
        self, key: str, changes: Mapping[str, Any], *, now: float, owner: str | None = None
    ) -> ExportState:
        return await self._call(self._update, key, assignments(changes), now, owner)

    async def claim(
        self,
        owner: str,
        *,
        now: float,
        lease_seconds: float,
        limit: int,
        statuses: Collection[ExportStatus] = OPEN_STATUSES,
    ) -> Sequence[ExportState]:
        if limit <= 0:
            return []
        wanted = checked_statuses(statuses)
        return await self._call(self._claim, owner, now, now + lease_seconds, limit, wanted)

    async def renew(
        self, owner: str, keys: Collection[str], *, now: float, lease_seconds: float
    ) -> set[str]:
        if not keys:
            return set()
        return await self._call(self._renew, owner, list(keys), now, now + lease_seconds)

    async def release(self, owner: str, keys: Collection[str]) -> None:
        if keys:
            await self._call(self._release, owner, list(keys))

    # -- the worker thread ----------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._db.call(fn, *args)
        except sqlite3.OperationalError as exc:  # locked too long, disk full, I/O error
            raise TransientError(f"state store {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        return self._db.connection()

    def _open(self) -> sqlite3.Connection:
        """Open, configure and migrate the database (on the store's thread)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise PermanentError(f"cannot open the state store {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise PermanentError(f"state store {self.path}: WAL mode unavailable ({mode})")
            conn.execute("PRAGMA synchronous = FULL")
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise PermanentError(f"state store {self.path} is not usable: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with immediate(conn):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, "
                "applied_at REAL NOT NULL DEFAULT (strftime('%s', 'now')))"
            )
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            version = int(current.fetchone()[0])
            latest = MIGRATIONS[-1][0]
            if version > latest:
                raise PermanentError(
                    f"state store {self.path} is at schema version {version}, newer than this "
                    f"streamx knows ({latest}): upgrade streamx before using it"
                )
            for number, script in MIGRATIONS:
                if number > version:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    def _version(self) -> int:
        row = self._connection().execute("SELECT coalesce(max(version), 0) FROM schema_version")
        return int(row.fetchone()[0])

    def _add(self, values: _Values) -> int:
        conn = self._connection()
        inserted = 0
        with immediate(conn):
            for value in values:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO exports (key, spec, status, remote_id, attempts, "
                    "last_error, bytes_done, parts_done, checkpoint, manifest_location, extra, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    value,
                )
                inserted += cursor.rowcount
        return inserted

    def _get(self, key: str) -> ExportState | None:
        row = (
            self._connection()
            .execute(f"SELECT {COLUMNS} FROM exports WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else to_state(row)

    def _list(self, statuses: _Keys | None) -> _Rows:
        conn = self._connection()
        if statuses is None:
            rows = conn.execute(f"SELECT {COLUMNS} FROM exports ORDER BY created_at, key")
        else:
            marks = ", ".join("?" for _ in statuses)
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM exports WHERE status IN ({marks}) ORDER BY created_at, key",
                statuses,
            )
        return [to_state(row) for row in rows.fetchall()]

    def _update(
        self, key: str, assignments: _Assignments, now: float, owner: str | None
    ) -> ExportState:
        conn = self._connection()
        with immediate(conn):
            row = conn.execute(
                "SELECT lease_owner, lease_expires FROM exports WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                raise KeyError(key)
            if owner is not None and not _holds(row, owner, now):
                raise LeaseLostError(f"{owner} no longer holds the lease on {key!r}")
            sets = "".join(f"{name} = ?, " for name, _ in assignments)
            values = [value for _, value in assignments]
            conn.execute(
                f"UPDATE exports SET {sets}updated_at = ? WHERE key = ?", [*values, now, key]
            )
            state = conn.execute(f"SELECT {COLUMNS} FROM exports WHERE key = ?", (key,))
            return to_state(state.fetchone())

    def _claim(self, owner: str, now: float, expires: float, limit: int, statuses: _Keys) -> _Rows:
        conn = self._connection()
        marks = ", ".join("?" for _ in statuses)
        with immediate(conn):
            keys = [
                row[0]
                for row in conn.execute(
                    f"SELECT key FROM exports WHERE status IN ({marks}) AND "
                    "(lease_owner IS NULL OR lease_expires IS NULL OR lease_expires <= ?) "
                    "ORDER BY created_at, key LIMIT ?",
                    [*statuses, now, limit],
                )
            ]
            for chunk in _chunks(keys):
                conn.execute(
                    f"UPDATE exports SET lease_owner = ?, lease_expires = ? "
                    f"WHERE key IN ({', '.join('?' for _ in chunk)})",
                    [owner, expires, *chunk],
                )
            claimed = [state for chunk in _chunks(keys) for state in self._rows(conn, chunk)]
        return sorted(claimed, key=lambda state: (state.created_at, state.key))

    def _renew(self, owner: str, keys: _Keys, now: float, expires: float) -> set[str]:
        conn = self._connection()
        held: set[str] = set()
        with immediate(conn):
            for chunk in _chunks(keys):
                marks = ", ".join("?" for _ in chunk)
                rows = conn.execute(
                    f"SELECT key FROM exports WHERE key IN ({marks}) AND lease_owner = ? "
                    "AND lease_expires > ?",
                    [*chunk, owner, now],
                ).fetchall()
                found = [row[0] for row in rows]
                if found:
                    conn.execute(
                        f"UPDATE exports SET lease_expires = ? "
                        f"WHERE key IN ({', '.join('?' for _ in found)})",
                        [expires, *found],
                    )
                held.update(found)
        return held

    def _release(self, owner: str, keys: _Keys) -> None:
        conn = self._connection()
        with immediate(conn):
            for chunk in _chunks(keys):
                conn.execute(
                    "UPDATE exports SET lease_owner = NULL, lease_expires = NULL "
                    f"WHERE key IN ({', '.join('?' for _ in chunk)}) AND lease_owner = ?",
                    [*chunk, owner],
                )

    @staticmethod
    def _rows(conn: sqlite3.Connection, keys: _Keys) -> _Rows:
        marks = ", ".join("?" for _ in keys)
        rows = conn.execute(f"SELECT {COLUMNS} FROM exports WHERE key IN ({marks})", keys)
        return [to_state(row) for row in rows.fetchall()]


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _chunks(keys: _Keys, size: int = 500) -> Iterable[list[str]]:
    """Keys in slices small enough for SQLite's bound-parameter limit."""
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _holds(row: tuple[Any, ...], owner: str, now: float) -> bool:
    lease_owner, lease_expires = row[0], row[1]
    return bool(lease_owner == owner and lease_expires is not None and lease_expires > now)


__all__ = ["MIGRATIONS", "SQLiteStore"]
