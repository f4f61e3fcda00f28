"""The state-store contract every backend (SQLite, Postgres) implements.

One :class:`ExportState` row per planned export, keyed by a stable ``key`` that a planner derives
from the export's identity (e.g. ``"<export name>@<window start>"``), so planning the same work
twice finds the same rows. The store knows nothing about vendors: ``spec`` and ``checkpoint`` are
JSON-able mappings it keeps verbatim. Leases let several workers share one store: a worker claims
rows, renews its lease while it works, and a row whose lease expired may be claimed by another
worker, which resumes from the row's remote id and checkpoint.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self

ExportStatus = Literal["planned", "started", "transferring", "done", "failed"]
"""``planned``: nothing asked of the vendor yet; ``started``: the vendor job exists
(``remote_id`` set); ``transferring``: results are being read and written; ``done``: the
manifest is published (``manifest_location`` set); ``failed``: a permanent error
(``last_error``)."""

STATUSES: tuple[ExportStatus, ...] = ("planned", "started", "transferring", "done", "failed")
OPEN_STATUSES: tuple[ExportStatus, ...] = ("planned", "started", "transferring")
"""Statuses whose work is not finished: what a rerun or a worker picks up."""


@dataclass(frozen=True)
class ExportState:
    """One export as the store remembers it (all times are Unix seconds)."""

    key: str
    spec: Mapping[str, Any]
    status: ExportStatus = "planned"
    remote_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    bytes_done: int = 0
    parts_done: int = 0
    checkpoint: Mapping[str, Any] | None = None
    manifest_location: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    lease_owner: str | None = None
    lease_expires: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


UPDATABLE = frozenset(
    {
        "status",
        "remote_id",
        "attempts",
        "last_error",
        "bytes_done",
        "parts_done",
        "checkpoint",
        "manifest_location",
        "extra",
    }
)
"""Fields :meth:`StateStore.update` may change (``key``, ``spec`` and lease fields are not)."""


class LeaseLostError(Exception):
    """Raised by :meth:`StateStore.update` with ``owner`` when that owner no longer holds the
    row's lease: another worker took it over, so this one must stop writing."""


class StateStore(Protocol):
    """Async state store. Use as ``async with store:`` (opens, migrates, closes).

    Every method is safe to call concurrently from many tasks, and none blocks the event loop.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def add(self, rows: Sequence[ExportState], *, now: float) -> int:
        """Insert the rows whose key is not stored yet (existing rows are left untouched);
        returns how many were inserted."""
        ...

    async def get(self, key: str) -> ExportState | None:
        """The row for ``key``, or None."""
        ...

    async def list(self, statuses: Collection[ExportStatus] | None = None) -> Sequence[ExportState]:
        """Rows (optionally only those in ``statuses``), ordered by ``created_at`` then key."""
        ...

    async def update(
        self, key: str, changes: Mapping[str, Any], *, now: float, owner: str | None = None
    ) -> ExportState:
        """Apply ``changes`` (keys from :data:`UPDATABLE`) atomically and return the new row.

        With ``owner``, the update only applies while ``owner`` holds an unexpired lease on the
        row, else :class:`LeaseLostError`. KeyError for an unknown key.
        """
        ...

    async def claim(
        self,
        owner: str,
        *,
        now: float,
        lease_seconds: float,
        limit: int,
        statuses: Collection[ExportStatus] = OPEN_STATUSES,
    ) -> Sequence[ExportState]:
        """Lease up to ``limit`` rows in ``statuses`` that nobody holds (no lease, or an expired
        one) to ``owner`` until ``now + lease_seconds``; two concurrent claims never get the
        same row (Postgres: ``FOR UPDATE SKIP LOCKED``)."""
        ...

    async def renew(
        self, owner: str, keys: Collection[str], *, now: float, lease_seconds: float
    ) -> set[str]:
        """Extend ``owner``'s leases on ``keys``; returns the keys it still held (a key missing
        from the result was lost to another worker)."""
        ...

    async def release(self, owner: str, keys: Collection[str]) -> None:
        """Drop ``owner``'s leases on ``keys`` (a graceful stop hands work back at once)."""
        ...
