"""How a Cordial fake job writes its files, for real, into the destination it was given.

On reaching Processing a job writes its files into its destination: ``s3`` (to the simulator's
``s3_endpoint_url``, e.g. a moto server; without one the job fails), ``sftp`` (asyncssh client,
password or a configured ``savedKey``), ``aws`` (Cordial's own UI storage: kept under
``<local_root>/aws/<jobId>/`` when ``local_root`` is set, discarded otherwise) and, a simulator
extension accepted only when ``local_root`` is set, ``local`` (``path`` relative to
``local_root``, for the demo). ``ftp``, ``gcs`` and ``azureblob`` are valid requests that cannot
be delivered: those jobs end Failed, with ``errorMessage`` saying so. File names and paths:
``destinations.CordialTargets``; row selection and file shape: ``provider.cordial_row_filter``
and ``provider.cordial_file_spec``.

Compressed S3 exports split into several files (``compress`` with ``limitRecordsPerFile``) are
held back on local disk until all exist, then uploaded together, as Cordial's S3 delivery does
(``destinations.Staging``). Any delivery failure is the job's failure (:attr:`Job.error`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from streamx.testing.clock import Clock
from streamx.testing.cordial_jobs import Job
from streamx.testing.destinations import (
    CordialTargets,
    Destination,
    DiscardDestination,
    LocalDirDestination,
    S3Destination,
    SFTPDestination,
    Staging,
    read_chunks,
)
from streamx.testing.faults import cut_chunks
from streamx.testing.provider import (
    DataProvider,
    Row,
    cordial_file_chunks,
    cordial_file_spec,
    cordial_row_filter,
    split_rows,
)


class DeliverySite(Protocol):
    """What delivery reads from the simulator, at delivery time (tests may change it between)."""

    @property
    def provider(self) -> DataProvider: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def local_root(self) -> Path | None: ...

    @property
    def s3_endpoint_url(self) -> str | None: ...

    @property
    def s3_part_size(self) -> int: ...

    @property
    def saved_keys(self) -> Mapping[str, str | Path]: ...


async def deliver(job: Job, site: DeliverySite) -> None:
    """Write every file of ``job``; mark it delivered, or record why it failed."""
    try:
        await _write_files(job, site)
        job.delivered_at = site.clock.monotonic()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any delivery failure is the job's failure
        job.error = f"{type(exc).__name__}: {exc}"


async def _write_files(job: Job, site: DeliverySite) -> None:
    body = job.request
    spec = cordial_file_spec(job.request, lambda: _columns(job, site))
    targets = CordialTargets(job.request, job.id)
    rows = _rows(job, site)
    groups = split_rows(rows, spec.limit_per_file)
    spool = spec.compress and spec.limit_per_file > 0 and targets.kind == "s3"
    async with _open(site, body["destination"]) as destination:
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


def _rows(job: Job, site: DeliverySite) -> Iterator[Row]:
    rows = site.provider.cordial_rows(job.account, job.endpoint, job.request, job.id)
    keep = cordial_row_filter(job.endpoint, job.request)
    for row in rows:
        if keep(row):
            job.rows += 1
            yield row


def _columns(job: Job, site: DeliverySite) -> list[str]:
    return site.provider.cordial_columns(job.account, job.endpoint, job.request, job.id)


def _open(site: DeliverySite, destination: Mapping[str, Any]) -> Destination:
    kind = str(destination["type"]).lower()
    if kind == "s3":
        if site.s3_endpoint_url is None:
            raise RuntimeError("the simulator has no s3_endpoint_url to deliver to")
        return S3Destination(
            bucket=destination["aws_bucket"],
            endpoint_url=site.s3_endpoint_url,
            access_key_id=destination["aws_access_key_id"],
            secret_access_key=destination["aws_secret_access_key"],
            region=destination["aws_region"],
            part_size=site.s3_part_size,
        )
    if kind == "sftp":
        saved = destination.get("savedKey")
        return SFTPDestination(
            host=destination["server"],
            port=int(destination["port"]),
            username=destination["username"],
            password=None if saved else destination.get("password"),
            client_key=site.saved_keys[saved] if saved else None,
        )
    if kind in ("aws", "local"):
        if site.local_root is None:
            return DiscardDestination()
        return LocalDirDestination(site.local_root)
    raise RuntimeError(f"destination type {kind!r} cannot be delivered by the simulator")


__all__ = ["DeliverySite", "deliver"]
