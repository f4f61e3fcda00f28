"""Worker metrics: fed by a real engine against both simulators (with faults), exact
durations on a fake clock, retry reasons from the engine's real error texts, and a valid
Prometheus exposition from a private registry."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from streamx.config import ExportSpec
from streamx.engine.clock import FakeClock
from streamx.engine.errors import NetworkError, NetworkTimeoutError, classify_response
from streamx.engine.export import EngineEvent, ExportResult
from streamx.testing import Faults
from streamx.testing.faults import ROUTE_SYMPLIFY_BATCH, ROUTE_SYMPLIFY_START
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START, SimHarness
from streamx.testing.seeded import SeededProvider
from streamx.vendors.base import JobStatus
from streamx.worker.metrics import EXPORT_STATES, RETRY_REASONS, WorkerMetrics, retry_reason

IDS = {"vendor": "symplify", "account": "reconnect-timeout", "export_id": "77"}


@pytest_asyncio.fixture
async def sims(tmp_path: Path) -> AsyncIterator[SimHarness]:
    provider = SeededProvider(rows=30)
    async with SimHarness(provider, directory=tmp_path, customers=("5004", "6001")) as harness:
        yield harness


def states(metrics: WorkerMetrics) -> dict[str, float]:
    return {state: metrics.value("streamx_exports", state=state) for state in EXPORT_STATES}


@pytest.mark.asyncio
async def test_a_real_engine_run_feeds_every_metric(sims: SimHarness) -> None:
    sims.faults.push(ROUTE_SYMPLIFY_START, Faults(status=429, retry_after="0"), times=2)
    sims.faults.push(ROUTE_SYMPLIFY_BATCH, Faults(status=503), times=1)
    sims.faults.set_account("6001", Faults(job_failed="boom"), route=ROUTE_SYMPLIFY_START)
    specs = [ExportSpec(f"opens-{n}", "sym", "opens", period="LAST_DAY") for n in range(4)]
    specs += [ExportSpec("doomed", "sym-6001", "clicks", period="TODAY")]
    specs += [
        ExportSpec(f"act-{n}", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END)
        for n in range(2)
    ]
    metrics = WorkerMetrics(sims.clock)
    seen_in_flight: list[float] = []

    def on_event(event: EngineEvent) -> None:
        metrics.observe(event)
        if event.kind == "transfer_start":
            seen_in_flight.append(metrics.value("streamx_transfers_in_flight"))
            assert states(metrics)["transferring"] >= 1

    for spec in specs:
        metrics.begin(spec.name)
    assert states(metrics)["starting"] == len(specs)
    results = await sims.run(specs, on_event=on_event)
    for result in results:
        metrics.observe_result(result)

    ok = [result for result in results if result.ok]
    assert [result.name for result in results if not result.ok] == ["doomed"]
    assert metrics.value("streamx_exports_finished_total", status="done") == len(ok) == 6
    assert metrics.value("streamx_exports_finished_total", status="failed") == 1
    assert states(metrics) == dict.fromkeys(EXPORT_STATES, 0.0)
    assert metrics.value("streamx_transfers_in_flight") == 0 and min(seen_in_flight) >= 1
    assert metrics.value("streamx_download_seconds_count") == len(ok)
    assert metrics.value("streamx_poll_wait_seconds_count") == len(ok)
    assert metrics.value("streamx_records_written_total") == sum(r.records for r in ok) > 0
    assert metrics.value("streamx_bytes_written_total") == sum(r.bytes_written for r in ok) > 0
    assert metrics.value("streamx_bytes_read_total") == sum(r.bytes_read for r in ok) > 0
    assert metrics.value("streamx_retries_total", reason="rate_limited") == 2
    assert metrics.value("streamx_retries_total", reason="server_error") == 1
    assert sum(metrics.value("streamx_retries_total", reason=r) for r in RETRY_REASONS) == 3


def test_durations_are_measured_between_events_on_the_injected_clock() -> None:
    clock = FakeClock()
    metrics = WorkerMetrics(clock)
    metrics.begin("e")
    steps = [
        (0.0, EngineEvent("e", "started", "r1")),
        (5.0, EngineEvent("e", "status", "r1", status=JobStatus("PENDING"))),
        (12.0, EngineEvent("e", "status", "r1", status=JobStatus("FINISHED", done=True))),
        (20.0, EngineEvent("e", "transfer_start", "r1")),
        (27.5, EngineEvent("e", "transfer_end", "r1")),
        (28.0, EngineEvent("e", "done", "r1")),
    ]
    seen = []
    for delay, event in steps:
        clock.advance(delay - clock.now())
        metrics.observe(event)
        seen.append(next((s for s, n in states(metrics).items() if n), None))
    assert seen == ["polling", "polling", "queued", "transferring", "transferring", None]
    assert metrics.value("streamx_poll_wait_seconds_sum") == 12.0
    assert metrics.value("streamx_poll_wait_seconds_bucket", le="15.0") == 1
    assert metrics.value("streamx_poll_wait_seconds_bucket", le="5.0") == 0
    assert metrics.value("streamx_download_seconds_sum") == 7.5


def test_an_export_that_ends_mid_transfer_gives_its_slot_back() -> None:
    metrics = WorkerMetrics(FakeClock())
    metrics.observe(EngineEvent("e", "started", "r1"))
    metrics.observe(EngineEvent("e", "transfer_start", "r1"))
    assert metrics.value("streamx_transfers_in_flight") == 1
    metrics.observe(EngineEvent("e", "failed", "r1", "cancelled"))
    assert metrics.value("streamx_transfers_in_flight") == 0
    assert states(metrics) == dict.fromkeys(EXPORT_STATES, 0.0)


def test_a_resumed_export_polls_and_a_skipped_one_adds_no_counts() -> None:
    clock = FakeClock()
    metrics = WorkerMetrics(clock)
    metrics.begin("again")
    metrics.observe(EngineEvent("again", "resumed", "r9"))
    assert states(metrics)["polling"] == 1
    clock.advance(4)
    metrics.observe(EngineEvent("again", "status", "r9", status=JobStatus("Done", done=True)))
    assert metrics.value("streamx_poll_wait_seconds_sum") == 4

    metrics.begin("old")
    metrics.observe(EngineEvent("old", "skipped", "r1", "already published"))
    spec = ExportSpec("old", "sym", "opens", period="TODAY")
    metrics.observe_result(ExportResult("old", spec, "done", records=500, bytes_written=9000))
    assert metrics.value("streamx_exports_finished_total", status="skipped") == 1
    assert metrics.value("streamx_records_written_total") == 0
    metrics.observe_result(ExportResult("old", spec, "done", records=7, bytes_written=70))
    assert metrics.value("streamx_records_written_total") == 7  # a later, real run counts
    assert states(metrics) == {**dict.fromkeys(EXPORT_STATES, 0.0), "queued": 1.0}


def test_lag_samples_feed_a_gauge_and_a_histogram() -> None:
    metrics = WorkerMetrics(FakeClock())
    for sample in (0.002, 0.3, 0.04):
        metrics.observe_lag(sample)
    assert metrics.value("streamx_event_loop_lag_seconds") == 0.04
    assert metrics.value("streamx_event_loop_lag_sample_seconds_count") == 3
    assert metrics.value("streamx_event_loop_lag_sample_seconds_bucket", le="0.1") == 2


def _retry(error: Exception) -> str:
    return f"#2 in 0.41 s after: {error}"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (classify_response(429, {"Retry-After": "3"}, b'{"error":"slow"}', **IDS), "rate_limited"),
        (classify_response(503, {}, b"<html>busy</html>", **IDS), "server_error"),
        (classify_response(408, {}, b"", **IDS), "server_error"),
        (
            classify_response(
                403,
                {},
                b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                url="https://s3.example/x?X-Amz-Signature=abc",
                **IDS,
            ),
            "url_expired",
        ),
        (NetworkTimeoutError("symplify: TimeoutError: ", **IDS), "timeout"),
        (NetworkError("cordial: ClientConnectorError: Cannot connect to host", **IDS), "network"),
        (Exception("restarting the transfer from byte 0: HTTP 412"), "transfer_restart"),
        (Exception("IncompleteBodyError: body ended at byte 5 of 9"), "incomplete_body"),
        (Exception("something odd (vendor=symplify, account=reconnect-timeout)"), "other"),
    ],
)
def test_retry_reasons_come_from_the_engines_error_texts(error: Exception, reason: str) -> None:
    assert retry_reason(_retry(error)) == reason
    assert reason in RETRY_REASONS


def test_each_worker_has_its_own_registry_and_a_valid_exposition() -> None:
    first, second = WorkerMetrics(FakeClock()), WorkerMetrics(FakeClock())
    first.observe(EngineEvent("e", "retry", detail="HTTP 429"))
    assert first.value("streamx_retries_total", reason="rate_limited") == 1
    assert second.value("streamx_retries_total", reason="rate_limited") == 0

    families = text_string_to_metric_families(first.render().decode())
    types = {f.name: f.type for f in families if not f.name.endswith("_created")}
    assert types == {
        "streamx_exports": "gauge",
        "streamx_exports_finished": "counter",
        "streamx_records_written": "counter",
        "streamx_rows_quarantined": "counter",
        "streamx_bytes_written": "counter",
        "streamx_bytes_read": "counter",
        "streamx_retries": "counter",
        "streamx_poll_wait_seconds": "histogram",
        "streamx_download_seconds": "histogram",
        "streamx_event_loop_lag_seconds": "gauge",
        "streamx_event_loop_lag_sample_seconds": "histogram",
        "streamx_transfers_in_flight": "gauge",
    }
    assert first.content_type.startswith("text/plain")


def test_the_operations_guide_documents_every_metric_with_its_type() -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
    rows = re.findall(r"^\| `(streamx_[a-z_]+)` \| (\w+) \|", guide.read_text(), re.M)
    documented = {name.removesuffix("_total"): kind for name, kind in rows}
    families = text_string_to_metric_families(WorkerMetrics(FakeClock()).render().decode())
    actual = {f.name: f.type for f in families if not f.name.endswith("_created")}
    assert documented == actual


def test_an_abandoned_export_stops_counting_as_running_and_adds_nothing() -> None:
    metrics = WorkerMetrics(clock=FakeClock())
    metrics.begin("a")
    metrics.observe(EngineEvent("a", "started", remote_id="1"))
    metrics.observe(EngineEvent("a", "transfer_start"))
    assert metrics.value("streamx_exports", state="transferring") == 1
    assert metrics.value("streamx_transfers_in_flight") == 1

    metrics.abandon("a")  # cancelled by a drain, or its lease went to another worker
    for state in EXPORT_STATES:
        assert metrics.value("streamx_exports", state=state) == 0
    assert metrics.value("streamx_transfers_in_flight") == 0
    assert metrics.value("streamx_records_written_total") == 0
    for status in ("done", "failed", "skipped"):
        assert metrics.value("streamx_exports_finished_total", status=status) == 0
