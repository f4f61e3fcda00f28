"""When each scheduled export is due: fixed intervals or a daily time in a timezone.

Why occurrences and keys rather than timers: a worker may be down for hours, a fleet of workers
all look at the same schedules, and an export must never start twice. So a schedule is a pure
function from time to *occurrences* (instants), every occurrence has a stable key
(``"<export name>@<occurrence in UTC>"``), and the planner inserts one state-store row per key:
planning the same occurrence again (another worker, a restart) is a no-op in the store.

* ``every = "15m"`` (``s``/``m``/``h``/``d``, combinable: ``"1h30m"``): occurrences are the
  multiples of the interval since the Unix epoch, in UTC, so every worker computes the same
  instants whenever it started.
* ``daily = "02:30"`` with ``timezone = "Europe/Stockholm"``: once per local calendar day.
  DST-correct: a time skipped by the spring change runs once, shifted forward by the gap
  (02:30 becomes 03:30 CEST); a time repeated by the autumn change runs once, at its first
  occurrence (fold 0).
* Catch-up: after downtime :func:`due` returns every occurrence missed since the last planned
  one, but at most ``catch_up`` of them (the most recent), so a week offline does not queue a
  week of exports.
* Jitter: :func:`jitter_offset` is a deterministic delay in ``[0, jitter)`` seconds from the
  export name and the worker id (a hash, stable across restarts and machines), so exports due
  at the same instant do not all hit the vendor at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from streamx.state.base import ExportState

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"(?:\d+[smhd])+")
_EVERY_PART = re.compile(r"(\d+)([smhd])")
_DAILY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")
_KEY_TIME = "%Y-%m-%dT%H:%M:%SZ"
_UTC_ZONE = ZoneInfo("UTC")


def parse_every(text: str) -> timedelta:
    """``"15m"``, ``"2h"``, ``"1h30m"``, ``"90s"``, ``"1d"`` as a timedelta (ValueError else)."""
    if not _EVERY.fullmatch(text):
        raise ValueError(f"an interval looks like 15m, 2h, 1h30m or 1d, got {text!r}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _EVERY_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"an interval must be positive, got {text!r}")
    return timedelta(seconds=seconds)


def parse_daily(text: str) -> time:
    """``"02:30"`` or ``"02:30:15"`` (24-hour clock) as a time (ValueError else)."""
    match = _DAILY.fullmatch(text)
    if match is None:
        raise ValueError(f"a daily time looks like 02:30 (24-hour HH:MM), got {text!r}")
    return time(int(match[1]), int(match[2]), int(match[3] or 0))


@dataclass(frozen=True)
class Schedule:
    """When export ``export`` runs: ``every`` interval or ``daily`` at a time in ``timezone``.

    ``catch_up`` bounds how many missed occurrences :func:`due` returns after downtime;
    ``jitter`` (seconds) bounds the per-worker delay of :func:`jitter_offset`.
    """

    export: str
    every: timedelta | None = None
    daily: time | None = None
    timezone: ZoneInfo = _UTC_ZONE
    catch_up: int = 1
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if (self.every is None) == (self.daily is None):
            raise ValueError(f"schedule {self.export!r}: give exactly one of every or daily")
        if self.every is not None and (
            self.every.total_seconds() < 1 or self.every.total_seconds() % 1
        ):
            raise ValueError(f"schedule {self.export!r}: every must be whole seconds >= 1")
        if self.catch_up < 1:
            raise ValueError(f"schedule {self.export!r}: catch_up must be >= 1")
        if self.jitter < 0:
            raise ValueError(f"schedule {self.export!r}: jitter must be >= 0")


@dataclass(frozen=True)
class Occurrence:
    """One due run of a scheduled export; ``at`` is the scheduled instant (UTC)."""

    export: str
    at: datetime

    @property
    def key(self) -> str:
        """The state-store key: the same occurrence always gets the same key."""
        return occurrence_key(self.export, self.at)

    def state(self, **spec: Any) -> ExportState:
        """A ``planned`` store row for this occurrence (``spec`` adds fields to its spec)."""
        iso = self.at.astimezone(UTC).strftime(_KEY_TIME)
        return ExportState(key=self.key, spec={"export": self.export, "occurrence": iso, **spec})


def occurrence_key(export: str, at: datetime) -> str:
    """``"<export>@<YYYY-MM-DDTHH:MM:SSZ>"``: the occurrence in UTC, to the second."""
    return f"{export}@{_utc(at).strftime(_KEY_TIME)}"


def parse_occurrence_key(key: str) -> Occurrence:
    """The inverse of :func:`occurrence_key` (a restart recovers ``last_planned`` from keys)."""
    export, sep, stamp = key.rpartition("@")
    if not sep or not export:
        raise ValueError(f"not an occurrence key: {key!r}")
    at = datetime.strptime(stamp, _KEY_TIME).replace(tzinfo=UTC)
    return Occurrence(export, at)


def latest_at(schedule: Schedule, moment: datetime) -> datetime:
    """The schedule's last occurrence at or before ``moment`` (UTC)."""
    moment = _utc(moment)
    if schedule.every is not None:
        step = int(schedule.every.total_seconds())
        return datetime.fromtimestamp(int(moment.timestamp() // step) * step, UTC)
    day = moment.astimezone(schedule.timezone).date()
    candidate = _daily_at(schedule, day)
    return candidate if candidate <= moment else _daily_at(schedule, day - timedelta(days=1))


def next_after(schedule: Schedule, moment: datetime) -> datetime:
    """The schedule's first occurrence strictly after ``moment`` (UTC)."""
    latest = latest_at(schedule, moment)
    if schedule.every is not None:
        return latest + schedule.every
    day = latest.astimezone(schedule.timezone).date()
    following = _daily_at(schedule, day + timedelta(days=1))
    while following <= latest:  # a calendar day the zone skipped maps onto its neighbour
        day += timedelta(days=1)
        following = _daily_at(schedule, day + timedelta(days=1))
    return following


def due(schedule: Schedule, last_planned: datetime | None, now: datetime) -> list[datetime]:
    """Occurrences in ``(last_planned, now]``, oldest first, at most ``catch_up`` (the most
    recent ones). With no ``last_planned`` (a schedule seen for the first time) only the
    latest occurrence at or before ``now`` is due: a new schedule runs at once, once."""
    limit = 1 if last_planned is None else schedule.catch_up
    found: list[datetime] = []
    for occurrence in _backwards(schedule, _utc(now)):
        if len(found) == limit or (last_planned is not None and occurrence <= last_planned):
            break
        found.append(occurrence)
    return found[::-1]


def jitter_offset(export: str, worker_id: str, jitter: float) -> float:
    """A delay in ``[0, jitter)`` seconds, the same for the same export and worker on any
    machine and run (sha256, not Python's per-process salted ``hash``)."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{export}\x00{worker_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * jitter


def _backwards(schedule: Schedule, now: datetime) -> Iterator[datetime]:
    """Occurrences at or before ``now``, newest first (lazily: never more than needed)."""
    occurrence = latest_at(schedule, now)
    if schedule.every is not None:
        while True:
            yield occurrence
            occurrence -= schedule.every
    day = occurrence.astimezone(schedule.timezone).date()
    previous: datetime | None = None
    while True:
        occurrence = _daily_at(schedule, day)
        if previous is None or occurrence < previous:  # a skipped calendar day repeats one
            yield occurrence
            previous = occurrence
        day -= timedelta(days=1)


def _daily_at(schedule: Schedule, day: date) -> datetime:
    """The local ``daily`` time on ``day`` as UTC; fold=0 resolves DST gaps and repeats."""
    assert schedule.daily is not None
    # The docstring's promise needs fold=0 whatever the configured time carries: with fold=1 a
    # time inside a spring-forward gap resolves to *before* the gap (01:00 for 02:00).
    at = schedule.daily.replace(fold=0)
    local = datetime.combine(day, at, tzinfo=schedule.timezone)
    return local.astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"need an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


__all__ = [
    "Occurrence",
    "Schedule",
    "due",
    "jitter_offset",
    "latest_at",
    "next_after",
    "occurrence_key",
    "parse_daily",
    "parse_every",
    "parse_occurrence_key",
]
