"""Prometheus metrics of one worker, fed by the engine's events and results.

Why a private :class:`~prometheus_client.CollectorRegistry` per worker instead of the global
one: tests (and a process embedding several engines) create many workers; the global registry
refuses a second metric of the same name and would mix their numbers. ``/metrics`` serves this
registry only (:meth:`WorkerMetrics.render`).

The engine reports each export's steps through ``on_event`` (:class:`EngineEvent`): pass
:meth:`WorkerMetrics.observe`. Durations are measured on the injected clock between events:
*poll wait* is from ``started`` (the vendor job exists) to the poll answer that says it is
done, *download* from ``transfer_start`` to ``transfer_end``. Counts that events do not carry
(records, bytes) come from the :class:`ExportResult` via :meth:`WorkerMetrics.observe_result`.
Retry reasons are a small fixed set of labels (:func:`retry_reason`) so a vendor's free-text
error cannot explode the label cardinality. Per-export bookkeeping is dropped when the export
ends, so memory does not grow with the number of exports run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from streamx.engine.clock import Clock, SystemClock
from streamx.engine.export import EngineEvent, ExportResult

#: The states of ``streamx_exports``: waiting for the vendor job to exist, polling it,
#: waiting for a transfer slot, transferring.
EXPORT_STATES = ("starting", "polling", "queued", "transferring")
#: The labels of ``streamx_retries_total``.
RETRY_REASONS = (
    "rate_limited",
    "server_error",
    "url_expired",
    "timeout",
    "network",
    "incomplete_body",
    "transfer_restart",
    "other",
)
_REASON_PATTERNS = (
    ("transfer_restart", re.compile(r"restarting the transfer", re.I)),
    ("rate_limited", re.compile(r"\bHTTP 429\b|rate.?limit|too many requests", re.I)),
    ("url_expired", re.compile(r"expired", re.I)),
    ("server_error", re.compile(r"\bHTTP (5\d\d|408)\b", re.I)),
    ("timeout", re.compile(r"timeout|timed out", re.I)),
    ("incomplete_body", re.compile(r"ClientPayloadError|incomplete|truncated", re.I)),
    ("network", re.compile(r"connect|connection|reset|refused|ClientOSError|OSError", re.I)),
)
_CONTEXT_SUFFIX = re.compile(r"\s*\((?:vendor|account|export)=[^()]*\)\s*$")
_POLL_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
_DOWNLOAD_BUCKETS = (0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def retry_reason(detail: str | None) -> str:
    """The label for a retry, from the ``retry`` event's (redacted) detail text."""
    text = _CONTEXT_SUFFIX.sub("", detail or "")  # account/export names are not reasons
    for reason, pattern in _REASON_PATTERNS:
        if pattern.search(text):
            return reason
    return "other"


@dataclass
class _Tracked:
    state: str
    started: float | None = None
    transfer_started: float | None = None


class WorkerMetrics:
    """The worker's metrics (every name, type and label is in docs/operations.md)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._exports: dict[str, _Tracked] = {}
        self._skipped: set[str] = set()
        self._define()

    def _define(self) -> None:
        r = self.registry
        self.exports = Gauge(
            "streamx_exports", "Exports this worker is running, by state", ["state"], registry=r
        )
        for state in EXPORT_STATES:
            self.exports.labels(state=state).set(0)
        self.finished = Counter(
            "streamx_exports_finished",
            "Exports ended, by outcome (done, failed, skipped: published before)",
            ["status"],
            registry=r,
        )
        self.records = Counter("streamx_records_written", "Records published", registry=r)
        self.quarantined = Counter("streamx_rows_quarantined", "Rows quarantined", registry=r)
        self.bytes = Counter("streamx_bytes_written", "Bytes of published parts", registry=r)
        self.bytes_read = Counter("streamx_bytes_read", "Result-file bytes read", registry=r)
        self.retries = Counter("streamx_retries", "Retries, by reason", ["reason"], registry=r)
        self.poll_wait = Histogram(
            "streamx_poll_wait_seconds",
            "From the vendor job's creation to the poll answer saying it is ready",
            buckets=_POLL_BUCKETS,
            registry=r,
        )
        self.download = Histogram(
            "streamx_download_seconds",
            "Transfer (download, parse, publish) time per export",
            buckets=_DOWNLOAD_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "streamx_event_loop_lag_seconds", "Latest measured event-loop lag", registry=r
        )
        self.lag_hist = Histogram(
            "streamx_event_loop_lag_sample_seconds",
            "Event-loop lag samples",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "streamx_transfers_in_flight", "Transfers holding a slot now", registry=r
        )

    # -- feeding --------------------------------------------------------------------------

    def begin(self, export: str) -> None:
        """The worker is about to run ``export`` (before the engine emits anything for it)."""
        self._move(export, "starting")

    def observe(self, event: EngineEvent) -> None:
        """Account for one engine event (pass this as the Engine's ``on_event``)."""
        now = self.clock.now()
        tracked = self._exports.get(event.export)
        if event.kind in ("started", "resumed"):  # the vendor job exists (new or reused)
            self._move(event.export, "polling").started = now
        elif event.kind == "status" and event.status is not None and event.status.done:
            if tracked is not None and tracked.state == "polling":
                if tracked.started is not None:
                    self.poll_wait.observe(now - tracked.started)
                self._move(event.export, "queued")
        elif event.kind == "transfer_start":
            self.in_flight.inc()
            self._move(event.export, "transferring").transfer_started = now
        elif event.kind == "transfer_end":
            self.in_flight.dec()
            if tracked is not None and tracked.transfer_started is not None:
                self.download.observe(now - tracked.transfer_started)
                tracked.transfer_started = None
        elif event.kind == "retry":
            self.retries.labels(reason=retry_reason(event.detail)).inc()
        elif event.kind in ("done", "failed", "skipped"):
            self.finished.labels(status=event.kind).inc()
            if event.kind == "skipped":  # published by an earlier run: its counts are not ours
                self._skipped.add(event.export)
            self._forget(event.export)

    def observe_result(self, result: ExportResult) -> None:
        """Add a finished export's counts (records, bytes); events do not carry them. An
        export the engine skipped (already published) adds nothing."""
        self._forget(result.name)  # in case the engine ended it without a done/failed event
        if result.name in self._skipped:
            self._skipped.discard(result.name)
            return
        self.records.inc(result.records)
        self.quarantined.inc(result.rows_quarantined)
        self.bytes.inc(result.bytes_written)
        self.bytes_read.inc(result.bytes_read)

    def abandon(self, export: str) -> None:
        """The worker dropped ``export`` without a result (cancelled by a drain, or its lease
        was lost to another worker): stop counting it as running, count nothing else."""
        self._skipped.discard(export)
        self._forget(export)

    def observe_lag(self, seconds: float) -> None:
        """One event-loop lag sample (the health monitor's callback)."""
        self.lag.set(seconds)
        self.lag_hist.observe(seconds)

    # -- reading --------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of this worker's registry."""
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when absent): for tests and ``streamx status``."""
        found = self.registry.get_sample_value(name, labels or None)
        return 0.0 if found is None else found

    # -- bookkeeping ----------------------------------------------------------------------

    def _move(self, export: str, state: str) -> _Tracked:
        tracked = self._exports.get(export)
        if tracked is None:
            tracked = self._exports[export] = _Tracked(state)
        else:
            self.exports.labels(state=tracked.state).dec()
            tracked.state = state
        self.exports.labels(state=state).inc()
        return tracked

    def _forget(self, export: str) -> None:
        tracked = self._exports.pop(export, None)
        if tracked is None:
            return
        self.exports.labels(state=tracked.state).dec()
        if tracked.transfer_started is not None:  # ended without transfer_end
            self.in_flight.dec()


__all__ = ["EXPORT_STATES", "RETRY_REASONS", "WorkerMetrics", "retry_reason"]
