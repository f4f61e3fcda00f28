"""How an :class:`~streamx.state.base.ExportState` travels to and from Postgres ``exports`` rows.

Why apart from the store: the store is about connections, leases and retries; this is only the
mapping between a row and the dataclass. JSON columns (``jsonb``) travel as text encoded and
decoded with orjson (keys and values verbatim), through a codec every pooled connection gets
from :func:`init_connection`; the mappings are handed to it as plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from streamx.state.base import ExportState
from streamx.state.checks import checked_changes

#: The columns of a row, in :class:`~streamx.state.base.ExportState` order.
COLUMNS = (
    "key, spec, status, remote_id, attempts, last_error, bytes_done, parts_done, checkpoint, "
    "manifest_location, created_at, updated_at, lease_owner, lease_expires, extra"
)


async def init_connection(conn: Any) -> None:
    """JSON columns travel as text encoded/decoded with orjson (keys and values verbatim)."""
    await conn.set_type_codec(
        "jsonb", encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog", format="text"
    )


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def prefixed(alias: str) -> str:
    """:data:`COLUMNS`, each qualified with the table alias ``alias``."""
    return ", ".join(f"{alias}.{name.strip()}" for name in COLUMNS.split(","))


def insert_values(row: ExportState) -> tuple[Any, ...]:
    """What ``add`` inserts for ``row``: every column but the times and the lease."""
    return (
        row.key,
        dict(row.spec),
        row.status,
        row.remote_id,
        row.attempts,
        row.last_error,
        row.bytes_done,
        row.parts_done,
        None if row.checkpoint is None else dict(row.checkpoint),
        row.manifest_location,
        dict(row.extra),
    )


def assignments(changes: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """The columns and values of an update, checked by
    :func:`~streamx.state.checks.checked_changes`."""
    names: list[str] = []
    values: list[Any] = []
    for name, value in checked_changes(changes, dict):
        names.append(name)
        values.append(value)
    return names, values


def to_state(row: Mapping[str, Any]) -> ExportState:
    """The :class:`~streamx.state.base.ExportState` of a fetched row (columns by name)."""
    return ExportState(
        key=row["key"],
        spec=row["spec"],
        status=row["status"],
        remote_id=row["remote_id"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        bytes_done=row["bytes_done"],
        parts_done=row["parts_done"],
        checkpoint=row["checkpoint"],
        manifest_location=row["manifest_location"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        lease_owner=row["lease_owner"],
        lease_expires=row["lease_expires"],
        extra=row["extra"],
    )


__all__ = ["COLUMNS", "assignments", "init_connection", "insert_values", "prefixed", "to_state"]
