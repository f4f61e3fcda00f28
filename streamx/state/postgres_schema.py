"""The Postgres state store's tables, and the migrations that create and evolve them.

The tables live in their own schema (default ``streamx``); :data:`MIGRATIONS` is an ordered
list applied once each under a transaction-scoped advisory lock, so workers starting together
migrate exactly once. ``schema_version`` records which ran; a database newer than this streamx
is refused rather than misread.
"""

from __future__ import annotations

import re
from typing import Any

from streamx.exceptions import PermanentError

#: Ordered schema migrations: ``(version, statements)``; ``{schema}`` is the quoted schema.
#: Append only: a released migration is never edited, a change is a new version.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """
            CREATE TABLE {schema}.exports (
                key text PRIMARY KEY,
                spec jsonb NOT NULL,
                status text NOT NULL CHECK (status IN
                    ('planned', 'started', 'transferring', 'done', 'failed')),
                remote_id text,
                attempts integer NOT NULL DEFAULT 0,
                last_error text,
                bytes_done bigint NOT NULL DEFAULT 0,
                parts_done integer NOT NULL DEFAULT 0,
                checkpoint jsonb,
                manifest_location text,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL,
                lease_owner text,
                lease_expires double precision,
                extra jsonb NOT NULL DEFAULT '{{}}'::jsonb
            )
            """,
            "CREATE INDEX exports_by_status ON {schema}.exports (status, created_at, key)",
        ),
    ),
)

#: What a schema name may be (so it can be quoted into SQL as it is).
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


async def migrate(conn: Any, schema: str) -> None:
    """Apply the migrations ``schema`` lacks on ``conn``, once, even with many workers starting."""
    quoted = f'"{schema}"'
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{quoted}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quoted}.schema_version "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {quoted}.schema_version"
        )
        latest = MIGRATIONS[-1][0]
        if current > latest:
            raise PermanentError(
                f"state schema {quoted} is at version {current}, newer than this streamx "
                f"knows ({latest}): upgrade streamx before running it on this database"
            )
        for version, statements in MIGRATIONS:
            if version > current:
                for statement in statements:
                    await conn.execute(statement.format(schema=quoted))
                await conn.execute(
                    f"INSERT INTO {quoted}.schema_version (version) VALUES ($1)", version
                )


__all__ = ["MIGRATIONS", "SCHEMA_NAME", "migrate"]
