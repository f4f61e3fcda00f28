"""The Postgres state store: one database shared by a fleet of workers (asyncpg).

Why Postgres for a fleet: row locks let several workers share exports without a coordinator.
:meth:`PostgresStore.claim` selects claimable rows ``FOR UPDATE SKIP LOCKED`` and leases them
in the same statement, so two workers claiming at once lock disjoint rows and never get the
same export; a lease is an owner plus an expiry (Unix seconds from the caller's clock, like
every other time in :mod:`streamx.state.base`), so a worker that dies simply stops renewing and
another one takes its rows over once the lease has expired. :meth:`PostgresStore.update` with
``owner`` checks the lease in the ``WHERE`` clause of the ``UPDATE`` itself, so a worker that
lost its lease cannot overwrite the new owner's progress, however the two interleave.

The tables live in their own schema (default ``streamx``), created and migrated by
:mod:`streamx.state.postgres_schema` (:data:`MIGRATIONS`); rows are mapped to and from
:class:`~streamx.state.base.ExportState` by :mod:`streamx.state.postgres_rows`. The DSN usually
carries a password: it is redacted (with :mod:`streamx.redact`) from ``repr`` and from every
error this module raises, and errors raised while connecting are re-raised without their cause
chain, which could quote the DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg

from streamx.exceptions import PermanentError, TransientError
from streamx.redact import REDACTED, redact_text
from streamx.state.base import OPEN_STATUSES, ExportState, ExportStatus, LeaseLostError
from streamx.state.checks import check_status, checked_statuses
from streamx.state.postgres_rows import (
    COLUMNS,
    assignments,
    init_connection,
    insert_values,
    prefixed,
    to_state,
)
from streamx.state.postgres_schema import MIGRATIONS, SCHEMA_NAME, migrate

log = logging.getLogger("streamx.state")
#: Seconds :meth:`PostgresStore.__aexit__` waits for connections in use before closing them.
CLOSE_TIMEOUT = 10.0
T = TypeVar("T")

#: Failures that mean "the database is unreachable right now" (a retry may help).
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
#: Errors of a pooled connection that was closed under us: retried on another connection.
_STALE_CONNECTION = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InternalClientError,
)


class PostgresStore:
    """A :class:`~streamx.state.base.StateStore` on PostgreSQL (see the module docstring).

    ``dsn`` is an asyncpg/libpq connection string; ``schema`` the schema holding the tables
    (created when missing; lower-case letters, digits and ``_``); ``min_size``/``max_size``
    bound the connection pool. Use as ``async with PostgresStore(dsn) as store:``.
    """

    def __init__(
        self, dsn: str, *, schema: str = "streamx", min_size: int = 1, max_size: int = 10
    ) -> None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must match {SCHEMA_NAME.pattern}, got {schema!r}")
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(f"need 0 <= min_size <= max_size >= 1, got {min_size}, {max_size}")
        self._dsn = dsn
        self.schema = schema
        self._table = f'"{schema}".exports'
        self._min_size, self._max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({self._redact(self._dsn)!r}, schema={self.schema!r})"

    async def __aenter__(self) -> Self:
        try:
            pool = await asyncpg.create_pool(
                self._dsn, min_size=self._min_size, max_size=self._max_size, init=init_connection
            )
        except ValueError as exc:  # a malformed DSN (ClientConfigurationError is one too)
            raise self._permanent("invalid DSN for", exc) from None
        except _CONNECTION_ERRORS as exc:
            raise self._error("cannot connect to", exc) from None
        except asyncpg.PostgresError as exc:  # refused login, no such database: not an outage
            raise self._permanent("cannot log in to", exc) from None
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            await pool.close()
            self._pool = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:  # close waits for connections in use; a stuck one must not hang a shutdown
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            pool.terminate()

    # -- migrations -----------------------------------------------------------------------

    async def _migrate(self) -> None:
        """Apply the migrations this database lacks, once, even with many workers starting."""
        await self._run(lambda conn: migrate(conn, self.schema))

    async def schema_version(self) -> int:
        """The migration version the database is at (for ``streamx status`` and tests)."""
        value = await self._run(
            lambda conn: conn.fetchval(
                f'SELECT coalesce(max(version), 0) FROM "{self.schema}".schema_version'
            )
        )
        return int(value)

    # -- the StateStore contract ----------------------------------------------------------

    async def add(self, rows: Sequence[ExportState], *, now: float) -> int:
        if not rows:
            return 0
        for row in rows:
            check_status(row.status)
        columns = list(zip(*(insert_values(row) for row in rows), strict=True))
        inserted = await self._run(
            lambda conn: conn.fetch(
                f"INSERT INTO {self._table} (key, spec, status, remote_id, attempts, last_error,"
                " bytes_done, parts_done, checkpoint, manifest_location, extra,"
                " created_at, updated_at)"
                " SELECT k, s, st, r, a, le, b, p, c, m, x, $12, $12 FROM unnest("
                "$1::text[], $2::jsonb[], $3::text[], $4::text[], $5::int[], $6::text[],"
                " $7::bigint[], $8::int[], $9::jsonb[], $10::text[], $11::jsonb[])"
                " AS t(k, s, st, r, a, le, b, p, c, m, x)"
                " ON CONFLICT (key) DO NOTHING RETURNING key",
                *[list(column) for column in columns],
                now,
            )
        )
        return len(inserted)

    async def get(self, key: str) -> ExportState | None:
        row = await self._run(
            lambda conn: conn.fetchrow(f"SELECT {COLUMNS} FROM {self._table} WHERE key = $1", key)
        )
        return None if row is None else to_state(row)

    async def list(self, statuses: Collection[ExportStatus] | None = None) -> Sequence[ExportState]:
        wanted = None if statuses is None else checked_statuses(statuses)
        rows = await self._run(
            lambda conn: conn.fetch(
                f"SELECT {COLUMNS} FROM {self._table}"
                " WHERE $1::text[] IS NULL OR status = ANY($1::text[]) ORDER BY created_at, key",
                wanted,
            )
        )
        return [to_state(row) for row in rows]

    async def update(
        self, key: str, changes: Mapping[str, Any], *, now: float, owner: str | None = None
    ) -> ExportState:
        columns, values = assignments(changes)
        lease = "" if owner is None else " AND lease_owner = $3 AND lease_expires > $2"
        params: list[Any] = [key, now] + ([] if owner is None else [owner]) + values
        first = len(params) - len(values) + 1
        sets = ", ".join(f"{name} = ${first + i}" for i, name in enumerate(columns))
        sql = (
            f"UPDATE {self._table} SET {sets}{', ' if sets else ''}updated_at = $2"
            f" WHERE key = $1{lease} RETURNING {COLUMNS}"
        )

        async def apply(conn: Any) -> tuple[Any, Any]:
            row = await conn.fetchrow(sql, *params)
            if row is not None:
                return row, True
            return None, await conn.fetchval(f"SELECT 1 FROM {self._table} WHERE key = $1", key)

        row, exists = await self._run(apply)
        if row is not None:
            return to_state(row)
        if not exists:
            raise KeyError(key)
        raise LeaseLostError(f"{owner} no longer holds the lease on {key!r}")

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
        sql = (
            f"WITH picked AS (SELECT key FROM {self._table}"
            " WHERE status = ANY($1::text[])"
            " AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires <= $2)"
            " ORDER BY created_at, key LIMIT $3 FOR UPDATE SKIP LOCKED)"
            f" UPDATE {self._table} AS e SET lease_owner = $4, lease_expires = $5"
            f" FROM picked WHERE e.key = picked.key RETURNING {prefixed('e')}"
        )
        args = (checked_statuses(statuses), now, limit, owner, now + lease_seconds)

        async def pick(conn: Any) -> Any:
            async with conn.transaction():
                return await conn.fetch(sql, *args)

        rows = await self._run(pick)
        claimed = [to_state(row) for row in rows]
        return sorted(claimed, key=lambda state: (state.created_at, state.key))

    async def renew(
        self, owner: str, keys: Collection[str], *, now: float, lease_seconds: float
    ) -> set[str]:
        if not keys:
            return set()
        rows = await self._run(
            lambda conn: conn.fetch(
                f"UPDATE {self._table} SET lease_expires = $3"
                " WHERE key = ANY($1::text[]) AND lease_owner = $2 AND lease_expires > $4"
                " RETURNING key",
                list(keys),
                owner,
                now + lease_seconds,
                now,
            )
        )
        return {row["key"] for row in rows}

    async def release(self, owner: str, keys: Collection[str]) -> None:
        if not keys:
            return
        await self._run(
            lambda conn: conn.execute(
                f"UPDATE {self._table} SET lease_owner = NULL, lease_expires = NULL"
                " WHERE key = ANY($1::text[]) AND lease_owner = $2",
                list(keys),
                owner,
            )
        )

    # -- helpers --------------------------------------------------------------------------

    async def _run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work`` on a pooled connection.

        A pooled connection the server has closed (a restart, a failover, an idle timeout,
        ``pg_terminate_backend``) fails its first query before the pool notices, sometimes
        with asyncpg's ``InternalClientError`` (MagicStack/asyncpg#1069) rather than
        ``ConnectionDoesNotExistError``. Such a connection is terminated (so the pool never
        hands it out again) and, as every store operation is idempotent or harmless to
        repeat, the work is retried on another one, at most once per pooled connection plus
        one. Failing to reach the server, or losing it again, is a TransientError with the
        DSN redacted. SQL errors and the contract's own KeyError and LeaseLostError pass
        through: they are not an outage, and their text names no DSN.
        """
        if self._pool is None:
            raise RuntimeError("use the PostgresStore inside 'async with'")
        pool = self._pool
        for attempt in range(self._max_size + 1):
            try:
                conn = await pool.acquire()
            except _CONNECTION_ERRORS as exc:
                raise self._error("cannot reach", exc) from None
            try:
                return await work(conn)
            except _STALE_CONNECTION as exc:
                _discard(conn)
                if attempt == self._max_size:
                    raise self._error("lost the connection to", exc) from None
                log.info("a pooled Postgres connection was closed (%s); retrying", type(exc))
            except _CONNECTION_ERRORS as exc:
                _discard(conn)
                raise self._error("lost the connection to", exc) from None
            finally:
                with contextlib.suppress(asyncpg.InterfaceError):  # released when it was lost
                    await pool.release(conn)
        raise AssertionError("unreachable")

    def _error(self, what: str, exc: BaseException) -> TransientError:
        return TransientError(self._describe(what, exc))

    def _permanent(self, what: str, exc: BaseException) -> PermanentError:
        return PermanentError(self._describe(what, exc))

    def _describe(self, what: str, exc: BaseException) -> str:
        """The message for ``exc``: DSN and exception text redacted, the cause's type named."""
        detail = self._redact(str(exc)) or type(exc).__name__
        dsn = self._redact(self._dsn)
        return f"{what} the Postgres state store {dsn}: {type(exc).__name__}: {detail}"

    def _redact(self, text: str) -> str:
        """:func:`redact_text`, and the DSN's password wherever else it appears verbatim."""
        text = redact_text(text)
        for secret in _dsn_secrets(self._dsn):
            text = text.replace(secret, REDACTED)
        return text


def _discard(conn: Any) -> None:
    """Close a broken connection so the pool replaces it instead of handing it out again."""
    with contextlib.suppress(asyncpg.InterfaceError):  # already released: the pool knows
        conn.terminate()


def _dsn_secrets(dsn: str) -> list[str]:
    """The DSN's password, raw and percent-decoded (empty when there is none)."""
    try:
        password = urlsplit(dsn).password
    except ValueError:  # not even a URL: redact_text has done what can be done
        return []
    if not password:
        return []
    return sorted({password, unquote(password)}, key=len, reverse=True)


__all__ = ["MIGRATIONS", "PostgresStore"]
