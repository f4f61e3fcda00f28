"""Progress of running exports: a live table on a terminal, log lines otherwise, and a summary.

Fed by the engine's ``on_event`` (:class:`~streamx.engine.export.EngineEvent`). On a terminal
the table is redrawn in place at most :data:`REDRAW_INTERVAL` apart (events can arrive
thousands of times a second; the terminal must not become the bottleneck). Elsewhere (a pipe, a
log file, CI) each state change is one plain line, or one JSON object with ``json_lines``,
and byte/record progress is logged at most every :data:`LOG_PROGRESS_INTERVAL` per export.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import orjson

from streamx.engine.export import EngineEvent
from streamx.summary import human_bytes, summary_table

REDRAW_INTERVAL = 0.2
LOG_PROGRESS_INTERVAL = 10.0
#: Exports shown one per line in the live table; the rest are counted in the totals.
MAX_LIVE_ROWS = 20
_LOGGED_KINDS = frozenset(
    {"started", "resumed", "gone", "transfer_start", "retry", "done", "failed", "skipped"}
)
_STATE_OF = {
    "started": "polling",
    "resumed": "resumed",
    "gone": "restarting",
    "status": "polling",
    "transfer_start": "transferring",
    "progress": "transferring",
    "retry": "retrying",
    "done": "done",
    "failed": "failed",
    "skipped": "done before",
}


@dataclass
class _Export:
    name: str
    state: str = "waiting"
    bytes_read: int = 0
    bytes_total: int | None = None
    records: int = 0
    quarantined: int = 0
    transfer_started: float | None = None
    finished: float | None = None
    logged_progress: float = float("-inf")

    def rate(self, now: float) -> float | None:
        """Bytes per second of this run's transfer."""
        if self.transfer_started is None:
            return None
        elapsed = (self.finished or now) - self.transfer_started
        return self.bytes_read / elapsed if elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        if self.bytes_total is None or not rate or self.finished is not None:
            return None
        return max(0.0, (self.bytes_total - self.bytes_read) / rate)


class ProgressDisplay:
    """An ``on_event`` callback that shows progress on ``stream`` (see the module docstring).

    ``live``: redraw a table in place (a terminal); else log lines (``json_lines``: JSON).
    Call :meth:`close` at the end (draws the last state).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        json_lines: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.live = live
        self.json_lines = json_lines
        self._clock = clock
        self._exports: dict[str, _Export] = {}
        self._drawn_lines = 0
        self._drawn_at = float("-inf")

    def __call__(self, event: EngineEvent) -> None:
        now = self._clock()
        export = self._update(event, now)
        if self.live:
            if now - self._drawn_at >= REDRAW_INTERVAL or event.kind in ("done", "failed"):
                self._draw(now)
        elif self._worth_logging(event, export, now):
            self._log(event, export)

    def close(self) -> None:
        if self.live:
            self._draw(self._clock())

    # -- state ----------------------------------------------------------------------------

    def _update(self, event: EngineEvent, now: float) -> _Export:
        export = self._exports.setdefault(event.export, _Export(event.export))
        export.state = _STATE_OF.get(event.kind, export.state)
        if event.kind == "status" and event.status is not None:
            export.state = f"vendor {event.status.state}"
        if event.kind == "transfer_start":
            export.transfer_started = now
        if event.bytes_read is not None:
            export.bytes_read = event.bytes_read
        if event.bytes_total is not None:
            export.bytes_total = event.bytes_total
        if event.records is not None:
            export.records = event.records
        if event.quarantined is not None:
            export.quarantined = event.quarantined
        if event.kind in ("done", "failed", "skipped"):
            export.finished = now
        return export

    # -- live table -----------------------------------------------------------------------

    def _draw(self, now: float) -> None:
        lines = self.table(now)
        out = self.stream
        if self._drawn_lines:
            out.write(f"\x1b[{self._drawn_lines}F\x1b[J")  # back to the table's start, clear
        out.write("\n".join(lines) + "\n")
        out.flush()
        self._drawn_lines, self._drawn_at = len(lines), now

    def table(self, now: float) -> list[str]:
        """The live table's lines (one per export, busiest first, then the totals)."""
        exports = sorted(self._exports.values(), key=_priority)
        header = (
            f"{'EXPORT':<44} {'STATE':<16} {'BYTES':>9} {'RECORDS':>10} {'RATE':>10} {'ETA':>7}"
        )
        lines = [header]
        for export in exports[:MAX_LIVE_ROWS]:
            rate, eta = export.rate(now), export.eta(now)
            lines.append(
                f"{_cut(export.name, 44):<44} {_cut(export.state, 16):<16} "
                f"{human_bytes(export.bytes_read):>9} {export.records:>10} "
                f"{(human_bytes(rate) + '/s') if rate else '-':>10} {_duration(eta):>7}"
            )
        if len(exports) > MAX_LIVE_ROWS:
            lines.append(f"... and {len(exports) - MAX_LIVE_ROWS} more")
        lines.append(self.totals_line(now))
        return lines

    def totals_line(self, now: float) -> str:
        counts: dict[str, int] = {}
        for export in self._exports.values():
            key = export.state if export.state in ("done", "failed", "done before") else "open"
            counts[key] = counts.get(key, 0) + 1
        total_bytes = sum(export.bytes_read for export in self._exports.values())
        records = sum(export.records for export in self._exports.values())
        states = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        count = len(self._exports)
        return f"TOTAL {count} export(s): {states}; {human_bytes(total_bytes)}, {records} records"

    # -- log lines ------------------------------------------------------------------------

    def _worth_logging(self, event: EngineEvent, export: _Export, now: float) -> bool:
        if event.kind in _LOGGED_KINDS:
            return True
        if event.kind == "progress" and now - export.logged_progress >= LOG_PROGRESS_INTERVAL:
            export.logged_progress = now
            return True
        return False

    def _log(self, event: EngineEvent, export: _Export) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        if self.json_lines:
            entry = {
                "time": stamp,
                "export": event.export,
                "event": event.kind,
                "remote_id": event.remote_id,
                "detail": event.detail,
                "bytes_read": export.bytes_read,
                "records": export.records,
            }
            self.stream.write(orjson.dumps(entry).decode() + "\n")
        else:
            detail = f": {event.detail}" if event.detail else ""
            if event.kind == "progress":
                detail = f": {human_bytes(export.bytes_read)}, {export.records} records"
            self.stream.write(f"{stamp} export {event.export} {event.kind}{detail}\n")
        self.stream.flush()


def make_display(*, log_format: str = "text") -> ProgressDisplay:
    """A live table on stdout when it is a terminal, else log lines on stderr."""
    if sys.stdout.isatty():
        return ProgressDisplay(sys.stdout, live=True)
    return ProgressDisplay(sys.stderr, live=False, json_lines=log_format == "json")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _priority(export: _Export) -> tuple[int, str]:
    order = {"transferring": 0, "retrying": 1, "failed": 3, "done": 4, "done before": 5}
    return order.get(export.state, 2), export.name


__all__ = [
    "LOG_PROGRESS_INTERVAL",
    "MAX_LIVE_ROWS",
    "REDRAW_INTERVAL",
    "ProgressDisplay",
    "human_bytes",
    "make_display",
    "summary_table",
]
