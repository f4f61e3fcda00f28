"""Planning: Cordial windows, Symplify periods and their limits, templates, stable keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from streamx.backfill.plan import (
    Plan,
    format_window,
    parse_moment,
    parse_window,
    plan_backfill,
    templates,
)
from streamx.config import Config, parse_config
from streamx.exceptions import ConfigError

NOW = dt.datetime(2026, 11, 23, 10, 30, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def config(tmp_path: Path, exports: list[dict[str, Any]] | None = None) -> Config:
    raw: dict[str, Any] = {
        "accounts": {
            "sym": {
                "vendor": "symplify",
                "base_url": "https://symplify.example/rest/5004",
                "token_env": "TOKEN",
            },
            "cor": {
                "vendor": "cordial",
                "api_key_env": "KEY",
                "landing": {"type": "local", "dir": "landing"},
            },
        },
        "exports": exports or [],
    }
    return parse_config(raw, base_dir=tmp_path, env={"TOKEN": "t", "KEY": "k"})


def midnight(days_ago: int) -> dt.datetime:
    return dt.datetime.combine(NOW.date(), dt.time(), dt.UTC) - days_ago * DAY


def plan(tmp_path: Path, start: dt.datetime, end: dt.datetime, **kwargs: Any) -> Plan:
    exports = kwargs.pop("exports", None)
    return plan_backfill(config(tmp_path, exports), start, end, now=NOW, **kwargs)


# --- parsing --------------------------------------------------------------------------------


def test_windows_and_moments_parse_and_bad_ones_are_config_errors() -> None:
    assert parse_window("1d") == DAY
    assert parse_window(" 6h ") == dt.timedelta(hours=6)
    assert parse_window("30m") == dt.timedelta(minutes=30)
    assert [format_window(parse_window(text)) for text in ("1d", "48h", "90m")] == [
        "1d",
        "2d",
        "90m",
    ]
    for bad in ("0d", "1w", "d", "-1h", ""):
        with pytest.raises(ConfigError, match="window"):
            parse_window(bad)
    assert parse_moment("2026-10-31") == dt.datetime(2026, 10, 31, tzinfo=dt.UTC)
    assert parse_moment("2026-10-31", end=True) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_moment("2026-10-31T06:00:00Z", end=True) == dt.datetime(
        2026, 10, 31, 6, tzinfo=dt.UTC
    )
    assert parse_moment("2026-10-31T08:00:00+02:00") == dt.datetime(2026, 10, 31, 6, tzinfo=dt.UTC)
    assert parse_moment("2026-10-31T06:00") == dt.datetime(2026, 10, 31, 6, tzinfo=dt.UTC)
    with pytest.raises(ConfigError, match="not a date"):
        parse_moment("yesterday")


def test_empty_or_future_ranges_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        plan(tmp_path, midnight(2), midnight(2), streams=["opens"])
    with pytest.raises(ConfigError, match="future"):
        plan(tmp_path, NOW + DAY, NOW + 2 * DAY, streams=["opens"])


# --- Cordial ----------------------------------------------------------------------------------


def test_cordial_ranges_become_daily_windows_with_inclusive_millisecond_ends(
    tmp_path: Path,
) -> None:
    result = plan(tmp_path, midnight(3), midnight(1), streams=["contact_activity"])
    assert [item.key for item in result.exports] == [
        "cor.contact_activity@2026-11-20T00:00:00Z/1d",
        "cor.contact_activity@2026-11-21T00:00:00Z/1d",
    ]
    first = result.exports[0].spec
    assert (first.name, first.account, first.stream) == (
        result.exports[0].key,
        "cor",
        "cordial.contact_activity",
    )
    assert (first.start, first.end, first.dt) == (
        "2026-11-20T00:00:00.000Z",
        "2026-11-20T23:59:59.999Z",
        "2026-11-20",
    )
    assert result.notes == []


def test_window_size_is_configurable_and_unfinished_windows_wait(tmp_path: Path) -> None:
    result = plan(
        tmp_path, midnight(0), NOW + DAY, streams=["contact_activity"], window=dt.timedelta(hours=6)
    )
    # 00:00-06:00 and 06:00-12:00 would be planned, but it is 10:30: only the first is over.
    assert [(item.spec.start, item.spec.end) for item in result.exports] == [
        ("2026-11-23T00:00:00.000Z", "2026-11-23T05:59:59.999Z")
    ]
    assert result.exports[0].key.endswith("/6h")
    assert any("not over yet" in note for note in result.notes)


def test_audience_trends_take_whole_days_and_contacts_are_not_backfilled(tmp_path: Path) -> None:
    exports = [
        {
            "name": "trends",
            "account": "cor",
            "stream": "audience_trends",
            "options": {"audiences": ["vip"]},
        },
        {"name": "contacts", "account": "cor", "stream": "contacts"},
    ]
    result = plan(tmp_path, midnight(3), midnight(1), exports=exports, window=dt.timedelta(hours=6))
    assert [(item.spec.start, item.spec.end) for item in result.exports] == [
        ("2026-11-20", "2026-11-20"),
        ("2026-11-21", "2026-11-21"),
    ]
    assert all(item.spec.options == {"audiences": ["vip"]} for item in result.exports)
    assert [note for note in result.notes if note.startswith("contacts:")]


# --- Symplify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "period"),
    [
        (NOW - dt.timedelta(hours=10), "LAST_DAY"),
        (NOW - dt.timedelta(hours=20), "LAST_3_DAYS"),  # 12 h of margin: not LAST_DAY
        (midnight(2), "LAST_3_DAYS"),
        (midnight(5), "LAST_WEEK"),
        (midnight(10), "LAST_2_WEEKS"),
    ],
)
def test_symplify_gets_the_smallest_period_reaching_the_range_start(
    tmp_path: Path, start: dt.datetime, period: str
) -> None:
    result = plan(tmp_path, start, NOW, streams=["opens"])
    (item,) = result.exports
    assert item.spec.period == period
    assert (item.spec.start, item.spec.end, item.spec.days) == (None, None, None)
    assert item.key.endswith(f"@{period}") and item.key.startswith("sym.opens@")
    assert result.notes == []


def test_symplify_explains_what_is_older_than_two_weeks(tmp_path: Path) -> None:
    result = plan(tmp_path, midnight(20), midnight(1), streams=["opens"])
    (item,) = result.exports
    assert item.spec.period == "LAST_2_WEEKS"
    (note,) = result.notes
    assert "LAST_2_WEEKS" in note and "cannot be fetched" in note

    too_old = plan(tmp_path, midnight(40), midnight(20), streams=["opens"])
    assert too_old.exports == []
    (note,) = too_old.notes
    assert "nothing of this range can be fetched" in note


# --- templates and keys -----------------------------------------------------------------------


def test_configured_exports_are_templates_filtered_by_account_and_stream(tmp_path: Path) -> None:
    exports = [
        {"name": "opens-daily", "account": "sym", "stream": "opens", "period": "LAST_DAY"},
        {
            "name": "activity",
            "account": "cor",
            "stream": "contact_activity",
            "days": 1,
            "options": {"selected_action_names": ["open"]},
        },
    ]
    cfg = config(tmp_path, exports)
    assert [spec.name for spec in templates(cfg)] == ["opens-daily", "activity"]
    assert [spec.name for spec in templates(cfg, accounts=["cor"])] == ["activity"]
    assert [spec.name for spec in templates(cfg, streams=["symplify.opens"])] == ["opens-daily"]
    # a chosen stream no configured export covers gets a bare export per matching account
    assert [spec.name for spec in templates(cfg, streams=["opens", "clicks"])] == [
        "opens-daily",
        "sym.clicks",
    ]
    activity = plan_backfill(cfg, midnight(2), midnight(1), accounts=["cor"], now=NOW).exports[0]
    assert activity.spec.options == {"selected_action_names": ["open"]}
    assert activity.spec.days is None  # the template's own time selection is replaced
    with pytest.raises(ConfigError, match="unknown account"):
        templates(cfg, accounts=["nope"])
    with pytest.raises(ConfigError, match="nothing to backfill"):
        templates(config(tmp_path), streams=["no_such_stream"])


def test_planning_the_same_range_twice_gives_the_same_keys(tmp_path: Path) -> None:
    streams = ["opens", "contact_activity"]
    first = plan(tmp_path, midnight(4), midnight(1), streams=streams)
    later = plan_backfill(
        config(tmp_path), midnight(4), midnight(1), streams=streams, now=NOW + dt.timedelta(hours=1)
    )
    assert first.keys == later.keys
    assert len(set(first.keys)) == len(first.keys) == 4
