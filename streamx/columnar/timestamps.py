"""``occurred_at`` for a whole column, with exactly the row path's rules.

:func:`streamx.normalize.timestamps.to_utc_rfc3339` is the definition. Three forms cover real
files and are decided here by kernels:

1. Cordial's ``2017-03-13T22:48:40+0000`` and the other zero offsets (``Z``, ``+00:00``, ``-0000``,
   ``+00``...): the output is the first 19 characters plus ``.000Z``;
2. the output form itself, ``2017-03-13T22:48:40.123Z``, kept as it is;
3. epoch digit strings (Symplify): seconds below ``10**10``, else milliseconds.

For 1 and 2 a regular expression checks the layout and the time of day (``[01]\\d|2[0-3]`` ...)
and the date is checked by Python's own ``date.fromisoformat`` once per *distinct* day (a file
holds few), so invalid days (Feb 30, year 0) are refused exactly as the row path refuses them.
Every other value (offsets, fractions, spaces, dates alone...) is converted by the row-path
function itself, one value at a time: rare in practice, and exact by construction. A value it
rejects makes the whole column fail (``None``): the caller lets the row path quarantine the row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from streamx.columnar.kernels import NULL, STRING, join, map_distinct
from streamx.exceptions import RowError
from streamx.normalize.timestamps import to_utc_rfc3339

_CLOCK: Final = r"^\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
ZERO_OFFSET: Final = _CLOCK + r"(?:Z|[+-]00(?:00|:00)?)$"
CANONICAL: Final = _CLOCK + r"\.\d{3}Z$"
EPOCH: Final = r"^\d{1,15}$"
_SECONDS_BELOW: Final = 10**10
_PAST_END: Final = 1 << 20  # a slice end beyond any value
_MILLIS: Final = ".000Z"
#: 9999-12-31T23:59:59.999Z: the last instant the output form can hold.
_MAX_MS: Final = 253_402_300_799_999


def valid_day(head: bytes) -> bool:
    """Whether the first 10 bytes of a value are a real ``YYYY-MM-DD`` date (the regexes check
    the layout; this checks the calendar, as ``fromisoformat`` does in the row path)."""
    try:
        text = head.decode("ascii")
        return text[4:5] == "-" == text[7:8] and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


def _days_ok(values: Any) -> Any:
    # Byte slices (a value need not be ASCII), about 3x cheaper than code-unit slices.
    heads = pc.binary_replace_slice(values.cast(pa.binary()), 10, _PAST_END, b"")
    return map_distinct(heads, valid_day, pa.bool_())


def _filled(mask: Any) -> Any:
    return pc.fill_null(mask, False)


def to_utc(values: Any) -> Any | None:
    """Convert a string column (nulls stay null); ``None`` if any value is no timestamp."""
    wanted = len(values) - values.null_count
    days = _days_ok(values)
    zero = _filled(pc.and_(pc.match_substring_regex(values, ZERO_OFFSET), days))
    fast = pc.binary_replace_slice(values, 19, _PAST_END, _MILLIS)
    if zero.true_count == wanted:
        return fast
    out = pc.if_else(zero, fast, NULL)
    todo = _filled(pc.and_not(values.is_valid(), zero))
    canonical = _filled(pc.and_(pc.match_substring_regex(values, CANONICAL), days))
    out = pc.if_else(canonical, values, out)
    todo = pc.and_not(todo, canonical)
    epoch = _filled(pc.and_(todo, pc.match_substring_regex(values, EPOCH)))
    if epoch.true_count:
        formatted = _epoch_text(pc.filter(values, epoch))
        if formatted is not None:
            out = pc.replace_with_mask(out, epoch, formatted)
            todo = pc.and_not(todo, epoch)
    if todo.true_count:
        converted = _one_by_one(pc.filter(values, todo).to_pylist())
        if converted is None:
            return None
        out = pc.replace_with_mask(out, todo, converted)
    return out


def _epoch_text(digits: Any) -> Any | None:
    """Digit strings -> output form; ``None`` when one is out of range (the row path decides)."""
    number = pc.cast(digits, pa.int64())
    millis = pc.if_else(pc.less(number, _SECONDS_BELOW), pc.multiply(number, 1000), number)
    if pc.max(millis).as_py() > _MAX_MS:
        return None
    text = pc.cast(pc.cast(millis, pa.timestamp("ms")), STRING)  # 2014-03-12 15:06:37.030
    return join([pc.binary_replace_slice(text, 10, 11, "T"), "Z"])


def _one_by_one(values: list[str]) -> Any | None:
    try:
        return pa.array([to_utc_rfc3339(value) for value in values], STRING)
    except RowError:
        return None
