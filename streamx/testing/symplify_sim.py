"""A faithful fake of Symplify's (formerly Carma's) statistics export REST API.

Routes, all under ``<base_url>/rest/<customerId>/`` and authenticated by the
``X-Carma-Authentication-Token`` header (401 ``{"error": ...}`` otherwise):

- ``POST batches/exports/statistics`` ``{"exportType": T, "period": P}``
  -> ``{"batchId": "101111"}``.
  T is one of the 10 documented values (the docs' own example ``OPENED`` is accepted as OPENS),
  P one of the 5 periods; anything else is 400 ``{"error": ...}``.
- ``GET batches/<id>`` -> ``{id, type "STAT_EXPORT", customerId, startTime, endTime, affected,
  processed, total, status}``; status moves PENDING -> IN_PROGRESS -> FINISHED with the counters
  following (``endTime`` is null until the batch ends). A failed batch reports ``ERROR``.
- ``GET batches/<id>/result/url`` -> the presigned object-store URL as ``text/plain`` (406 when
  the ``Accept`` header excludes text/plain, the docs' warning about ``application/json``).
- ``GET batches/<id>/result`` -> 302 redirect to that URL.

Undocumented choices: an unknown batch (or another customer's) is 404, asking for the result of
a batch that is not FINISHED is 404, both with ``{"error": ...}``.

The result file is produced at POST time by the :class:`DataProvider`, in a worker thread, and
streamed to disk in the :class:`ObjectStore` (``result/<customerId>/<batchId>_result.json``),
so its size never costs memory. Fault knobs come from :attr:`SymplifySim.faults`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from streamx.testing.clock import Clock, SystemClock
from streamx.testing.faults import (
    ROUTE_SYMPLIFY_BATCH,
    ROUTE_SYMPLIFY_RESULT,
    ROUTE_SYMPLIFY_RESULT_URL,
    ROUTE_SYMPLIFY_START,
    AppServer,
    FaultPlan,
    Faults,
    before_response,
    send_bytes,
)
from streamx.testing.objectstore import ObjectStore
from streamx.testing.provider import DataProvider, Row, StaticRows, symplify_file_chunks

EXPORT_TYPES = (
    "LISTS",
    "CAMPAIGNS",
    "MESSAGES",
    "OPENS",
    "SENT",
    "CLICKS",
    "PROJECTS",
    "HARD_BOUNCES",
    "SOFT_BOUNCES",
    "OPTOUTS",
)
EXPORT_TYPE_ALIASES = {"OPENED": "OPENS"}
PERIODS = ("TODAY", "LAST_DAY", "LAST_3_DAYS", "LAST_WEEK", "LAST_2_WEEKS")
TOKEN_HEADER = "X-Carma-Authentication-Token"
DEMO_CUSTOMER_ID = "5004"
DEMO_TOKEN = "demo-symplify-token"


@dataclass(frozen=True, slots=True)
class SymplifyTimings:
    """How long a batch stays in each state (seconds on the injected monotonic clock)."""

    pending_s: float = 0.1
    in_progress_s: float = 0.4


@dataclass
class Batch:
    """One statistics export. ``rows`` counts rows written so far; ``ready_at`` is set when the
    result file is complete."""

    id: int
    customer_id: str
    export_type: str
    period: str
    created: float
    start_wall: float
    faults: Faults
    key: str
    rows: int = 0
    ready_at: float | None = None
    error: str | None = None
    cancelled: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class SymplifySim(AppServer):
    """The Symplify fake plus its object store (started and stopped together unless given)."""

    def __init__(
        self,
        *,
        provider: DataProvider | None = None,
        tokens: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        timings: SymplifyTimings | None = None,
        faults: FaultPlan | None = None,
        store: ObjectStore | None = None,
        url_ttl_s: float = 600.0,
        first_batch_id: int = 101111,
        failed_status: str = "ERROR",
    ) -> None:
        super().__init__()
        self.provider: DataProvider = provider or StaticRows()
        self.tokens = dict(tokens or {DEMO_CUSTOMER_ID: DEMO_TOKEN})
        self.clock: Clock = clock or SystemClock()
        self.timings = timings or SymplifyTimings()
        self.faults = faults or FaultPlan()
        self._own_store = store is None
        self.store = store or ObjectStore(clock=self.clock, faults=self.faults)
        self.url_ttl_s = url_ttl_s
        self.failed_status = failed_status
        self._next_id = first_batch_id
        self._batches: dict[int, Batch] = {}
        #: Every batch started: ``(batch id, wall time)``, in order (exactly-once checks).
        self.starts: list[tuple[str, float]] = []

    @property
    def customer_id(self) -> str:
        """The first configured customer id (the demo default ``5004``)."""
        return next(iter(self.tokens))

    @property
    def token(self) -> str:
        """That customer's token."""
        return self.tokens[self.customer_id]

    def _app(self) -> web.Application:
        app = web.Application()
        base = "/rest/{customer}/batches"
        app.router.add_post(f"{base}/exports/statistics", self._start_export)
        app.router.add_get(f"{base}/{{batch:\\d+}}", self._get_batch)
        app.router.add_get(f"{base}/{{batch:\\d+}}/result/url", self._get_result_url)
        app.router.add_get(f"{base}/{{batch:\\d+}}/result", self._get_result)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SymplifySim:
        if self._own_store:
            await self.store.start(host)
        return await super().start(host, port)

    async def stop(self) -> None:
        for batch in self._batches.values():
            batch.cancelled = True
        tasks = [batch.task for batch in self._batches.values() if batch.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().stop()
        if self._own_store:
            await self.store.stop()

    def batch_status(self, batch_id: int | str) -> dict[str, Any]:
        """The JSON ``GET batches/<id>`` would answer now (for tests)."""
        return self._view(self._batches[int(batch_id)])

    # --- handlers --------------------------------------------------------------------------------

    async def _start_export(self, request: web.Request) -> web.StreamResponse:
        customer, faults = self._route(request, ROUTE_SYMPLIFY_START)
        refused = await self._refuse(request, customer, faults)
        if refused is not None:
            return refused
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return await _error(request, 400, "Request body is not valid JSON", faults)
        problem = _validate(body)
        if problem is not None:
            return await _error(request, 400, problem, faults)
        batch = self._create(customer, body, faults)
        payload = orjson.dumps({"batchId": str(batch.id)})
        return await send_bytes(request, 200, payload, "application/json", faults)

    async def _get_batch(self, request: web.Request) -> web.StreamResponse:
        customer, faults = self._route(request, ROUTE_SYMPLIFY_BATCH)
        refused = await self._refuse(request, customer, faults)
        if refused is not None:
            return refused
        batch = self._find(request, customer)
        if batch is None:
            return await _error(request, 404, "Batch not found", faults)
        payload = orjson.dumps(self._view(batch))
        return await send_bytes(request, 200, payload, "application/json", faults)

    async def _get_result_url(self, request: web.Request) -> web.StreamResponse:
        customer, faults = self._route(request, ROUTE_SYMPLIFY_RESULT_URL)
        refused = await self._refuse(request, customer, faults)
        if refused is not None:
            return refused
        if not _accepts_text(request.headers.get("Accept")):
            return await _error(request, 406, "This resource produces text/plain", faults)
        url = await self._result_url(request, customer, faults)
        if isinstance(url, web.StreamResponse):
            return url
        return await send_bytes(request, 200, url.encode(), "text/plain", faults)

    async def _get_result(self, request: web.Request) -> web.StreamResponse:
        customer, faults = self._route(request, ROUTE_SYMPLIFY_RESULT)
        refused = await self._refuse(request, customer, faults)
        if refused is not None:
            return refused
        url = await self._result_url(request, customer, faults)
        if isinstance(url, web.StreamResponse):
            return url
        return web.Response(status=302, headers={"Location": url})

    # --- helpers ---------------------------------------------------------------------------------

    def _route(self, request: web.Request, route: str) -> tuple[str, Faults]:
        customer = request.match_info["customer"]
        return customer, self.faults.take(route, customer)

    async def _refuse(
        self, request: web.Request, customer: str, faults: Faults
    ) -> web.StreamResponse | None:
        """Injected status faults first (they come from the front door), then authentication."""
        early = await before_response(faults, _error_response)
        if early is not None:
            return early
        token = request.headers.get(TOKEN_HEADER)
        if token is None or self.tokens.get(customer) != token:
            return await _error(request, 401, "Authentication failed", faults)
        return None

    def _find(self, request: web.Request, customer: str) -> Batch | None:
        batch = self._batches.get(int(request.match_info["batch"]))
        return batch if batch is not None and batch.customer_id == customer else None

    async def _result_url(
        self, request: web.Request, customer: str, faults: Faults
    ) -> str | web.StreamResponse:
        batch = self._find(request, customer)
        if batch is None:
            return await _error(request, 404, "Batch not found", faults)
        status = self._status(batch)
        if status != "FINISHED":
            message = f"Batch {batch.id} has no result (status {status})"
            return await _error(request, 404, message, faults)
        if faults.expire_url:
            return self.store.presign(batch.key, expires_at=int(self.clock.wall()) - 1)
        return self.store.presign(batch.key, expires_in=self.url_ttl_s)

    def _create(self, customer: str, body: Mapping[str, Any], faults: Faults) -> Batch:
        batch_id = self._next_id
        self._next_id += 1
        export_type = EXPORT_TYPE_ALIASES.get(body["exportType"], body["exportType"])
        batch = Batch(
            id=batch_id,
            customer_id=customer,
            export_type=export_type,
            period=body["period"],
            created=self.clock.monotonic(),
            start_wall=self.clock.wall(),
            faults=faults,
            key=f"result/{customer}/{batch_id}_result.json",
        )
        self._batches[batch_id] = batch
        self.starts.append((str(batch_id), batch.start_wall))
        batch.task = asyncio.create_task(self._materialize(batch))
        return batch

    async def _materialize(self, batch: Batch) -> None:
        try:
            await asyncio.to_thread(self._write_result, batch)
            batch.ready_at = self.clock.monotonic()
        except Exception as exc:  # the provider's failure becomes the batch's failure
            batch.error = f"{type(exc).__name__}: {exc}"

    def _write_result(self, batch: Batch) -> None:
        args = (batch.customer_id, batch.export_type, batch.period, str(batch.id))
        fmt = self.provider.symplify_format(*args)
        rows = self._counted(batch, self.provider.symplify_rows(*args))
        content_type = "application/json" if fmt.encoding != "csv" else "text/csv"
        if fmt.gzip:
            content_type = "application/octet-stream"
        self.store.put_chunks(
            batch.key,
            symplify_file_chunks(rows, fmt),
            content_type=content_type,
            account=batch.customer_id,
        )

    @staticmethod
    def _counted(batch: Batch, rows: Iterator[Row]) -> Iterator[Row]:
        for row in rows:
            if batch.cancelled:
                raise RuntimeError("simulator stopped")
            batch.rows += 1
            yield row

    def _status(self, batch: Batch) -> str:
        elapsed = self.clock.monotonic() - batch.created
        if elapsed < self.timings.pending_s:
            return "PENDING"
        done_at = self.timings.pending_s + self.timings.in_progress_s
        if batch.faults.never_finish or elapsed < done_at:
            return "IN_PROGRESS"
        if batch.faults.job_failed is not None or batch.error is not None:
            return self.failed_status
        return "FINISHED" if batch.ready_at is not None else "IN_PROGRESS"

    def _view(self, batch: Batch) -> dict[str, Any]:
        status = self._status(batch)
        elapsed = self.clock.monotonic() - batch.created - self.timings.pending_s
        fraction = min(1.0, max(0.0, elapsed / max(self.timings.in_progress_s, 1e-9)))
        if status == "IN_PROGRESS":
            fraction = min(fraction, 0.99)
        processed = 0 if status == "PENDING" else int(batch.rows * fraction)
        if status == "FINISHED":
            processed = batch.rows
        return {
            "id": batch.id,
            "type": "STAT_EXPORT",
            "customerId": int(batch.customer_id)
            if batch.customer_id.isdigit()
            else batch.customer_id,
            "startTime": int(batch.start_wall * 1000),
            "endTime": self._end_time(batch, status),
            "affected": processed,
            "processed": processed,
            "total": 0 if status == "PENDING" else batch.rows,
            "status": status,
        }

    def _end_time(self, batch: Batch, status: str) -> int | None:
        if status in ("PENDING", "IN_PROGRESS"):
            return None
        took = self.timings.pending_s + self.timings.in_progress_s
        if batch.ready_at is not None:
            took = max(took, batch.ready_at - batch.created)
        return int((batch.start_wall + took) * 1000)


def _customer_json(customer_id: str) -> int | str:
    """The docs show ``customerId`` as a number; non-numeric test ids stay strings."""
    return int(customer_id) if customer_id.isdigit() else customer_id


def _validate(body: Any) -> str | None:
    """The documented request rules; ``None`` when the body is acceptable."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    export_type, period = body.get("exportType"), body.get("period")
    if export_type is None:
        return "exportType is required"
    if export_type not in EXPORT_TYPES and export_type not in EXPORT_TYPE_ALIASES:
        return f"Unknown exportType {export_type!r}; one of {', '.join(EXPORT_TYPES)}"
    if period is None:
        return "period is required"
    if period not in PERIODS:
        return f"Unknown period {period!r}; one of {', '.join(PERIODS)}"
    return None


def _accepts_text(accept: str | None) -> bool:
    if not accept:
        return True
    ranges = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(ranges & {"text/plain", "text/*", "*/*"})


def _error_response(status: int) -> web.StreamResponse:
    messages = {429: "Too many requests", 500: "Internal server error"}
    body = orjson.dumps({"error": messages.get(status, f"HTTP {status}")})
    return web.Response(status=status, body=body, content_type="application/json")


async def _error(
    request: web.Request, status: int, message: str, faults: Faults
) -> web.StreamResponse:
    body = orjson.dumps({"error": message})
    return await send_bytes(request, status, body, "application/json", faults)


__all__ = [
    "DEMO_CUSTOMER_ID",
    "DEMO_TOKEN",
    "EXPORT_TYPES",
    "EXPORT_TYPE_ALIASES",
    "PERIODS",
    "TOKEN_HEADER",
    "Batch",
    "SymplifySim",
    "SymplifyTimings",
]
