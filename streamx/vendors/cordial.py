"""Cordial exports: contact activity, contacts and audience trends, through a landing zone.

Facts (vendor-docs/cordial-*.txt and the OpenAPI subset): the API root is
``https://api.cordial.io/v2/`` or, for accounts hosted in US-West-2,
``https://api.usw2.cordial.io/v2/``; authentication is HTTP Basic with the API key as user name
and an empty password. ``POST contactactivityexport`` / ``contactexports`` /
``audiencetrendsexport`` answer ``{"jobId": …}``; ``GET jobs/<id>`` reports ``status``
Scheduled | Pending | Processing | Failed | Done (plus ``totalItems`` / ``completedItems``).

Cordial does not return a download URL: the job writes its files to the request's
``destination``. streamx therefore chooses, per job, a fresh sub-path of the account's landing
zone, names the job ``streamx-<token>``, picks ``limitRecordsPerFile`` and ``compress`` itself,
and after Done lists the sub-path and streams every chunk file in order. The job's own record
count (``totalItems``) is handed to the engine, which refuses to publish when the rows read
differ (a missing or truncated chunk).

Because streamx names each job, a durable engine can start it exactly once: it records the
name and path (:meth:`CordialClient.plan_job`) before the POST (:meth:`CordialClient.start_job`),
and a process that died before it saw the job's id finds the job again by that name
(:meth:`CordialClient.find_job`, ``GET jobs`` page by page) instead of starting another.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

from streamx.engine.clock import Clock
from streamx.exceptions import ConfigError, PermanentError
from streamx.landing import LandingZone
from streamx.normalize.cordial import list_column_labels
from streamx.records import STREAMS
from streamx.vendors.base import (
    ApiClient,
    CallOptions,
    ClientSettings,
    JobStatus,
    MalformedResponseError,
    ResultFile,
    count_field,
    path_segment,
    text_field,
)

if TYPE_CHECKING:
    from streamx.config import AccountConfig, ExportSpec

REGIONS: dict[str, str] = {
    "us-east": "https://api.cordial.io/v2",
    "usw2": "https://api.usw2.cordial.io/v2",
}
DEFAULT_REGION = "us-east"
RUNNING = frozenset({"Scheduled", "Pending", "Processing", "Throttled"})
#: Request fields streamx decides itself; an export's ``options`` may not set them.
RESERVED = frozenset(
    {"name", "destination", "limitRecordsPerFile", "compress", "showHeader", "delimiter"}
)
#: Streams whose request needs ``selected_timeframe_start`` / ``_end``.
TIMEFRAME_STREAMS = frozenset({"cordial.contact_activity", "cordial.audience_trends"})
DEFAULT_MAX_TRANSFERS = 2
#: ``GET jobs`` ``jobName`` (the job type Cordial assigns) per export endpoint, where documented
#: (audience trends jobs have no documented type: their lookup lists every job).
JOB_TYPES: dict[str, str] = {
    "contactactivityexport": "ExportEvents",
    "contactexports": "ExportContacts",
}
#: Page size and page limit of a job lookup by name.
FIND_PER_PAGE = 100
FIND_MAX_PAGES = 200


def basic_auth(api_key: str) -> str:
    """HTTP Basic with the API key as user name and an empty password, as Cordial wants."""
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode("ascii")


def base_url_of(region: str | None, base_url: str | None) -> str:
    """The API root (ending ``/v2``) from an explicit ``base_url`` or a ``region``."""
    if base_url:
        root = base_url.rstrip("/")
        return root if root.endswith("/v2") else f"{root}/v2"
    key = region or DEFAULT_REGION
    if key not in REGIONS:
        raise ConfigError(f"unknown Cordial region {key!r} (known: {', '.join(REGIONS)})")
    return REGIONS[key]


class CordialClient:
    """One Cordial account and its landing zone."""

    vendor = "cordial"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account: str,
        api_key: str,
        landing: LandingZone,
        clock: Clock,
        base_url: str,
        records_per_file: int = 500_000,
        compress: bool = True,
        file_type: str | None = None,
        retry_after_cap: float = 300.0,
    ) -> None:
        self.account = account
        self.landing = landing
        self._root = base_url.rstrip("/")
        self.choices = FileChoices(records_per_file, compress, file_type)
        self._jobs: dict[str, tuple[str, str]] = {}
        self._api = ApiClient(
            session,
            vendor=self.vendor,
            account=account,
            clock=clock,
            headers={"Authorization": basic_auth(api_key)},
            retry_after_cap=retry_after_cap,
        )

    @classmethod
    def from_account(
        cls,
        account: AccountConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        settings: ClientSettings,
        landing: LandingZone | None = None,
    ) -> CordialClient:
        """Build the client of a configured account around its landing zone."""
        if landing is None:
            raise ConfigError(f"account {account.name!r}: a Cordial account needs a landing zone")
        return cls(
            session,
            account=account.name,
            api_key=account.secret,
            landing=landing,
            clock=clock,
            base_url=base_url_of(account.region, account.base_url),
            records_per_file=account.records_per_file,
            compress=account.compress,
            file_type=account.file_type,
            retry_after_cap=settings.retry_after_cap,
        )

    # -- the VendorClient protocol --------------------------------------------------------

    def check(self, spec: ExportSpec, stream: str) -> None:
        where = f"export {spec.name!r}"
        if spec.period is not None:
            raise ConfigError(f"{where}: Cordial exports take start/end or days, not a period")
        clash = sorted(RESERVED & set(spec.options))
        if clash:
            raise ConfigError(f"{where}: streamx sets {', '.join(clash)} itself")
        if stream in TIMEFRAME_STREAMS and not (spec.days or (spec.start and spec.end)):
            raise ConfigError(f"{where}: {stream} needs a timeframe (start and end, or days)")
        if spec.days is not None and (spec.start or spec.end):
            raise ConfigError(f"{where}: give start/end or days, not both")
        if stream == "cordial.audience_trends" and not spec.options.get("audiences"):
            raise ConfigError(f"{where}: audience trends need options.audiences")
        file_type = file_type_of(spec, stream, self.choices)
        if file_type not in ("csv", "json") or (
            stream == "cordial.audience_trends" and file_type != "csv"
        ):
            raise ConfigError(f"{where}: exportType {file_type!r} is not supported for {stream}")

    def column_labels(self, spec: ExportSpec) -> dict[str, str]:
        return column_labels(spec)

    async def start(self, spec: ExportSpec, stream: str) -> str:
        # A fresh name per call: without a recorded handle, a retried POST never shares a path.
        return await self.start_job(spec, stream, self.plan_job())

    async def poll(self, remote_id: str) -> JobStatus:
        job = await self._api.json(
            "GET",
            f"{self._root}/jobs/{path_segment(remote_id)}",
            subject="poll job",
            export_id=remote_id,
        )
        if not isinstance(job, dict) or not isinstance(job.get("status"), str):
            raise MalformedResponseError(
                f"poll job: no status in the answer {job!r:.200}", **self._api.ids(remote_id)
            )
        state = job["status"]
        total, done = count_field(job.get("totalItems")), count_field(job.get("completedItems"))
        progress = min(1.0, done / total) if done is not None and total else None
        if state == "Done":
            return JobStatus(state, done=True, progress=1.0, totals=total)
        if state in RUNNING:
            return JobStatus(state, progress=progress)
        reason = job.get("errorMessage") or job.get("message") or f"job ended with status {state}"
        return JobStatus(state, failed=True, reason=str(reason))

    async def locate(self, remote_id: str) -> list[ResultFile]:
        if remote_id not in self._jobs:
            raise PermanentError(
                f"job {remote_id} was not started by this client: its landing path is unknown",
                **self._api.ids(remote_id),
            )
        name, path = self._jobs[remote_id]
        listed = await self.landing.list_files(path)
        files = [(file, size) for file, size in listed if file.rsplit("/", 1)[-1].startswith(name)]
        if not files:
            raise PermanentError(
                f"job is Done but no file named {name}* is in the landing zone at "
                f"{self.landing.location(path)}",
                **self._api.ids(remote_id),
            )
        return [
            ResultFile(
                name=self.landing.location(file), size=size, open=_LandedOpener(self.landing, file)
            )
            for file, size in files
        ]

    async def close(self) -> None:
        await self.landing.close()

    # -- named jobs: what lets a durable engine start each job once ------------------------

    def plan_job(self) -> dict[str, str]:
        """A fresh job name and landing path (``{"name", "path"}``), to be recorded *before*
        :meth:`start_job` sends the POST, so that a process killed before it saw the job's id
        can still find the job by that name (:meth:`find_job`)."""
        token = secrets.token_hex(8)
        return {"name": f"streamx-{token}", "path": self.landing.job_path(token)}

    async def start_job(self, spec: ExportSpec, stream: str, handle: Mapping[str, Any]) -> str:
        """Start the export as the job ``handle`` names (see :meth:`plan_job`); its id."""
        name, path = str(handle["name"]), str(handle["path"])
        await self.landing.prepare(path)
        body = self.request_body(spec, stream, name=name, path=path)
        endpoint = STREAMS[stream].vendor_export
        answer = await self._api.json(
            "POST", f"{self._root}/{endpoint}", subject="start export", body=body
        )
        job_id = text_field(answer.get("jobId")) if isinstance(answer, dict) else None
        if job_id is None:
            raise MalformedResponseError(
                f"start export: no jobId in the answer {answer!r:.200}", **self._api.ids()
            )
        self._jobs[job_id] = (name, path)
        return job_id

    async def find_job(self, name: str, stream: str | None = None) -> str | None:
        """The id of the account's job named ``name`` (the request's ``name``, which Cordial
        reports as ``metadata.name``), or None when Cordial has none.

        ``GET jobs`` filters on ``jobName``, which is the job *type* Cordial assigns
        (``ExportEvents``...), not the name streamx gave: the type narrows the listing when the
        stream's is documented, and every page is read (newest first) until the name is found
        or the listing ends.
        """
        query: dict[str, str] = {"per_page": str(FIND_PER_PAGE)}
        job_type = JOB_TYPES.get(STREAMS[stream].vendor_export) if stream else None
        if job_type is not None:
            query["jobName"] = job_type
        for page in range(1, FIND_MAX_PAGES + 1):
            url = f"{self._root}/jobs?{urlencode({**query, 'page': str(page)})}"
            jobs = await self._api.json("GET", url, subject="list jobs")
            if not isinstance(jobs, list):
                raise MalformedResponseError(
                    f"list jobs: not a list of jobs: {jobs!r:.200}", **self._api.ids()
                )
            found = self._named(jobs, name)
            if found is not None or len(jobs) < FIND_PER_PAGE:
                return found
        raise PermanentError(
            f"list jobs: no end after {FIND_MAX_PAGES} pages looking for job {name}",
            **self._api.ids(),
        )

    def _named(self, jobs: list[Any], name: str) -> str | None:
        for job in jobs:
            metadata = job.get("metadata") if isinstance(job, dict) else None
            if not isinstance(metadata, dict) or metadata.get("name") != name:
                continue
            job_id = text_field(job.get("_id")) or text_field(job.get("id"))
            if job_id is None:
                raise MalformedResponseError(
                    f"list jobs: job {name} has no id: {job!r:.200}", **self._api.ids()
                )
            return job_id
        return None

    def job_handle(self, remote_id: str) -> dict[str, str] | None:
        """What a later process needs to find the files of job ``remote_id`` again."""
        job = self._jobs.get(remote_id)
        return None if job is None else {"name": job[0], "path": job[1]}

    def adopt_job(self, remote_id: str, handle: Mapping[str, Any]) -> None:
        """Take over job ``remote_id`` that another process started as ``handle``."""
        self._jobs[remote_id] = (str(handle["name"]), str(handle["path"]))

    # -- helpers --------------------------------------------------------------------------

    def request_body(
        self, spec: ExportSpec, stream: str, *, name: str, path: str
    ) -> dict[str, Any]:
        """The export request for a job named ``name`` writing into landing ``path``."""
        destination = self.landing.destination(path)
        return export_request(
            spec, stream, name=name, destination=destination, choices=self.choices
        )


class _LandedOpener:
    """``ResultFile.open`` of a landed file: every open reads it again from byte 0."""

    def __init__(self, landing: LandingZone, name: str) -> None:
        self._landing = landing
        self._name = name

    def __call__(self, options: CallOptions) -> AsyncIterator[bytes]:
        return self._landing.open(self._name, 0, options)


@dataclass(frozen=True)
class FileChoices:
    """What streamx decides about an export's files: chunk size, gzip, CSV or JSON lines
    (``None``: JSON lines, except audience trends, which Cordial offers only as CSV)."""

    records_per_file: int = 500_000
    compress: bool = True
    file_type: str | None = None


def export_request(
    spec: ExportSpec,
    stream: str,
    *,
    name: str,
    destination: Mapping[str, Any],
    choices: FileChoices,
) -> dict[str, Any]:
    """The POST body of a Cordial export: the spec's options plus streamx's own choices."""
    file_type = file_type_of(spec, stream, choices)
    body: dict[str, Any] = {
        **spec.options,
        "name": name,
        "exportType": file_type,
        "destination": dict(destination),
        "limitRecordsPerFile": choices.records_per_file,
        "compress": choices.compress,
    }
    if file_type == "csv":
        body["showHeader"] = True
    if stream in TIMEFRAME_STREAMS:
        body.update(timeframe(spec, date_only=stream == "cordial.audience_trends"))
    return body


def file_type_of(spec: ExportSpec, stream: str, choices: FileChoices) -> str:
    """``csv`` or ``json`` (the spec's ``options.exportType`` wins over the account's)."""
    chosen = spec.options.get("exportType") or choices.file_type
    if chosen is None:
        chosen = "csv" if stream == "cordial.audience_trends" else "json"
    return str(chosen).lower()


def column_labels(spec: ExportSpec) -> dict[str, str]:
    """File label -> Cordial field: ``columnHeaders`` renames and the 1/0 list columns."""
    labels: dict[str, str] = {}
    for header in spec.options.get("columnHeaders") or ():
        if isinstance(header, Mapping) and header.get("name"):
            labels[str(header.get("label") or header["name"])] = str(header["name"])
    lists = spec.options.get("lists")
    if lists:
        labels.update(list_column_labels(lists))
    return labels


def timeframe(spec: ExportSpec, *, date_only: bool) -> dict[str, str]:
    """``selected_timeframe_start`` / ``_end`` from the spec (``days`` counts back from now)."""
    if spec.days is not None:
        end = dt.datetime.now(dt.UTC)
        start = end - dt.timedelta(days=spec.days)
        if date_only:
            return {
                "selected_timeframe_start": start.date().isoformat(),
                "selected_timeframe_end": end.date().isoformat(),
            }
        stamp = "%Y-%m-%dT%H:%M:%S.000Z"
        return {
            "selected_timeframe_start": start.strftime(stamp),
            "selected_timeframe_end": end.strftime(stamp),
        }
    return {"selected_timeframe_start": str(spec.start), "selected_timeframe_end": str(spec.end)}


__all__ = [
    "DEFAULT_MAX_TRANSFERS",
    "FIND_MAX_PAGES",
    "FIND_PER_PAGE",
    "JOB_TYPES",
    "REGIONS",
    "RESERVED",
    "CordialClient",
    "FileChoices",
    "base_url_of",
    "basic_auth",
    "column_labels",
    "export_request",
    "file_type_of",
    "timeframe",
]
