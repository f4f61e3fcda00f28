"""The progress display: a throttled live table on a terminal, log lines elsewhere, a summary."""

from __future__ import annotations

import io

import orjson

from streamx.engine.export import EngineEvent
from streamx.progress import ProgressDisplay
from streamx.summary import human_bytes
from streamx.vendors.base import JobStatus

MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(display: ProgressDisplay, clock: Clock) -> None:
    """One export polled, transferring 2 of 8 MiB in 2 s, then a second export failing."""
    display(EngineEvent("opens", "started", "101"))
    display(EngineEvent("opens", "status", "101", status=JobStatus("IN_PROGRESS")))
    display(EngineEvent("opens", "transfer_start", "101"))
    for step in range(1, 9):
        clock.now += 0.25
        display(
            EngineEvent(
                "opens",
                "progress",
                "101",
                bytes_read=step * MIB // 4,
                bytes_total=8 * MIB,
                records=step * 1000,
            )
        )
    display(EngineEvent("clicks", "failed", "102", detail="HTTP 500"))


def test_live_table_redraws_in_place_a_few_times_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(out, live=True, clock=clock)
    feed(display, clock)
    display.close()
    text = out.getvalue()
    # 11 events over 2 s: redrawn at most every 0.2 s (plus the failure and the close).
    draws = text.count("EXPORT ")
    assert 3 <= draws <= 2 / 0.2 + 3
    assert text.count("\x1b[J") == draws - 1  # every redraw after the first clears in place
    last = text.rsplit("EXPORT ", 1)[1].splitlines()
    opens = next(line for line in last if line.startswith("opens"))
    assert "transferring" in opens and "2.0 MiB" in opens and "8000" in opens
    assert "1.0 MiB/s" in opens and "0m06s" in opens  # 6 MiB left at 1 MiB/s
    assert any(line.startswith("clicks") and "failed" in line for line in last)
    assert last[-1] == "TOTAL 2 export(s): 1 failed, 1 open; 2.0 MiB, 8000 records"


def test_plain_lines_log_state_changes_and_rare_progress() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(out, live=False, clock=clock)
    feed(display, clock)
    lines = out.getvalue().splitlines()
    kinds = [line.split(" ")[3].rstrip(":") for line in lines]
    assert kinds == ["started", "transfer_start", "progress", "failed"]  # no poll noise
    assert lines[-1].endswith("export clicks failed: HTTP 500")


def test_json_lines_are_one_object_per_state_change() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(out, live=False, json_lines=True, clock=clock)
    feed(display, clock)
    entries = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [entry["event"] for entry in entries] == [
        "started",
        "transfer_start",
        "progress",
        "failed",
    ]
    assert entries[2]["bytes_read"] == MIB // 4 and entries[2]["records"] == 1000
    assert entries[-1] == {
        "time": entries[-1]["time"],
        "export": "clicks",
        "event": "failed",
        "remote_id": "102",
        "detail": "HTTP 500",
        "bytes_read": 0,
        "records": 0,
    }


def test_human_bytes() -> None:
    assert [human_bytes(v) for v in (0, 1023, 1024, 5 * MIB)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
    ]
