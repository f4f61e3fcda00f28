"""From a scheduled occurrence to the export spec its state-store row keeps.

Why the spec is frozen at planning time: the row may be run by any worker of a fleet, resumed
after a crash or taken over hours later, and every run of it must ask the vendor for the same
thing. So the spec is renamed to the occurrence key (the engine's row key), a relative Cordial
timeframe (``days``) becomes the absolute window ending at the occurrence instant, and the
output partition date is the occurrence's UTC date unless the export fixes one. Symplify
periods stay relative: that vendor has nothing else (overlaps are deduplicated, see
docs/backfill.md).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from streamx.config import Config, ExportSpec, resolve_stream
from streamx.durable.tracker import spec_record
from streamx.state.base import ExportState
from streamx.worker.schedule import Occurrence


def occurrence_spec(config: Config, occurrence: Occurrence) -> ExportSpec:
    """The export ``occurrence`` runs: its ``[exports.*]`` entry, named by the occurrence key,
    with ``days`` resolved against the occurrence instant (see the module docstring)."""
    template = config.export(occurrence.export)
    at = occurrence.at.astimezone(UTC)
    spec = replace(template, name=occurrence.key, dt=template.dt or at.date().isoformat())
    if template.days is None:
        return spec
    _, stream = resolve_stream(config, template)
    start = at - timedelta(days=template.days)
    if stream == "cordial.audience_trends":  # whole days, as the vendor takes them
        return replace(spec, days=None, start=start.date().isoformat(), end=at.date().isoformat())
    return replace(spec, days=None, start=_millis(start), end=_millis(at))


def occurrence_row(config: Config, occurrence: Occurrence) -> ExportState:
    """The ``planned`` store row of ``occurrence`` (its spec as :func:`occurrence_spec`)."""
    return occurrence.state(**spec_record(occurrence_spec(config, occurrence)))


def _millis(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


__all__ = ["occurrence_row", "occurrence_spec"]
