"""Every documented vendor timestamp form -> one UTC RFC 3339 string with milliseconds.

Output is always ``YYYY-MM-DDTHH:MM:SS.mmmZ`` so that records sort and compare as plain strings.
Accepted input (the rules ``docs/schema.md`` promises):

- integers and digit strings are Unix epochs: a magnitude below ``10**10`` is **seconds**
  (10 digits reach year 2286), anything larger is **milliseconds** (epoch ms passed 10**10 in
  April 1970, so no real millisecond value from these vendors is that small). Finite floats and
  decimal strings follow the same rule, with a fraction.
- ISO 8601 extended form: ``2017-03-13T22:48:40+0000`` (Cordial), ``+00:00``, ``-04:00``, ``+05``,
  ``Z``, with or without fractional seconds (``.`` or ``,``), ``T``/``t``/space as separator.
  No zone means UTC (or ``tz`` when given). A date alone (``2019-03-24``) is midnight UTC (or
  midnight in ``tz``).
- sub-millisecond digits are truncated, never rounded, so an instant never moves to the next
  second, day or year.

This runs once per row on millions of rows, so the common forms take a fast path: the Cordial
``+0000`` form is validated by the C parser and re-sliced; every other form is turned into epoch
milliseconds and formatted from small lookup tables (``datetime.isoformat`` costs several times
more). The only cache is of day prefixes ("2017-03-13"), which repeat; the full values do not.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamx.exceptions import ConfigError, RowError

_EPOCH: Final = dt.datetime(1970, 1, 1)
_EPOCH_UTC: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS: Final = dt.timedelta(milliseconds=1)
_MS_PER_DAY: Final = 86_400_000
_SECONDS_BELOW: Final = 10**10
_ZERO_OFFSETS: Final = frozenset(("Z", "+0000", "+00:00", "-0000", "-00:00", "+00", "-00"))
_HOURS: Final = tuple(f"T{hour:02d}:" for hour in range(24))
_MINUTES_SECONDS: Final = tuple(f"{m:02d}:{s:02d}." for m in range(60) for s in range(60))
_MILLIS: Final = tuple(f"{ms:03d}Z" for ms in range(1000))
_DAY_CACHE_LIMIT: Final = 4096
_day_prefixes: dict[int, str] = {}
_isoparse: Final = dt.datetime.fromisoformat


def to_utc_rfc3339(value: object, *, tz: str | None = None) -> str:
    """``value`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; :class:`RowError` if it is no timestamp.

    ``tz`` (an IANA zone name) is the zone of values that carry no offset of their own (naive
    date-times and dates); without it they are UTC. Values with an offset ignore it.
    """
    try:
        if type(value) is str:
            # Fast path, inlined: Cordial's "2017-03-13T22:48:40+0000" (or Z / +00:00).
            if (
                len(value) >= 20
                and value[10] == "T"
                and value[19] in "+-Z"
                and value[19:] in _ZERO_OFFSETS
                and value[13] == ":"
                and value[16] == ":"
                and value[4] == "-"  # not a week date ("2017-W11-1"), which the C parser takes
                and value[7] == "-"
            ):
                head = value[:19]
                _isoparse(head)  # validates every digit and range; raises ValueError
                return head + ".000Z"
            return _from_text(value, tz)
        if type(value) is int:
            return format_epoch_ms(value if abs(value) >= _SECONDS_BELOW else value * 1000)
        if type(value) is float and math.isfinite(value):
            scale = 1000 if abs(value) < _SECONDS_BELOW else 1
            return format_epoch_ms(math.floor(round(value * scale, 3)))
    except ValueError:
        raise RowError(f"unparseable timestamp {value!r}: not a valid date and time") from None
    except OverflowError:
        raise RowError(f"unparseable timestamp {value!r}: out of range (years 1-9999)") from None
    raise RowError(f"unparseable timestamp {value!r}: expected epoch or ISO 8601 text")


def format_epoch_ms(millis: int) -> str:
    """Epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; OverflowError outside years 1-9999."""
    days, rest = divmod(millis, _MS_PER_DAY)
    hour, rest = divmod(rest, 3_600_000)
    seconds, ms = divmod(rest, 1000)
    prefix = _day_prefixes.get(days)
    if prefix is None:
        prefix = _day_prefix(days)
    return prefix + _HOURS[hour] + _MINUTES_SECONDS[seconds] + _MILLIS[ms]


def _day_prefix(days: int) -> str:
    """``YYYY-MM-DD`` of a day number; OverflowError outside years 1 to 9999."""
    prefix = (_EPOCH + dt.timedelta(days=days)).date().isoformat()
    if len(_day_prefixes) >= _DAY_CACHE_LIMIT:  # bounded: memory never grows with input
        _day_prefixes.clear()
    _day_prefixes[days] = prefix
    return prefix


def _from_text(text: str, tz: str | None) -> str:
    # The output form itself, "2017-03-13T22:48:40.123Z", is only validated.
    if (
        len(text) == 24
        and text[19] == "."
        and text[23] == "Z"
        and text[10] == "T"
        and text[13] == ":"
        and text[16] == ":"
        and text[4] == "-"
        and text[7] == "-"
    ):
        _isoparse(text)
        return text
    text = text.strip()
    if text and (text[0].isdigit() or text[0] == "-") and _is_number(text):
        return format_epoch_ms(_decimal_millis(text))
    return format_epoch_ms(_iso_millis(text, tz))


def _iso_millis(text: str, tz: str | None) -> int:
    if not _extended_layout(text):
        raise RowError(f"unparseable timestamp {text!r}: expected epoch or ISO 8601 text")
    if text[-1] == "z":
        text = text[:-1] + "Z"
    if len(text) > 20 and text[19] == " " and text[20] in "+-":  # "... 22:48:40 +0000"
        text = text[:19] + text[20:]
    moment = _isoparse(text)
    if moment.tzinfo is None:
        if tz is None:
            return (moment - _EPOCH) // _ONE_MS
        moment = moment.replace(tzinfo=zone(tz))
    return (moment - _EPOCH_UTC) // _ONE_MS


def _extended_layout(text: str) -> bool:
    """ISO 8601 *extended* form only: the C parser also takes week dates and odd separators."""
    size = len(text)
    if size < 10 or text[4] != "-" or text[7] != "-":
        return False
    if size == 10:
        return True
    return size >= 16 and text[10] in "Tt " and text[13] == ":"


def _is_number(text: str) -> bool:
    body = text[1:] if text[0] == "-" else text
    whole, _, fraction = body.partition(".")
    return body.isascii() and whole.isdigit() and (not fraction or fraction.isdigit())


def _decimal_millis(text: str) -> int:
    """Epoch milliseconds of ``-?digits[.digits]``, exactly (no float rounding)."""
    sign = -1 if text[0] == "-" else 1
    whole, _, fraction = text.lstrip("-").partition(".")
    number = int(whole)
    if number < _SECONDS_BELOW:
        return sign * (number * 1000 + int((fraction + "000")[:3]))
    return sign * number  # already milliseconds: a sub-millisecond fraction is truncated


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`ConfigError` for a name the tz database lacks."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}") from None


def local_midnight_to_utc(day: str, tz: str = "America/Los_Angeles") -> str:
    """Midnight at the start of ``day`` (``YYYY-MM-DD``) in ``tz``, as UTC RFC 3339.

    zoneinfo picks the offset in force at that wall-clock time, so DST is handled: in Los Angeles
    2024-03-10 starts at 08:00Z (PST) and 2024-03-11 at 07:00Z (PDT). A midnight that does not
    exist (a zone that springs forward at 00:00) resolves with the offset before the gap (PEP 495).
    """
    try:
        iso = len(day) == 10 and day[4] == "-" and day[7] == "-"
        date = dt.date.fromisoformat(day) if iso else None
    except ValueError:
        date = None
    if date is None:
        raise RowError(f"unparseable day {day!r}: expected YYYY-MM-DD")
    local = dt.datetime(date.year, date.month, date.day, tzinfo=zone(tz))
    return format_epoch_ms((local - _EPOCH_UTC) // _ONE_MS)
