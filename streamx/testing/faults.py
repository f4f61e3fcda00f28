"""Fault knobs for the simulators, and the aiohttp helpers that act them out.

Every misbehaviour streamx must survive is one field of :class:`Faults` (all off by default):
throttling (429 + ``Retry-After`` in seconds, ``0`` or HTTP-date form), server errors, stalls,
connection resets mid-body, truncated bodies (a cut gzip with an honest ``Content-Length``),
``Content-Length`` that lies, expired URLs, jobs that fail or never finish, and trickling
bandwidth. A :class:`FaultPlan` says when they apply: persistently for an account (a Symplify
customer id, a Cordial API key), optionally only on one route, or as a queue of one-shot faults
per route ("the next 2 polls get 503").

Route names (the strings ``FaultPlan`` keys on) are the ``ROUTE_*`` constants below. A knob that
means nothing on a route is ignored there (``job_failed`` on a poll, ``reset_after_bytes`` on a
job creation only resets that small JSON response, and so on).
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import struct
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import web

ROUTE_SYMPLIFY_START = "symplify.start"
ROUTE_SYMPLIFY_BATCH = "symplify.batch"
ROUTE_SYMPLIFY_RESULT_URL = "symplify.result_url"
ROUTE_SYMPLIFY_RESULT = "symplify.result"
ROUTE_OBJECT_GET = "objectstore.get"
ROUTE_CORDIAL_EXPORT = "cordial.export"
ROUTE_CORDIAL_JOB = "cordial.job"
ROUTE_CORDIAL_JOBS = "cordial.jobs"
ROUTES = frozenset(
    {
        ROUTE_SYMPLIFY_START,
        ROUTE_SYMPLIFY_BATCH,
        ROUTE_SYMPLIFY_RESULT_URL,
        ROUTE_SYMPLIFY_RESULT,
        ROUTE_OBJECT_GET,
        ROUTE_CORDIAL_EXPORT,
        ROUTE_CORDIAL_JOB,
        ROUTE_CORDIAL_JOBS,
    }
)
_TRICKLE_TICK_S = 0.05


@dataclass(frozen=True, slots=True)
class Faults:
    """One set of misbehaviours. All off by default.

    - ``status``: answer with this HTTP status instead (429, 500, 502, 503, ...), the vendor's
      error body, and ``Retry-After: retry_after`` when that is set (``"0"``, ``"7"``, or an
      HTTP-date, see :func:`http_date`).
    - ``stall_s``: sleep this long before the response headers, or, when ``stall_after_bytes``
      is set, after that many body bytes.
    - ``reset_after_bytes``: send this many body bytes, then reset the TCP connection (RST);
      a shorter body is sent whole.
    - ``truncate_at``: serve only the first N bytes with an honest ``Content-Length`` of N (a cut
      gzip, a cut JSON array). On a Cordial job: every delivered file is cut at N bytes.
    - ``content_length_excess``: declare N bytes more than are sent, send all, then close.
    - ``trickle_bps``: send the body at about this many bytes per second.
    - ``expire_url``: Symplify hands out a URL that is already expired; the object store
      answers 403 "Request has expired" to a valid URL.
    - ``job_failed``: the job ends ``Failed`` (Cordial) / ``ERROR`` (Symplify) with this reason.
    - ``never_finish``: the job stays in progress forever.
    """

    status: int | None = None
    retry_after: str | None = None
    stall_s: float = 0.0
    stall_after_bytes: int | None = None
    reset_after_bytes: int | None = None
    truncate_at: int | None = None
    content_length_excess: int = 0
    trickle_bps: int | None = None
    expire_url: bool = False
    job_failed: str | None = None
    never_finish: bool = False


NO_FAULTS = Faults()


def http_date(epoch_seconds: float) -> str:
    """An HTTP-date (``Retry-After`` form), e.g. ``Wed, 21 Oct 2015 07:28:00 GMT``."""
    return email.utils.formatdate(epoch_seconds, usegmt=True)


class FaultPlan:
    """Which faults apply to which request.

    Resolution for a request on ``route`` by ``account``: the oldest queued one-shot fault for
    that route (and that account, or any account) is consumed; else the account's faults for
    that route; else the account's faults for all routes; else none.
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[tuple[Faults, str | None]]] = {}
        self._accounts: dict[tuple[str, str | None], Faults] = {}

    def push(
        self, route: str, faults: Faults, *, times: int = 1, account: str | None = None
    ) -> None:
        """Queue ``faults`` for the next ``times`` requests on ``route``."""
        _check_route(route)
        queue = self._queues.setdefault(route, deque())
        queue.extend((faults, account) for _ in range(times))

    def set_account(self, account: str, faults: Faults | None, *, route: str | None = None) -> None:
        """Apply ``faults`` to every request of ``account`` (on ``route`` only, if given);
        ``None`` removes them."""
        if route is not None:
            _check_route(route)
        if faults is None:
            self._accounts.pop((account, route), None)
        else:
            self._accounts[(account, route)] = faults

    def pending(self, route: str) -> int:
        """How many one-shot faults are still queued for ``route``."""
        return len(self._queues.get(route, ()))

    def clear(self) -> None:
        """Remove every fault."""
        self._queues.clear()
        self._accounts.clear()

    def take(self, route: str, account: str | None) -> Faults:
        """The faults for one request (consumes a one-shot fault)."""
        queue = self._queues.get(route)
        if queue:
            for index, (faults, only) in enumerate(queue):
                if only is None or only == account:
                    del queue[index]
                    return faults
        if account is None:
            return NO_FAULTS
        return (
            self._accounts.get((account, route)) or self._accounts.get((account, None)) or NO_FAULTS
        )


def cut_chunks(chunks: Iterable[bytes], limit: int | None) -> Iterator[bytes]:
    """The ``truncate_at`` fault on a produced file: stop after ``limit`` bytes."""
    if limit is None:
        yield from chunks
        return
    left = limit
    for chunk in chunks:
        if left <= 0:
            return
        yield chunk[:left]
        left -= len(chunk)


def _check_route(route: str) -> None:
    if route not in ROUTES:
        raise ValueError(f"unknown fault route {route!r}; one of {sorted(ROUTES)}")


# --- aiohttp helpers -----------------------------------------------------------------------------


class AppServer:
    """Lifecycle shared by the fakes: one aiohttp app on a loopback port, in this process.

    ``port=0`` picks a free port; :attr:`base_url` tells which. Stopping waits at most
    ``shutdown_timeout`` seconds for in-flight (possibly deliberately stalled) responses."""

    shutdown_timeout = 1.0

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Serve on ``host:port``; returns self."""
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        bound = runner.addresses[0]
        self._base_url = f"http://{bound[0]}:{bound[1]}"
        return self

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._base_url = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


ErrorFactory = Callable[[int], web.StreamResponse]


async def before_response(faults: Faults, error: ErrorFactory) -> web.StreamResponse | None:
    """Act out the faults that replace or delay a whole response.

    Returns the error response to send (``error(status)`` with ``Retry-After`` added), or
    ``None`` when the request should be handled normally."""
    if faults.stall_s and faults.stall_after_bytes is None:
        await asyncio.sleep(faults.stall_s)
    if faults.status is None:
        return None
    response = error(faults.status)
    if faults.retry_after is not None:
        response.headers["Retry-After"] = faults.retry_after
    return response


async def send_body(
    request: web.BaseRequest,
    response: web.StreamResponse,
    chunks: AsyncIterable[bytes] | Iterable[bytes],
    length: int,
    faults: Faults = NO_FAULTS,
) -> web.StreamResponse:
    """Send ``length`` bytes from ``chunks`` as the body, acting out the body faults.

    ``response`` must not be prepared yet; its ``Content-Length`` is set here (honest, cut by
    ``truncate_at``, or inflated by ``content_length_excess``)."""
    limit = length if faults.truncate_at is None else min(length, faults.truncate_at)
    response.content_length = limit + faults.content_length_excess
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    sent = 0
    stalled = False
    async for chunk in _aiter(chunks):
        piece = chunk[: limit - sent]
        if faults.reset_after_bytes is not None and sent + len(piece) >= faults.reset_after_bytes:
            await _write(response, piece[: faults.reset_after_bytes - sent], faults)
            reset_connection(request)
            return response
        stall_at = faults.stall_after_bytes
        if not stalled and stall_at is not None and sent + len(piece) >= stall_at:
            await _write(response, piece[: stall_at - sent], faults)
            await asyncio.sleep(faults.stall_s)
            stalled, piece, sent = True, piece[stall_at - sent :], stall_at
        await _write(response, piece, faults)
        sent += len(piece)
        if sent >= limit:
            break
    if faults.content_length_excess:
        _close_after_flush(request)
    return response


async def send_bytes(
    request: web.BaseRequest,
    status: int,
    body: bytes,
    content_type: str,
    faults: Faults = NO_FAULTS,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """A small complete response (JSON, text) that still honours the body faults."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = content_type
    return await send_body(request, response, (body,), len(body), faults)


async def _aiter(chunks: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk


async def _write(response: web.StreamResponse, data: bytes, faults: Faults) -> None:
    if not data:
        return
    if faults.trickle_bps is None:
        await response.write(data)
        return
    step = max(1, int(faults.trickle_bps * _TRICKLE_TICK_S))
    for start in range(0, len(data), step):
        await response.write(data[start : start + step])
        await asyncio.sleep(_TRICKLE_TICK_S)


def reset_connection(request: web.BaseRequest) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), like a crashed peer or middlebox."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _close_after_flush(request: web.BaseRequest) -> None:
    """Close cleanly (FIN after the buffered bytes): the client sees a short body."""
    if request.transport is not None:
        request.transport.close()


__all__ = [
    "NO_FAULTS",
    "ROUTES",
    "ROUTE_CORDIAL_EXPORT",
    "ROUTE_CORDIAL_JOB",
    "ROUTE_CORDIAL_JOBS",
    "ROUTE_OBJECT_GET",
    "ROUTE_SYMPLIFY_BATCH",
    "ROUTE_SYMPLIFY_RESULT",
    "ROUTE_SYMPLIFY_RESULT_URL",
    "ROUTE_SYMPLIFY_START",
    "AppServer",
    "FaultPlan",
    "Faults",
    "before_response",
    "cut_chunks",
    "http_date",
    "reset_connection",
    "send_body",
    "send_bytes",
]
