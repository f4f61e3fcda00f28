"""Schedules: interval and daily occurrences (DST-correct), catch-up, keys and jitter."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.worker.schedule import (
    Occurrence,
    Schedule,
    due,
    jitter_offset,
    latest_at,
    next_after,
    occurrence_key,
    parse_daily,
    parse_every,
    parse_occurrence_key,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
ZONES = [
    "UTC",
    "Europe/Stockholm",
    "America/Los_Angeles",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Asia/Kolkata",
    "America/Santiago",
    "Pacific/Apia",  # skipped a whole day (2011-12-30)
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def daily(at: str, zone: str = "Europe/Stockholm", catch_up: int = 1000) -> Schedule:
    return Schedule("opens", daily=parse_daily(at), timezone=ZoneInfo(zone), catch_up=catch_up)


def every(text: str, catch_up: int = 1000) -> Schedule:
    return Schedule("clicks", every=parse_every(text), catch_up=catch_up)


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("2h", 7200), ("1h30m", 5400), ("90s", 90), ("1d", 86400), ("1d2h", 93600)],
)
def test_parse_every(text: str, seconds: int) -> None:
    assert parse_every(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "15", "m", "0m", "1.5h", "15 m", "-1h", "2w", "h1"])
def test_parse_every_rejects_malformed_intervals(text: str) -> None:
    with pytest.raises(ValueError):
        parse_every(text)


def test_parse_daily() -> None:
    assert parse_daily("02:30") == time(2, 30)
    assert parse_daily("23:59:30") == time(23, 59, 30)
    for bad in ("24:00", "2:30", "02:60", "0230", "02:30pm", ""):
        with pytest.raises(ValueError):
            parse_daily(bad)


def test_a_schedule_needs_exactly_one_rule_and_sane_limits() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule("x")
    with pytest.raises(ValueError, match="exactly one"):
        Schedule("x", every=timedelta(hours=1), daily=time(1))
    with pytest.raises(ValueError, match="whole seconds"):
        Schedule("x", every=timedelta(milliseconds=1500))
    with pytest.raises(ValueError, match="catch_up"):
        Schedule("x", every=timedelta(hours=1), catch_up=0)
    with pytest.raises(ValueError, match="jitter"):
        Schedule("x", every=timedelta(hours=1), jitter=-1)


# -- intervals --------------------------------------------------------------------------------


def test_intervals_are_aligned_to_the_epoch_in_utc() -> None:
    schedule = every("15m")
    assert latest_at(schedule, utc(2026, 5, 1, 10, 7, 30)) == utc(2026, 5, 1, 10, 0)
    assert latest_at(schedule, utc(2026, 5, 1, 10, 15)) == utc(2026, 5, 1, 10, 15)
    assert next_after(schedule, utc(2026, 5, 1, 10, 15)) == utc(2026, 5, 1, 10, 30)
    local = datetime(2026, 5, 1, 12, 7, 30, tzinfo=STOCKHOLM)  # same instant, other zone
    assert latest_at(schedule, local) == utc(2026, 5, 1, 10, 0)


def test_due_returns_missed_intervals_capped_by_catch_up() -> None:
    last, now = utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 11, 5)
    expected = [utc(2026, 5, 1, 10, 15 * n) for n in (1, 2, 3)] + [utc(2026, 5, 1, 11, 0)]
    assert due(every("15m"), last, now) == expected
    assert due(every("15m", catch_up=2), last, now) == expected[-2:]
    assert due(every("15m"), None, now) == [utc(2026, 5, 1, 11, 0)]
    assert due(every("15m"), utc(2026, 5, 1, 11, 0), now) == []


def test_catch_up_after_a_year_offline_is_cheap_and_bounded() -> None:
    got = due(every("1s", catch_up=3), utc(2025, 1, 1), utc(2026, 1, 1))
    assert got == [utc(2025, 12, 31, 23, 59, 58), utc(2025, 12, 31, 23, 59, 59), utc(2026, 1, 1)]


# -- daily, across DST ------------------------------------------------------------------------


def test_daily_in_a_timezone() -> None:
    schedule = daily("02:30")
    assert latest_at(schedule, utc(2026, 1, 10, 12)) == utc(2026, 1, 10, 1, 30)  # CET
    assert latest_at(schedule, utc(2026, 1, 10, 1, 29)) == utc(2026, 1, 9, 1, 30)
    assert latest_at(schedule, utc(2026, 7, 10, 12)) == utc(2026, 7, 10, 0, 30)  # CEST
    assert next_after(schedule, utc(2026, 7, 10, 0, 30)) == utc(2026, 7, 11, 0, 30)


def test_spring_forward_runs_a_skipped_time_once_shifted_by_the_gap() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST in Stockholm: 02:30 does not exist that day.
    got = due(daily("02:30"), utc(2026, 3, 26, 12), utc(2026, 3, 31, 12))
    assert got == [
        utc(2026, 3, 27, 1, 30),  # 02:30 CET
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST: once, an hour late
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]
    assert [g.astimezone(STOCKHOLM).hour for g in got] == [2, 2, 3, 2, 2]


def test_fall_back_runs_a_repeated_time_once() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET in Stockholm: 02:30 happens twice that night.
    got = due(daily("02:30"), utc(2026, 10, 23, 12), utc(2026, 10, 26, 12))
    assert got == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    schedule = daily("02:30")
    assert next_after(schedule, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)
    assert due(schedule, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 45)) == []


def test_a_calendar_day_the_zone_skipped_yields_no_duplicate() -> None:
    # Samoa skipped 2011-12-30 entirely (UTC-10 -> UTC+14).
    schedule = daily("02:30", "Pacific/Apia")
    got = due(schedule, utc(2011, 12, 28), utc(2011, 12, 31))
    assert got == [utc(2011, 12, 28, 12, 30), utc(2011, 12, 29, 12, 30), utc(2011, 12, 30, 12, 30)]
    assert [g.astimezone(schedule.timezone).day for g in got] == [28, 29, 31]
    assert next_after(schedule, utc(2011, 12, 29, 12, 30)) == utc(2011, 12, 30, 12, 30)
    assert next_after(schedule, utc(2011, 12, 30, 12, 30)) == utc(2011, 12, 31, 12, 30)


def test_daily_catch_up_is_capped() -> None:
    got = due(daily("06:00", catch_up=2), utc(2026, 1, 1), utc(2026, 2, 1, 12))
    assert got == [utc(2026, 1, 31, 5), utc(2026, 2, 1, 5)]


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 1, 1)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    at=st.times().map(lambda t: t.replace(microsecond=0)),
    start=instants,
    days=st.integers(min_value=0, max_value=60),
)
def test_daily_runs_once_per_local_day_at_its_time_or_just_after_a_gap(
    zone: str, at: time, start: datetime, days: int
) -> None:
    tz = ZoneInfo(zone)
    schedule = Schedule("x", daily=at, timezone=tz, catch_up=10_000)
    got = due(schedule, start, start + timedelta(days=days))
    assert got == sorted(set(got))
    local_days = [moment.astimezone(tz).date() for moment in got]
    assert len(set(local_days)) == len(local_days)
    if local_days:  # consecutive local days, none skipped (Apia's missing day excepted)
        assert all(
            (later - earlier).days == 1 or _skipped_between(tz, earlier, later)
            for earlier, later in itertools.pairwise(local_days)
        )
    for moment in got:
        local = moment.astimezone(tz)
        wanted = datetime.combine(local.date(), at)
        shift = local.replace(tzinfo=None) - wanted
        assert timedelta(0) <= shift <= timedelta(hours=1), (moment, local, at)
        if shift:  # only when the wanted local time does not exist that day
            # a configured time's fold is ignored: fold=0 resolves gaps (to just after them)
            resolved = datetime.combine(local.date(), at.replace(fold=0), tzinfo=tz)
            assert resolved.astimezone(UTC) == moment


def _skipped_between(tz: ZoneInfo, earlier: date, later: date) -> bool:
    noon = datetime.combine(earlier, time(12), tzinfo=tz)
    return (noon + timedelta(days=1)).astimezone(UTC).astimezone(tz).date() == later


@settings(max_examples=150, deadline=None)
@given(
    rule=st.one_of(
        st.sampled_from(["7m", "15m", "1h", "2h", "6h", "1d"]).map(
            lambda text: every(text, catch_up=10**6)
        ),
        st.tuples(st.sampled_from(ZONES), st.sampled_from(["00:00", "02:30", "23:45"])).map(
            lambda item: daily(item[1], item[0], catch_up=10**6)
        ),
    ),
    start=instants,
    steps=st.lists(st.integers(min_value=0, max_value=5 * 86400), min_size=1, max_size=8),
)
def test_planning_in_steps_neither_drops_nor_repeats_an_occurrence(
    rule: Schedule, start: datetime, steps: list[int]
) -> None:
    last, now, collected = start, start, []
    for step in steps:
        now += timedelta(seconds=step)
        batch = due(rule, last, now)
        collected.extend(batch)
        if batch:
            last = batch[-1]
    assert collected == due(rule, start, now)
    assert all(start < moment <= now for moment in collected)


# -- keys and jitter --------------------------------------------------------------------------


def test_occurrence_keys_are_utc_and_round_trip() -> None:
    at = datetime(2026, 3, 29, 3, 30, tzinfo=STOCKHOLM)
    assert occurrence_key("daily@opens", at) == "daily@opens@2026-03-29T01:30:00Z"
    assert parse_occurrence_key("daily@opens@2026-03-29T01:30:00Z") == Occurrence(
        "daily@opens", utc(2026, 3, 29, 1, 30)
    )
    for bad in ("opens", "@2026-03-29T01:30:00Z", "opens@yesterday"):
        with pytest.raises(ValueError):
            parse_occurrence_key(bad)
    with pytest.raises(ValueError, match="naive"):
        occurrence_key("opens", datetime(2026, 1, 1))


def test_an_occurrence_becomes_a_planned_store_row() -> None:
    state = Occurrence("opens", utc(2026, 1, 2, 3, 4, 5)).state(dt="2026-01-02")
    assert state.key == "opens@2026-01-02T03:04:05Z"
    assert state.status == "planned"
    assert state.spec == {
        "export": "opens",
        "occurrence": "2026-01-02T03:04:05Z",
        "dt": "2026-01-02",
    }


def test_jitter_is_bounded_deterministic_and_spread() -> None:
    offsets = [jitter_offset(f"export-{n}", "worker-1", 300.0) for n in range(2000)]
    assert all(0 <= offset < 300.0 for offset in offsets)
    assert offsets == [jitter_offset(f"export-{n}", "worker-1", 300.0) for n in range(2000)]
    assert 120 < sum(offsets) / len(offsets) < 180
    assert len({round(offset) for offset in offsets}) > 250  # not a few clumps
    assert jitter_offset("export-1", "worker-1", 300) != jitter_offset("export-1", "worker-2", 300)
    assert jitter_offset("export-1", "worker-1", 0) == 0.0


def test_jitter_is_the_same_in_another_process() -> None:
    code = "from streamx.worker.schedule import jitter_offset as j; print(repr(j('a', 'w', 600)))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert float(out.stdout) == jitter_offset("a", "w", 600)
