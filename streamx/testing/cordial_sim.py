"""A faithful fake of Cordial's v2 export and jobs API: the in-process aiohttp server.

Routes (under :attr:`CordialSim.base_url` = ``http://127.0.0.1:<port>/v2``), HTTP Basic with the
API key as user name (the password is ignored; 401 otherwise; ``cordial_http``):

- ``POST contactactivityexport`` / ``contactexports`` / ``audiencetrendsexport`` validate the body
  (``cordial_rules``: what a request must be, the documented messages and statuses: 400, 406,
  415) and answer ``{"jobId": "..."}``.
- ``GET jobs/<id>`` -> the job (404 ``RECORD_NOT_FOUND`` for an unknown id or another account's);
  states and JSON: ``cordial_jobs``.
- ``GET jobs?jobName=&status=&times[start][gte]=...&page=&per_page=`` -> a page of the account's
  jobs, newest first (422 for a bad filter value; 400 ``JOBS_STATISTIC_PER_PAGE_EXCEEDED`` when
  ``include=statistic`` asks for more than 25 per page; ``cordial_job_query``). No match is an
  empty list.

A job goes Scheduled -> Pending -> Processing -> Done (or Failed) on the injected clock; on
reaching Processing it writes its files for real into the destination it was given
(``cordial_delivery``). A background tick starts those deliveries even when nobody polls. With
``rate_limit`` set, each API key gets a fixed one-minute window (``X-Rate-Limit-*`` headers, 429
with ``Retry-After`` beyond it). Fault knobs come from :attr:`CordialSim.faults`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any, cast

import orjson
from aiohttp import web

from streamx.testing.clock import Clock, SystemClock
from streamx.testing.cordial_delivery import deliver
from streamx.testing.cordial_http import (
    CordialError,
    basic_authorization,
    fault_response,
    request_api_key,
)
from streamx.testing.cordial_job_query import paging, select
from streamx.testing.cordial_jobs import JOB_NAMES, CordialTimings, Job, job_phase, job_view
from streamx.testing.cordial_rules import ExportRules, read_body
from streamx.testing.destinations import DEFAULT_PART_SIZE
from streamx.testing.faults import (
    ROUTE_CORDIAL_EXPORT,
    ROUTE_CORDIAL_JOB,
    ROUTE_CORDIAL_JOBS,
    AppServer,
    FaultPlan,
    Faults,
    before_response,
    send_bytes,
)
from streamx.testing.provider import CordialEndpoint, DataProvider, StaticRows

DEMO_API_KEY = "demo-cordial-api-key"
_TICK_S = 0.05


class CordialSim(AppServer):
    """The Cordial fake (in-process aiohttp server on loopback)."""

    def __init__(
        self,
        *,
        provider: DataProvider | None = None,
        api_keys: Collection[str] = (DEMO_API_KEY,),
        clock: Clock | None = None,
        timings: CordialTimings | None = None,
        faults: FaultPlan | None = None,
        local_root: str | Path | None = None,
        s3_endpoint_url: str | None = None,
        s3_part_size: int = DEFAULT_PART_SIZE,
        saved_keys: Mapping[str, str | Path] | None = None,
        audiences: Collection[str] | None = None,
        rate_limit: int | None = None,
        default_per_page: int = 25,
    ) -> None:
        super().__init__()
        self.provider: DataProvider = provider or StaticRows()
        self.api_keys = tuple(api_keys)
        self.clock: Clock = clock or SystemClock()
        self.timings = timings or CordialTimings()
        self.faults = faults or FaultPlan()
        self.local_root = Path(local_root) if local_root is not None else None
        self.s3_endpoint_url = s3_endpoint_url
        self.s3_part_size = s3_part_size
        self.saved_keys = dict(saved_keys or {})
        self.audiences = frozenset(audiences) if audiences is not None else None
        self.rate_limit = rate_limit
        self.default_per_page = default_per_page
        self._jobs: dict[str, Job] = {}
        #: Every job started: ``(job id, wall time)``, in order (exactly-once checks).
        self.starts: list[tuple[str, float]] = []
        self._counter = itertools.count(1)
        self._windows: dict[str, tuple[float, int]] = {}
        self._ticker: asyncio.Task[None] | None = None

    @property
    def api_key(self) -> str:
        """The first configured API key (the demo default)."""
        return self.api_keys[0]

    @property
    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` header for :attr:`api_key` (key as user name, empty password)."""
        return {"Authorization": basic_authorization(self.api_key)}

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v2`` (Cordial's API root includes the version)."""
        return f"{super().base_url}/v2"

    def audience_exists(self, name: str) -> bool:
        return self.audiences is None or name in self.audiences

    def job(self, job_id: str) -> dict[str, Any]:
        """The JSON ``GET jobs/<id>`` would answer now (for tests)."""
        return self._view(self._jobs[job_id])

    def _app(self) -> web.Application:
        app = web.Application()
        for endpoint in JOB_NAMES:
            app.router.add_post(f"/v2/{endpoint}", self._create_handler(endpoint))
        app.router.add_get("/v2/jobs/{job_id}", self._get_job)
        app.router.add_get("/v2/jobs", self._list_jobs)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> CordialSim:
        await super().start(host, port)
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ticker is not None:
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        await super().stop()

    async def _tick(self) -> None:
        """Start deliveries of jobs that reached Processing even if nobody polls them."""
        while True:
            for job in list(self._jobs.values()):
                if job.task is None:
                    self._advance(job)
            await asyncio.sleep(_TICK_S)

    # --- handlers --------------------------------------------------------------------------------

    def _create_handler(
        self, endpoint: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, ROUTE_CORDIAL_EXPORT, self._create, endpoint)

        return handler

    async def _get_job(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, ROUTE_CORDIAL_JOB, self._job_answer, "")

    async def _list_jobs(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, ROUTE_CORDIAL_JOBS, self._jobs_answer, "")

    async def _handle(
        self,
        request: web.Request,
        route: str,
        answer: Callable[[web.Request, str, str, Faults], Awaitable[Any]],
        endpoint: str,
    ) -> web.StreamResponse:
        key = request_api_key(request)
        faults = self.faults.take(route, key)
        early = await before_response(faults, fault_response)
        if early is not None:
            return early
        headers: dict[str, str] = {}
        try:
            if key is None or key not in self.api_keys:
                challenge = {"WWW-Authenticate": 'Basic realm="Cordial API"'}
                raise CordialError(401, "Unauthorized", "UNAUTHORIZED", challenge)
            headers = self._rate_headers(key)
            payload = await answer(request, key, endpoint, faults)
            status, body = 200, orjson.dumps(payload)
        except CordialError as error:
            status, body = error.status, error.body()
            headers.update(error.headers)
        return await send_bytes(request, status, body, "application/json", faults, headers)

    def _rate_headers(self, key: str) -> dict[str, str]:
        """Fixed one-minute window per API key when ``rate_limit`` is set."""
        if self.rate_limit is None:
            return {}
        now = self.clock.monotonic()
        start, used = self._windows.get(key, (now, 0))
        if now - start >= 60:
            start, used = now, 0
        used += 1
        self._windows[key] = (start, used)
        reset_in = max(1, int(start + 60 - now))
        headers = {
            "X-Rate-Limit-Limit": str(self.rate_limit),
            "X-Rate-Limit-Remaining": str(max(0, self.rate_limit - used)),
            "X-Rate-Limit-Reset": str(int(self.clock.wall()) + reset_in),
        }
        if used > self.rate_limit:
            headers["Retry-After"] = str(reset_in)
            raise CordialError(429, "Too Many Requests", "TOO_MANY_REQUESTS", headers)
        return headers

    async def _create(
        self, request: web.Request, key: str, endpoint: str, faults: Faults
    ) -> dict[str, Any]:
        body = await read_body(request)
        rules = ExportRules(cast(CordialEndpoint, endpoint), self)
        rules.check(body)
        job = Job(
            id=f"{int(self.clock.wall()):08x}{next(self._counter):016x}",
            account=key,
            endpoint=cast(CordialEndpoint, endpoint),
            request=body,
            created=self.clock.monotonic(),
            created_wall=self.clock.wall(),
            faults=faults,
        )
        self._jobs[job.id] = job
        self.starts.append((job.id, job.created_wall))
        return {"jobId": job.id}

    async def _job_answer(
        self, request: web.Request, key: str, endpoint: str, faults: Faults
    ) -> dict[str, Any]:
        job = self._jobs.get(request.match_info["job_id"])
        if job is None or job.account != key:
            raise CordialError(404, "record not found", "RECORD_NOT_FOUND")
        return self._view(job)

    async def _jobs_answer(
        self, request: web.Request, key: str, endpoint: str, faults: Faults
    ) -> list[dict[str, Any]]:
        query = request.query
        page, per_page = paging(query, self.default_per_page)
        views = [self._view(job) for job in self._jobs.values() if job.account == key]
        return select(views, query, page, per_page)

    # --- state machine ---------------------------------------------------------------------------

    def _advance(self, job: Job) -> str:
        phase = job_phase(job, self.clock.monotonic() - job.created, self.timings)
        if phase == "Processing" and job.task is None and job.faults.job_failed is None:
            job.task = asyncio.create_task(deliver(job, self))
        return phase

    def _view(self, job: Job) -> dict[str, Any]:
        return job_view(job, self._advance(job), self.timings)


__all__ = [
    "DEMO_API_KEY",
    "CordialError",
    "CordialSim",
    "CordialTimings",
    "Job",
    "basic_authorization",
]
