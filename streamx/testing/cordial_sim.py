"""A faithful fake of Cordial's v2 export and jobs API.

Routes (under :attr:`CordialSim.base_url` = ``http://127.0.0.1:<port>/v2``), HTTP Basic with the
API key as user name (the password is ignored; 401 otherwise):

- ``POST contactactivityexport`` / ``contactexports`` / ``audiencetrendsexport`` validate the body
  as the docs and the OpenAPI subset describe (:class:`_Rules`) and answer ``{"jobId": "..."}``.
  Errors are ``{error: true, errorKey, message}``: 400 for destination errors (and every error of
  contactexports, whose only documented error status is 400), 406 for export configuration
  errors, 415 for a body that is neither JSON nor form-urlencoded (forms use PHP brackets,
  ``destination[type]=s3``). The documented messages are used wherever the docs give one.
- ``GET jobs/<id>`` -> the job (404 ``RECORD_NOT_FOUND`` for an unknown id or another account's).
- ``GET jobs?jobName=&status=&times[start][gte]=...&page=&per_page=`` -> a page of the account's
  jobs, newest first (422 for a bad filter value; 400 ``JOBS_STATISTIC_PER_PAGE_EXCEEDED`` when
  ``include=statistic`` asks for more than 25 per page). No match is an empty list.

A job goes Scheduled -> Pending -> Processing -> Done (or Failed) on the injected clock. On
reaching Processing it writes its files for real into the destination it was given: ``s3`` (to
``s3_endpoint_url``, e.g. a moto server; without one the job fails), ``sftp`` (asyncssh client,
password or a configured ``savedKey``), ``aws`` (Cordial's own UI storage: kept under
``<local_root>/aws/<jobId>/`` when ``local_root`` is set, discarded otherwise) and, a simulator
extension accepted only when ``local_root`` is set, ``local`` (``path`` relative to
``local_root``, for the demo). ``ftp``, ``gcs`` and ``azureblob`` are valid requests that cannot
be delivered: those jobs end Failed, with ``errorMessage`` saying so. A job is Done only when its
processing time has passed *and* every file is written. File names and paths:
``destinations.CordialTargets``; row selection and file shape: ``provider.cordial_row_filter``
and ``provider.cordial_file_spec``.

Undocumented choices: activity exports that select ``message-sent`` must name
``selected_message_type`` (every documented example does); ``name`` allows underscores (the
docs' examples use them; the rule is Laravel's alpha_dash). Simulator additions to the job JSON:
``_id``, ``metadata.files`` (targets written) and ``errorMessage`` on Failed jobs. Audience
trends jobs are named ``ExportAudienceTrends`` (the documented ``jobName`` enum has none).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import itertools
import posixpath
import re
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from streamx.testing.clock import Clock, SystemClock
from streamx.testing.destinations import (
    DEFAULT_PART_SIZE,
    CordialTargets,
    Destination,
    DiscardDestination,
    LocalDirDestination,
    S3Destination,
    SFTPDestination,
    Staging,
    read_chunks,
)
from streamx.testing.faults import (
    ROUTE_CORDIAL_EXPORT,
    ROUTE_CORDIAL_JOB,
    ROUTE_CORDIAL_JOBS,
    AppServer,
    FaultPlan,
    Faults,
    before_response,
    cut_chunks,
    send_bytes,
)
from streamx.testing.provider import (
    CordialEndpoint,
    DataProvider,
    Row,
    StaticRows,
    as_boolean,
    as_count,
    cordial_file_chunks,
    cordial_file_spec,
    cordial_row_filter,
    parse_time,
    split_rows,
)

DEMO_API_KEY = "demo-cordial-api-key"
JOB_NAMES: dict[str, str] = {
    "contactactivityexport": "ExportEvents",
    "contactexports": "ExportContacts",
    "audiencetrendsexport": "ExportAudienceTrends",
}
JOB_STATUSES = ("Scheduled", "Pending", "Processing", "Throttled", "Failed", "Done")
DESTINATION_TYPES = ("aws", "ftp", "sftp", "s3", "gcs", "azureblob")
STATISTIC_MAX_PER_PAGE = 25
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIME_FILTER = re.compile(r"^times\[(start|end)\]\[(gt|gte|lt|lte)\]$")
_TICK_S = 0.05


@dataclass(frozen=True, slots=True)
class CordialTimings:
    """Seconds a job spends in each state before the next (on the injected monotonic clock)."""

    scheduled_s: float = 0.05
    pending_s: float = 0.1
    processing_s: float = 0.3


class CordialError(Exception):
    """A documented error answer: HTTP status and ``{error, errorKey, message}``."""

    def __init__(
        self,
        status: int,
        message: str,
        error_key: str = "GENERIC_ERROR_KEY",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error_key = status, message, error_key
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return orjson.dumps({"error": True, "errorKey": self.error_key, "message": self.message})


@dataclass
class Job:
    """One export job and its progress."""

    id: str
    account: str
    endpoint: CordialEndpoint
    request: dict[str, Any]
    created: float
    created_wall: float
    faults: Faults
    rows: int = 0
    files: list[str] = field(default_factory=list)
    delivered_at: float | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


# --- request rules -------------------------------------------------------------------------------


class _Rules:
    """Validation of one export request, with the status each kind of error gets."""

    def __init__(self, endpoint: CordialEndpoint, sim: CordialSim) -> None:
        self.endpoint = endpoint
        self.sim = sim
        self.config_status = 400 if endpoint == "contactexports" else 406

    def config(self, message: str) -> CordialError:
        return CordialError(self.config_status, message)

    def check(self, body: dict[str, Any]) -> None:
        self._export_type(body)
        self._name(body)
        self._destination(body.get("destination"))
        if "confirmEmail" in body and not _EMAIL.match(str(body["confirmEmail"])):
            raise CordialError(400, "The confirm email must be a valid email address.")
        for flag in ("showHeader", "compress", "showAllProperties"):
            if flag in body and as_boolean(body[flag]) is None:
                raise self.config(f"The {flag} field must be true or false.")
        if "limitRecordsPerFile" in body and as_count(body["limitRecordsPerFile"]) is None:
            raise self.config("Incorrect format for 'limitRecordsPerFile'")
        if self.endpoint == "contactactivityexport":
            self._activity(body)
        elif self.endpoint == "contactexports":
            self._contacts(body)
        else:
            self._trends(body)

    def _export_type(self, body: dict[str, Any]) -> None:
        allowed = ("csv",) if self.endpoint == "audiencetrendsexport" else ("csv", "json", "txt")
        value = body.get("exportType")
        if value is None:
            if self.endpoint == "contactexports":
                return
            raise self.config("Field 'exportType' should be specified")
        if not isinstance(value, str) or value.lower() not in allowed:
            raise self.config("The selected export type is invalid.")
        delimiter = body.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise self.config("Incorrect format for 'delimiter'")

    def _name(self, body: dict[str, Any]) -> None:
        name = body.get("name")
        if name is None or name == "":
            if self.endpoint == "audiencetrendsexport":
                raise self.config("Field 'name' should be provided.")
            if self.endpoint == "contactactivityexport":
                raise self.config("Field 'name' should be specified")
            return
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.config("The name may only contain letters, numbers, dashes and underscores.")

    def _destination(self, destination: Any) -> None:
        if not isinstance(destination, dict) or not destination.get("type"):
            raise CordialError(400, "The destination.type field is required.")
        kind = str(destination["type"]).lower()
        allowed = (*DESTINATION_TYPES, "local") if self.sim.local_root else DESTINATION_TYPES
        if kind not in allowed:
            raise CordialError(400, "The selected destination.transport is invalid.")
        for name in _required_destination_fields(kind, destination):
            if destination.get(name) in (None, ""):
                if name == "password":
                    raise CordialError(400, "Parameter password is not set")
                raise CordialError(
                    400, f"The destination.{name.replace('_', ' ')} field is required."
                )
        if kind in ("sftp", "ftp") and as_count(destination["port"]) is None:
            raise CordialError(400, "The destination.port must be an integer.")
        saved = destination.get("savedKey")
        if kind == "sftp" and saved and str(saved) not in self.sim.saved_keys:
            raise CordialError(400, f"SSH key with such Name/ID: {saved} does not exist.")

    def _activity(self, body: dict[str, Any]) -> None:
        self._timeframe(body)
        single, many = body.get("selected_action_name"), body.get("selected_action_names")
        if single is not None and many is not None:
            raise self.config(
                "Please use only one from existing filters 'selected_action_name' OR "
                "'selected_action_names'"
            )
        if single is not None and (not isinstance(single, str) or not single):
            raise self.config("Incorrect format for 'selected_action_name'")
        if many is not None and not _strings(many):
            raise self.config("Incorrect format for 'selected_action_names'")
        self._message_type(body, [single] if single else list(many or ()))
        if body.get("selected_audience_key") and body.get("selected_contact"):
            raise self.config(
                "Please use only one from existing filters 'selected_audience_key' OR "
                "'selected_contact'"
            )
        audience = body.get("selected_audience_key")
        if audience and not self.sim.audience_exists(str(audience)):
            raise self.config(f"Audience with name {audience} does not exist.")
        for name in ("additionalJsonlFields", "contactFields"):
            if name in body and not _strings(body[name]):
                raise self.config(f"Incorrect format for '{name}'.")
        self._column_headers(body)

    def _message_type(self, body: dict[str, Any], actions: list[str]) -> None:
        kind = body.get("selected_message_type")
        if kind is None:
            if "message-sent" in actions:
                raise self.config("Field 'selected_message_type' should be specified")
            return
        if kind not in ("batch", "automation"):
            raise self.config("The selected selected message type is invalid.")

    def _column_headers(self, body: dict[str, Any]) -> None:
        headers = body.get("columnHeaders")
        if headers is None:
            return
        if headers == []:
            raise CordialError(400, "The columns field is required.")
        valid = isinstance(headers, list) and all(
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("label", ""), str)
            for item in headers
        )
        if not valid:
            raise self.config("Incorrect format for 'columnHeaders'")

    def _contacts(self, body: dict[str, Any]) -> None:
        if "fields" in body and not _strings(body["fields"], allow_empty=True):
            raise self.config("The fields must be an array.")
        lists = body.get("lists", [])
        if not isinstance(lists, list) or not all(
            isinstance(item, (str, int)) and not isinstance(item, bool) for item in lists
        ):
            raise self.config("The lists must be an array.")
        audience = body.get("audience-key")
        if audience and not self.sim.audience_exists(str(audience)):
            raise self.config(f"Audience with name: '{audience}' does not exist.")

    def _trends(self, body: dict[str, Any]) -> None:
        audiences = body.get("audiences")
        if not audiences:
            raise self.config("Field 'audiences' should be provided.")
        if not _strings(audiences):
            raise self.config("Incorrect format for 'audiences'")
        self._timeframe(body)
        for audience in audiences:
            if not self.sim.audience_exists(audience):
                raise self.config(f"Audience '{audience}' does not exist.")

    def _timeframe(self, body: dict[str, Any]) -> None:
        start, end = body.get("selected_timeframe_start"), body.get("selected_timeframe_end")
        if not start or not end:
            raise self.config(
                "Both fields 'selected_timeframe_start' and 'selected_timeframe_end' should be "
                "present."
            )
        bounds = []
        for name, value in (("selected_timeframe_start", start), ("selected_timeframe_end", end)):
            moment = parse_time(value)
            if moment is None:
                raise self.config(f"The '{name}' is invalid. ISO-8601 is a recommended format.")
            bounds.append(moment)
        if bounds[1] < bounds[0]:
            raise self.config(
                "'selected_timeframe_end' cannot be in past in comparison with "
                "'selected_timeframe_start'"
            )


def _required_destination_fields(kind: str, destination: Mapping[str, Any]) -> tuple[str, ...]:
    if kind in ("sftp", "ftp"):
        secret = () if kind == "sftp" and destination.get("savedKey") else ("password",)
        return ("server", "port", "username", *secret, "path")
    if kind == "s3":
        return ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region", "path")
    if kind == "gcs":
        return ("gcs_bucket", "path")
    if kind == "azureblob":
        return ("account", "container", "path")
    if kind == "local":
        return ("path",)
    return ()


def _strings(value: Any, *, allow_empty: bool = False) -> bool:
    return (
        isinstance(value, list)
        and (allow_empty or bool(value))
        and all(isinstance(item, str) and item for item in value)
    )


def parse_form(pairs: MultiDictProxy[str]) -> dict[str, Any]:
    """PHP-style bracket notation (``destination[type]=s3``, ``lists[]=a``,
    ``columnHeaders[0][name]=email``) into nested data, as Cordial's PHP backend reads forms."""
    data: dict[str, Any] = {}
    for key, value in pairs.items():
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node: Any = data
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            fresh: Any = value if last else ([] if parts[index + 1] == "[]" else {})
            if isinstance(node, list):
                node.append(fresh)
                node = node[-1]
            elif last:
                node[part] = value
            else:
                node = node.setdefault(part, fresh)
    return cast(dict[str, Any], _listify(data))


def _listify(node: Any) -> Any:
    """Dicts keyed ``0, 1, ...`` (indexed form keys) become lists."""
    if isinstance(node, list):
        return [_listify(item) for item in node]
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


# --- the fake ------------------------------------------------------------------------------------


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
        key = _api_key(request)
        faults = self.faults.take(route, key)
        early = await before_response(faults, _fault_response)
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
        body = await _read_body(request)
        rules = _Rules(cast(CordialEndpoint, endpoint), self)
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
        page = as_count(query.get("page", "1"))
        per_page = as_count(query.get("per_page", str(self.default_per_page)))
        if not page or not per_page:
            raise CordialError(422, "Page value is incorrect")
        if "statistic" in query.get("include", "").split(",") and per_page > STATISTIC_MAX_PER_PAGE:
            raise CordialError(
                400,
                "When include=statistic is requested, per_page must not exceed 25.",
                "JOBS_STATISTIC_PER_PAGE_EXCEEDED",
            )
        views = [self._view(job) for job in self._jobs.values() if job.account == key]
        views = [view for view in reversed(views) if _matches(view, query)]
        return views[(page - 1) * per_page : page * per_page]

    # --- state machine ---------------------------------------------------------------------------

    def _phase(self, job: Job) -> str:
        elapsed = self.clock.monotonic() - job.created
        timings = self.timings
        if elapsed < timings.scheduled_s:
            return "Scheduled"
        if elapsed < timings.scheduled_s + timings.pending_s:
            return "Pending"
        if job.faults.never_finish:
            return "Processing"
        if elapsed < timings.scheduled_s + timings.pending_s + timings.processing_s:
            return "Processing"
        if job.faults.job_failed is not None or job.error is not None:
            return "Failed"
        return "Done" if job.delivered_at is not None else "Processing"

    def _advance(self, job: Job) -> str:
        phase = self._phase(job)
        if phase == "Processing" and job.task is None and job.faults.job_failed is None:
            job.task = asyncio.create_task(self._deliver(job))
        return phase

    def _view(self, job: Job) -> dict[str, Any]:
        status = self._advance(job)
        timings = self.timings
        times: dict[str, str] = {}
        if status not in ("Scheduled", "Pending"):
            times["start"] = _stamp(job.created_wall + timings.scheduled_s + timings.pending_s)
        if status in ("Done", "Failed"):
            took = timings.scheduled_s + timings.pending_s + timings.processing_s
            if job.delivered_at is not None:
                took = max(took, job.delivered_at - job.created)
            times["end"] = _stamp(job.created_wall + took)
        body = job.request
        metadata: dict[str, Any] = {
            "exportType": str(body.get("exportType", "csv")).lower(),
            "name": body.get("name", ""),
            "fileName": posixpath.basename(CordialTargets(job.request, job.id).name(None)),
            "files": list(job.files),
        }
        if "lists" in body:
            metadata["lists"] = [str(item) for item in body["lists"]]
        view: dict[str, Any] = {
            "_id": job.id,
            "jobName": JOB_NAMES[job.endpoint],
            "status": status,
            "totalItems": job.rows,
            "completedItems": job.rows,
            "times": times,
            "metadata": metadata,
        }
        if status == "Done":
            view["result"] = {"totalRecords": job.rows}
        if status == "Failed":
            view["errorMessage"] = job.faults.job_failed or job.error
        return view

    # --- delivery --------------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        try:
            await self._write_files(job)
            job.delivered_at = self.clock.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any delivery failure is the job's failure
            job.error = f"{type(exc).__name__}: {exc}"

    async def _write_files(self, job: Job) -> None:
        body = job.request
        spec = cordial_file_spec(job.request, lambda: self._columns(job))
        targets = CordialTargets(job.request, job.id)
        rows = self._rows(job)
        groups = split_rows(rows, spec.limit_per_file)
        spool = spec.compress and spec.limit_per_file > 0 and targets.kind == "s3"
        async with self._open(job, body["destination"]) as destination:
            staged = Staging() if spool else None
            for index in itertools.count(1):
                group = await asyncio.to_thread(next, groups, None)
                if group is None:
                    break
                target = targets.name(index if spec.limit_per_file > 0 else None)
                chunks = cut_chunks(cordial_file_chunks(group, spec), job.faults.truncate_at)
                if staged is not None:
                    await staged.write(target, chunks)
                    continue
                await destination.write(target, chunks)
                job.files.append(target)
            if staged is not None:
                for target, path in staged.files:
                    await destination.write(target, read_chunks(path))
                    job.files.append(target)
                staged.close()

    def _rows(self, job: Job) -> Iterator[Row]:
        rows = self.provider.cordial_rows(job.account, job.endpoint, job.request, job.id)
        keep = cordial_row_filter(job.endpoint, job.request)
        for row in rows:
            if keep(row):
                job.rows += 1
                yield row

    def _columns(self, job: Job) -> list[str]:
        return self.provider.cordial_columns(job.account, job.endpoint, job.request, job.id)

    def _open(self, job: Job, destination: Mapping[str, Any]) -> Destination:
        kind = str(destination["type"]).lower()
        if kind == "s3":
            if self.s3_endpoint_url is None:
                raise RuntimeError("the simulator has no s3_endpoint_url to deliver to")
            return S3Destination(
                bucket=destination["aws_bucket"],
                endpoint_url=self.s3_endpoint_url,
                access_key_id=destination["aws_access_key_id"],
                secret_access_key=destination["aws_secret_access_key"],
                region=destination["aws_region"],
                part_size=self.s3_part_size,
            )
        if kind == "sftp":
            saved = destination.get("savedKey")
            return SFTPDestination(
                host=destination["server"],
                port=int(destination["port"]),
                username=destination["username"],
                password=None if saved else destination.get("password"),
                client_key=self.saved_keys[saved] if saved else None,
            )
        if kind in ("aws", "local"):
            if self.local_root is None:
                return DiscardDestination()
            return LocalDirDestination(self.local_root)
        raise RuntimeError(f"destination type {kind!r} cannot be delivered by the simulator")


def _matches(view: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    if "jobName" in query and view["jobName"] != query["jobName"]:
        return False
    if "status" in query:
        if query["status"] not in JOB_STATUSES:
            raise CordialError(422, "Status value is incorrect")
        if view["status"] != query["status"]:
            return False
    for key, value in query.items():
        match = _TIME_FILTER.match(key)
        if match is None:
            continue
        bound = parse_time(value)
        if bound is None:
            raise CordialError(422, "Time value is incorrect")
        stamp = view["times"].get(match.group(1))
        if stamp is None or not _compare(parse_time(stamp), match.group(2), bound):
            return False
    return True


def _compare(moment: dt.datetime | None, operator: str, bound: dt.datetime) -> bool:
    if moment is None:
        return False
    return {
        "gt": moment > bound,
        "gte": moment >= bound,
        "lt": moment < bound,
        "lte": moment <= bound,
    }[operator]


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def basic_authorization(api_key: str, password: str = "") -> str:
    """The ``Authorization`` value Cordial expects: HTTP Basic with the API key as user name."""
    return "Basic " + base64.b64encode(f"{api_key}:{password}".encode()).decode()


def _api_key(request: web.Request) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header, if well formed."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, colon, _password = decoded.partition(":")
    return user if colon else None


async def _read_body(request: web.Request) -> dict[str, Any]:
    media = request.content_type
    if media == "application/x-www-form-urlencoded":
        return parse_form(await request.post())  # type: ignore[arg-type]
    if media != "application/json":
        raise CordialError(
            415,
            "Unsupported Media Type: Content-Type header must be application/json or "
            "application/x-www-form-urlencoded.",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise CordialError(400, f"Malformed JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise CordialError(400, "The request body must be a JSON object.")
    return body


def _fault_response(status: int) -> web.StreamResponse:
    messages = {429: "Too Many Requests", 500: "Server Error", 503: "Service Unavailable"}
    body = CordialError(status, messages.get(status, f"HTTP {status}")).body()
    return web.Response(status=status, body=body, content_type="application/json")


__all__ = [
    "DEMO_API_KEY",
    "DESTINATION_TYPES",
    "JOB_NAMES",
    "CordialError",
    "CordialSim",
    "CordialTimings",
    "Job",
    "basic_authorization",
    "parse_form",
    "parse_time",
]
