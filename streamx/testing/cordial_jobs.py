"""A Cordial export job as the fake keeps it, the state it is in, and the JSON it shows.

A job goes Scheduled -> Pending -> Processing -> Done (or Failed) on the injected clock, spending
:class:`CordialTimings` in each state. A job is Done only when its processing time has passed
*and* every file is written (delivery is ``cordial_delivery``); a job whose delivery failed, or
that a fault marks failed, ends Failed; a ``never_finish`` fault keeps it Processing.

``GET jobs/<id>`` answers :func:`job_view`. Simulator additions to the job JSON: ``_id``,
``metadata.files`` (targets written) and ``errorMessage`` on Failed jobs. Audience trends jobs are
named ``ExportAudienceTrends`` (the documented ``jobName`` enum has none).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import posixpath
from dataclasses import dataclass, field
from typing import Any

from streamx.testing.destinations import CordialTargets
from streamx.testing.faults import Faults
from streamx.testing.provider import CordialEndpoint

JOB_NAMES: dict[str, str] = {
    "contactactivityexport": "ExportEvents",
    "contactexports": "ExportContacts",
    "audiencetrendsexport": "ExportAudienceTrends",
}
JOB_STATUSES = ("Scheduled", "Pending", "Processing", "Throttled", "Failed", "Done")


@dataclass(frozen=True, slots=True)
class CordialTimings:
    """Seconds a job spends in each state before the next (on the injected monotonic clock)."""

    scheduled_s: float = 0.05
    pending_s: float = 0.1
    processing_s: float = 0.3


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


def job_phase(job: Job, elapsed: float, timings: CordialTimings) -> str:
    """The status of ``job`` ``elapsed`` seconds after it was created."""
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


def job_view(job: Job, status: str, timings: CordialTimings) -> dict[str, Any]:
    """The job's JSON in ``status``: times, metadata, and the result or the error."""
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


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


__all__ = ["JOB_NAMES", "JOB_STATUSES", "CordialTimings", "Job", "job_phase", "job_view"]
