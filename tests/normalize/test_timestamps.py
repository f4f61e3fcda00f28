"""Every documented timestamp form to UTC RFC 3339 with milliseconds, and LA midnights."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.exceptions import ConfigError, RowError
from streamx.normalize.timestamps import (
    format_epoch_ms,
    local_midnight_to_utc,
    to_utc_rfc3339,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Cordial activity "time", the documented form (and the fast path).
        ("2017-03-13T22:48:40+0000", "2017-03-13T22:48:40.000Z"),
        ("2017-03-13T22:48:40-0000", "2017-03-13T22:48:40.000Z"),
        ("2017-03-13T22:48:40+00:00", "2017-03-13T22:48:40.000Z"),
        ("2017-03-13T22:48:40Z", "2017-03-13T22:48:40.000Z"),
        ("2017-03-13T22:48:40.123+0000", "2017-03-13T22:48:40.123Z"),
        # Cordial request timeframes: "2017-11-01T15:28:04.124Z" (the output form itself).
        ("2017-11-01T15:28:04.124Z", "2017-11-01T15:28:04.124Z"),
        ("2019-03-25T23:59:59.999Z", "2019-03-25T23:59:59.999Z"),
        # Non-zero offsets, both notations.
        ("2017-03-13T22:48:40-04:00", "2017-03-14T02:48:40.000Z"),
        ("2017-03-13T22:48:40-0400", "2017-03-14T02:48:40.000Z"),
        ("2017-03-13T22:48:40+05:30", "2017-03-13T17:18:40.000Z"),
        ("2017-03-13T22:48:40+05", "2017-03-13T17:48:40.000Z"),
        ("2017-12-31T23:30:00-01:00", "2018-01-01T00:30:00.000Z"),
        ("2017-03-13 22:48:40 +0200", "2017-03-13T20:48:40.000Z"),
        # No zone: UTC.
        ("2017-03-13 22:48:40", "2017-03-13T22:48:40.000Z"),
        ("2017-03-13T22:48:40", "2017-03-13T22:48:40.000Z"),
        ("2017-03-13T22:48", "2017-03-13T22:48:00.000Z"),
        ("2017-03-13t22:48:40z", "2017-03-13T22:48:40.000Z"),
        # Fractions: truncated to milliseconds, comma accepted.
        ("2017-03-13T22:48:40.1234567Z", "2017-03-13T22:48:40.123Z"),
        ("2017-03-13T22:48:40.9999Z", "2017-03-13T22:48:40.999Z"),
        ("2017-03-13T22:48:40,5Z", "2017-03-13T22:48:40.500Z"),
        ("2017-03-13T22:48:40.12-04:00", "2017-03-14T02:48:40.120Z"),
        # Date only: midnight UTC (the audience trends request's day form).
        ("2019-03-24", "2019-03-24T00:00:00.000Z"),
        ("2021-08-17", "2021-08-17T00:00:00.000Z"),
        # Whitespace around a value.
        ("  2017-03-13T22:48:40Z\n", "2017-03-13T22:48:40.000Z"),
        # Symplify batch startTime/endTime: epoch milliseconds, int or text.
        (1394636797030, "2014-03-12T15:06:37.030Z"),
        (1394636799710, "2014-03-12T15:06:39.710Z"),
        ("1394636797030", "2014-03-12T15:06:37.030Z"),
        # Epoch seconds (magnitude below 10**10).
        (1394636797, "2014-03-12T15:06:37.000Z"),
        ("1394636797", "2014-03-12T15:06:37.000Z"),
        ("1394636797.5", "2014-03-12T15:06:37.500Z"),
        ("1394636797.1239", "2014-03-12T15:06:37.123Z"),
        (1394636797.25, "2014-03-12T15:06:37.250Z"),
        (9_999_999_999, "2286-11-20T17:46:39.000Z"),
        (10_000_000_000, "1970-04-26T17:46:40.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.000Z"),
        ("-1500", "1969-12-31T23:35:00.000Z"),  # seconds: 25 minutes before the epoch
        # Range edges.
        ("0001-01-01", "0001-01-01T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00.000Z"),
    ],
)
def test_documented_forms(value: object, expected: str) -> None:
    assert to_utc_rfc3339(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "yesterday",
        "2017-13-01",
        "2017-02-30T00:00:00Z",
        "2017-02-30T00:00:00+0000",  # fast-path shape, invalid date
        "2017-03-13T24:00:00Z",
        "2017-03-13T22:48:60Z",  # leap seconds are not representable
        "2017-03-13T22:48:4x+0000",
        "2017-W10-1",  # ISO week date: not a documented form
        "20170313T224840Z",  # basic format: not documented
        "2017-03-13x22:48:40",
        "2017-03-13T22",
        "13/03/2017",
        "1394636797030ms",
        "0x1F",
        "١٢٣٤٥٦٧٨٩٠",  # non-ASCII digits
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        253_402_300_800_000,
        10**30,
        True,
        None,
        float("nan"),
        float("inf"),
        [1394636797030],
        {"t": 1},
    ],
)
def test_unparseable_values_are_row_errors(value: object) -> None:
    with pytest.raises(RowError, match="unparseable timestamp"):
        to_utc_rfc3339(value)


def test_naive_values_can_take_a_zone() -> None:
    assert to_utc_rfc3339("2019-03-24", tz="America/Los_Angeles") == "2019-03-24T07:00:00.000Z"
    assert to_utc_rfc3339("2024-07-01 12:00:00", tz="Europe/Stockholm") == (
        "2024-07-01T10:00:00.000Z"
    )
    # An explicit offset wins over tz.
    assert to_utc_rfc3339("2024-07-01T12:00:00Z", tz="Europe/Stockholm") == (
        "2024-07-01T12:00:00.000Z"
    )


def test_unknown_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        to_utc_rfc3339("2019-03-24", tz="Mars/Olympus")
    with pytest.raises(ConfigError):
        local_midnight_to_utc("2019-03-24", "Mars/Olympus")


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2024-03-09", "2024-03-09T08:00:00.000Z"),  # PST
        ("2024-03-10", "2024-03-10T08:00:00.000Z"),  # DST starts at 02:00 that day: still PST
        ("2024-03-11", "2024-03-11T07:00:00.000Z"),  # PDT
        ("2024-11-02", "2024-11-02T07:00:00.000Z"),  # PDT
        ("2024-11-03", "2024-11-03T07:00:00.000Z"),  # DST ends at 02:00 that day: still PDT
        ("2024-11-04", "2024-11-04T08:00:00.000Z"),  # PST
        ("2021-07-16", "2021-07-16T07:00:00.000Z"),  # the docs' trends timeframe
        ("2020-12-31", "2020-12-31T08:00:00.000Z"),
    ],
)
def test_los_angeles_midnight(day: str, expected: str) -> None:
    assert local_midnight_to_utc(day) == expected


def test_midnight_in_other_zones() -> None:
    assert local_midnight_to_utc("2024-06-01", "UTC") == "2024-06-01T00:00:00.000Z"
    assert local_midnight_to_utc("2024-06-01", "Asia/Kolkata") == "2024-05-31T18:30:00.000Z"
    # Santiago springs forward at 00:00: that midnight does not exist; the offset before the gap
    # (-04:00) is used, as PEP 495 prescribes for fold=0.
    assert local_midnight_to_utc("2022-09-11", "America/Santiago") == ("2022-09-11T04:00:00.000Z")


@pytest.mark.parametrize("day", ["", "2024-3-10", "2024-02-30", "2024/03/10", "2024-W10-1", "x"])
def test_bad_days_are_row_errors(day: str) -> None:
    with pytest.raises(RowError, match="unparseable day"):
        local_midnight_to_utc(day)


_MOMENTS = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)
)


@settings(max_examples=400, deadline=None)
@given(_MOMENTS)
def test_epoch_milliseconds_agree_with_datetime(moment: dt.datetime) -> None:
    millis = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    expected = expected.rjust(24, "0")  # strftime does not pad years below 1000 everywhere
    assert format_epoch_ms(millis) == expected
    if abs(millis) >= 10**10:
        assert to_utc_rfc3339(millis) == expected
        assert to_utc_rfc3339(str(millis)) == expected


@settings(max_examples=400, deadline=None)
@given(
    _MOMENTS,
    st.integers(min_value=-14 * 60, max_value=14 * 60),
    st.sampled_from(["basic", "extended"]),
)
def test_iso_with_any_offset_is_the_same_instant(
    moment: dt.datetime, offset_minutes: int, notation: str
) -> None:
    offset = dt.timedelta(minutes=offset_minutes)
    local = moment.astimezone(dt.timezone(offset))
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    zone = f"{sign}{hours:02d}{minutes:02d}"
    if notation == "extended":
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S.%f").rjust(26, "0") + zone
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.").rjust(20, "0")
    expected += f"{moment.microsecond // 1000:03d}Z"
    assert to_utc_rfc3339(text) == expected
