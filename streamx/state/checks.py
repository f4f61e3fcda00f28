"""The checks every state store makes on what it is asked to store, before it touches a database.

Why shared: the rules come from the contract in :mod:`streamx.state.base` (the known statuses,
which fields :meth:`~streamx.state.base.StateStore.update` may change, which of them may never
be ``None``), not from a backend, so SQLite and Postgres refuse the same input with the same
``ValueError``. Only how a JSON column is handed to the driver differs, so the backend passes
its encoding in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from streamx.state.base import STATUSES, UPDATABLE, ExportStatus

#: Updatable fields whose column is ``NOT NULL``.
NOT_NULL = frozenset({"status", "attempts", "bytes_done", "parts_done", "extra"})
#: Updatable fields stored as JSON.
JSON_COLUMNS = frozenset({"checkpoint", "extra"})


def check_status(status: object) -> None:
    """Refuse a status that is not one of :data:`~streamx.state.base.STATUSES`."""
    if status not in STATUSES:
        raise ValueError(f"unknown export status {status!r} (known: {', '.join(STATUSES)})")


def checked_statuses(statuses: Iterable[ExportStatus]) -> list[str]:
    """``statuses`` as a list, each one checked."""
    wanted = list(statuses)
    for status in wanted:
        check_status(status)
    return cast(list[str], wanted)


def checked_changes(
    changes: Mapping[str, Any], encode_json: Callable[[Any], Any]
) -> list[tuple[str, Any]]:
    """The ``(column, value)`` pairs of an update, in order, each checked against the contract;
    a JSON column's value, unless ``None``, is passed through ``encode_json``."""
    unknown = sorted(set(changes) - UPDATABLE)
    if unknown:
        raise ValueError(f"cannot update {', '.join(unknown)} (updatable: {sorted(UPDATABLE)})")
    assignments: list[tuple[str, Any]] = []
    for name, value in changes.items():
        if value is None and name in NOT_NULL:
            raise ValueError(f"{name} cannot be set to None")
        if name == "status":
            check_status(value)
        if name in JSON_COLUMNS and value is not None:
            value = encode_json(value)
        assignments.append((name, value))
    return assignments


__all__ = ["JSON_COLUMNS", "NOT_NULL", "check_status", "checked_changes", "checked_statuses"]
