"""The query of the Cordial fake's jobs list: paging and filters over the jobs' JSON.

``GET jobs?jobName=&status=&times[start][gte]=...&page=&per_page=`` answers a page of the
account's jobs, newest first. A bad page, status or time value is 422; ``include=statistic`` with
more than 25 per page is 400 ``JOBS_STATISTIC_PER_PAGE_EXCEEDED``. No match is an empty list, not
an error. Filters compare against the job JSON (``cordial_jobs.job_view``), so a job is listed
exactly as ``GET jobs/<id>`` would show it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from streamx.testing.cordial_http import CordialError
from streamx.testing.cordial_jobs import JOB_STATUSES
from streamx.testing.provider import as_count, parse_time

STATISTIC_MAX_PER_PAGE = 25
_TIME_FILTER = re.compile(r"^times\[(start|end)\]\[(gt|gte|lt|lte)\]$")


def paging(query: Mapping[str, str], default_per_page: int) -> tuple[int, int]:
    """``(page, per_page)`` asked for, checked before any job is looked at."""
    page = as_count(query.get("page", "1"))
    per_page = as_count(query.get("per_page", str(default_per_page)))
    if not page or not per_page:
        raise CordialError(422, "Page value is incorrect")
    if "statistic" in query.get("include", "").split(",") and per_page > STATISTIC_MAX_PER_PAGE:
        raise CordialError(
            400,
            "When include=statistic is requested, per_page must not exceed 25.",
            "JOBS_STATISTIC_PER_PAGE_EXCEEDED",
        )
    return page, per_page


def select(
    views: Sequence[dict[str, Any]], query: Mapping[str, str], page: int, per_page: int
) -> list[dict[str, Any]]:
    """The page of ``views`` (oldest first) that match ``query``, newest first."""
    matching = [view for view in reversed(views) if matches(view, query)]
    return matching[(page - 1) * per_page : page * per_page]


def matches(view: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    """Whether one job's JSON passes the ``jobName``, ``status`` and ``times[..][..]`` filters."""
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


__all__ = ["STATISTIC_MAX_PER_PAGE", "matches", "paging", "select"]
