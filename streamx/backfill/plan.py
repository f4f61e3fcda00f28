"""Planning a backfill: a date range -> the exports that cover it, each with a stable key.

Why keys: the plan is written into the state store before anything runs, one row per export
keyed by what the export *is* (template, window or period). Planning the same command again
finds the same rows, so a second run does only what is missing.

Per vendor (facts: vendor-docs, docs/backfill.md):

* **Cordial** takes an absolute timeframe, so the range is cut into windows (``--window``,
  default one day); each window is one export, partitioned by its start date. Audience trends
  take whole days (``YYYY-MM-DD``, both ends inclusive), so their windows are whole days.
  Contacts are a snapshot, not a time range: they are not backfilled (a note says so).
* **Symplify** knows only periods relative to now (TODAY, LAST_DAY, LAST_3_DAYS, LAST_WEEK,
  LAST_2_WEEKS). One export per stream, with the smallest period reaching at least
  :data:`SYMPLIFY_MARGIN` further back than the range start. A period always ends *now*, so
  the export also holds records after the range end; records older than two weeks cannot be
  fetched at all, and the plan says so. Overlaps with earlier exports are removed by
  ``record_id`` (:mod:`streamx.durable.dedupe`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streamx.config import Config, ExportSpec, resolve_stream
from streamx.exceptions import ConfigError
from streamx.records import STREAMS

#: Symplify periods and how far back each reaches (each is assumed to end now).
SYMPLIFY_PERIODS: tuple[tuple[str, dt.timedelta], ...] = (
    ("LAST_DAY", dt.timedelta(days=1)),
    ("LAST_3_DAYS", dt.timedelta(days=3)),
    ("LAST_WEEK", dt.timedelta(days=7)),
    ("LAST_2_WEEKS", dt.timedelta(days=14)),
)
#: Extra reach asked of a Symplify period: its days are counted in Symplify's own time zone
#: and the docs do not say whether LAST_DAY is the last 24 hours or the previous day.
SYMPLIFY_MARGIN = dt.timedelta(hours=12)
DEFAULT_WINDOW = dt.timedelta(days=1)
_WINDOW = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class PlannedExport:
    """One export of the plan: its store key, the spec to run, and what it covers."""

    key: str
    spec: ExportSpec
    vendor: str
    stream: str
    start: dt.datetime
    end: dt.datetime
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "account": self.spec.account,
            "stream": self.stream,
            "vendor": self.vendor,
            "start": _stamp(self.start),
            "end": _stamp(self.end),
            "period": self.spec.period,
            "dt": self.spec.dt,
            "note": self.note,
        }


@dataclass
class Plan:
    """The exports covering ``[start, end)``, and notes the user must read (limits)."""

    start: dt.datetime
    end: dt.datetime
    window: dt.timedelta
    exports: list[PlannedExport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [export.key for export in self.exports]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": _stamp(self.start),
            "end": _stamp(self.end),
            "window": format_window(self.window),
            "exports": [export.to_json() for export in self.exports],
            "notes": list(self.notes),
        }


def parse_window(text: str) -> dt.timedelta:
    """``"1d"``, ``"6h"``, ``"30m"`` -> a positive timedelta (ConfigError otherwise)."""
    match = _WINDOW.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise ConfigError(f"window must look like 1d, 6h or 30m, got {text!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def format_window(window: dt.timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_moment(text: str, *, end: bool = False) -> dt.datetime:
    """A range bound in UTC. A date means its midnight; as the *end* of a range it means the
    end of that day (``--to 2026-10-31`` includes October 31). A date-time without a zone is
    UTC."""
    value = text.strip()
    try:
        if _DATE.match(value):
            day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
            return day + dt.timedelta(days=1) if end else day
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not a date (YYYY-MM-DD) or ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def plan_backfill(
    config: Config,
    start: dt.datetime,
    end: dt.datetime,
    *,
    streams: Sequence[str] = (),
    accounts: Sequence[str] = (),
    window: dt.timedelta = DEFAULT_WINDOW,
    now: dt.datetime | None = None,
) -> Plan:
    """The exports covering ``[start, end)`` for the chosen templates (see the module
    docstring). ``now`` (default: the current time) anchors Symplify's relative periods."""
    if end <= start:
        raise ConfigError(f"the range is empty: --to ({_stamp(end)}) is not after --from")
    if window <= dt.timedelta(0):
        raise ConfigError("window must be positive")
    now = now or dt.datetime.now(dt.UTC)
    if start >= now:
        raise ConfigError(f"the range starts in the future ({_stamp(start)})")
    plan = Plan(start=start, end=end, window=window)
    for template in templates(config, streams, accounts):
        account, stream = resolve_stream(config, template)
        if account.vendor == "symplify":
            _plan_symplify(plan, template, stream, now)
        elif stream == "cordial.contacts":
            plan.notes.append(
                f"{template.name}: contacts are a snapshot, not a time range; not backfilled "
                "(use `streamx run` for a current snapshot)"
            )
        else:
            _plan_cordial(plan, template, stream, now)
    return plan


def templates(
    config: Config, streams: Sequence[str] = (), accounts: Sequence[str] = ()
) -> list[ExportSpec]:
    """The exports to backfill: the configured ``[[exports]]`` whose account and stream were
    chosen, plus a bare export for every chosen stream of a chosen account that no configured
    export covers."""
    chosen_accounts = _accounts(config, accounts)
    chosen = [
        spec
        for spec in config.exports
        if spec.account in chosen_accounts and _matches(config, spec, streams)
    ]
    covered = {(spec.account, resolve_stream(config, spec)[1]) for spec in chosen}
    for name in streams:
        for account in chosen_accounts:
            vendor = config.accounts[account].vendor
            full = name if "." in name else f"{vendor}.{name}"
            info = STREAMS.get(full)
            if info is None or info.source != vendor or (account, full) in covered:
                continue
            short = full.split(".", 1)[1]
            chosen.append(ExportSpec(name=f"{account}.{short}", account=account, stream=full))
            covered.add((account, full))
    if not chosen:
        raise ConfigError(
            "nothing to backfill: no configured [[exports]] match, and no --streams name a "
            "stream of the chosen accounts"
        )
    return chosen


def _accounts(config: Config, accounts: Sequence[str]) -> list[str]:
    for name in accounts:
        if name not in config.accounts:
            known = ", ".join(config.accounts) or "none"
            raise ConfigError(f"unknown account {name!r} (known: {known})")
    return list(accounts) or list(config.accounts)


def _matches(config: Config, spec: ExportSpec, streams: Sequence[str]) -> bool:
    if not streams:
        return True
    _, full = resolve_stream(config, spec)
    return full in streams or full.split(".", 1)[1] in streams


def _plan_symplify(plan: Plan, template: ExportSpec, stream: str, now: dt.datetime) -> None:
    reach = now - plan.start + SYMPLIFY_MARGIN
    widest, widest_reach = SYMPLIFY_PERIODS[-1]
    oldest = now - widest_reach + SYMPLIFY_MARGIN
    if plan.end <= oldest:
        plan.notes.append(
            f"{template.name}: Symplify only offers periods relative to now, the widest being "
            f"LAST_2_WEEKS (back to about {_stamp(oldest)}): nothing of this range can be "
            "fetched any more"
        )
        return
    period = next((name for name, back in SYMPLIFY_PERIODS if back >= reach), widest)
    note = f"Symplify period {period} (Symplify knows only periods ending now)"
    if reach > widest_reach:
        note = (
            f"Symplify's widest period, LAST_2_WEEKS, reaches back only to about "
            f"{_stamp(oldest)}: records from {_stamp(plan.start)} to then cannot be fetched"
        )
        plan.notes.append(f"{template.name}: {note}")
    key = f"{template.name}@{_stamp(plan.start)}..{_stamp(plan.end)}@{period}"
    spec = replace(_bare(template, key), period=period)
    plan.exports.append(
        PlannedExport(key, spec, "symplify", stream, max(plan.start, oldest), now, note)
    )


def _plan_cordial(plan: Plan, template: ExportSpec, stream: str, now: dt.datetime) -> None:
    whole_days = stream == "cordial.audience_trends"
    window = plan.window
    start = plan.start
    if whole_days:
        window = dt.timedelta(days=max(1, round(window / dt.timedelta(days=1))))
        start = dt.datetime.combine(plan.start.date(), dt.time(), dt.UTC)
    while start < plan.end:
        stop = start + window if whole_days else min(start + window, plan.end)
        if stop > now:
            plan.notes.append(
                f"{template.name}: windows from {_stamp(start)} on are not over yet and are not "
                "planned (an export of an unfinished window would miss its later records); "
                "run the backfill again once they are"
            )
            return
        if whole_days:
            first = start.date().isoformat()
            last = (stop - dt.timedelta(days=1)).date().isoformat()
        else:
            first, last = _millis(start), _millis(stop - dt.timedelta(milliseconds=1))
        key = f"{template.name}@{_stamp(start)}/{format_window(stop - start)}"
        spec = replace(_bare(template, key), dt=start.date().isoformat(), start=first, end=last)
        plan.exports.append(PlannedExport(key, spec, "cordial", stream, start, stop))
        start = stop


def _bare(template: ExportSpec, key: str) -> ExportSpec:
    """The template renamed to its key, without its own time selection."""
    return replace(template, name=key, period=None, start=None, end=None, days=None, dt=None)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _millis(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


__all__ = [
    "DEFAULT_WINDOW",
    "SYMPLIFY_MARGIN",
    "SYMPLIFY_PERIODS",
    "Plan",
    "PlannedExport",
    "format_window",
    "parse_moment",
    "parse_window",
    "plan_backfill",
    "templates",
]
