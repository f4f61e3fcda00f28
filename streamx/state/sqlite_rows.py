"""How an :class:`~streamx.state.base.ExportState` travels to and from SQLite ``exports`` rows.

Why apart from the store: the store is about the connection's thread, transactions and
leases; this is only the mapping between a row and the dataclass. SQLite has no JSON type, so
``spec``, ``checkpoint`` and ``extra`` are stored as JSON text written and read with orjson;
rows are read as plain tuples, in :data:`COLUMNS` order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from streamx.state.base import ExportState
from streamx.state.checks import checked_changes

#: The columns of a row, in :class:`~streamx.state.base.ExportState` order (:func:`to_state`
#: reads them by position).
COLUMNS = (
    "key, spec, status, remote_id, attempts, last_error, bytes_done, parts_done, checkpoint, "
    "manifest_location, created_at, updated_at, lease_owner, lease_expires, extra"
)


def insert_values(row: ExportState, now: float) -> tuple[Any, ...]:
    """What ``add`` inserts for ``row`` (created and updated ``now``; no lease)."""
    return (
        row.key,
        _json(row.spec),
        row.status,
        row.remote_id,
        row.attempts,
        row.last_error,
        row.bytes_done,
        row.parts_done,
        _json(row.checkpoint),
        row.manifest_location,
        _json(row.extra),
        now,
        now,
    )


def assignments(changes: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``(column, value)`` pairs of an update, checked by
    :func:`~streamx.state.checks.checked_changes`."""
    return checked_changes(changes, _json)


def to_state(row: tuple[Any, ...]) -> ExportState:
    """The :class:`~streamx.state.base.ExportState` of a row selected as :data:`COLUMNS`."""
    (key, spec, status, remote_id, attempts, last_error, bytes_done, parts_done, checkpoint,
     manifest, created, updated, lease_owner, lease_expires, extra) = row  # fmt: skip
    return ExportState(
        key=key,
        spec=_loads(spec),
        status=status,
        remote_id=remote_id,
        attempts=attempts,
        last_error=last_error,
        bytes_done=bytes_done,
        parts_done=parts_done,
        checkpoint=_loads(checkpoint),
        manifest_location=manifest,
        created_at=created,
        updated_at=updated,
        lease_owner=lease_owner,
        lease_expires=lease_expires,
        extra=_loads(extra) or {},
    )


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(dict(value)).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


__all__ = ["COLUMNS", "assignments", "insert_values", "to_state"]
