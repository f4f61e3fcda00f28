"""Column-wise occurred_at == the row path's ``to_utc_rfc3339``, value for value."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.columnar.timestamps import to_utc
from streamx.exceptions import RowError
from streamx.normalize.timestamps import to_utc_rfc3339


def row_path(value: str) -> str | None:
    try:
        return to_utc_rfc3339(value)
    except RowError:
        return None


def column_path(values: list[str | None]) -> list[str | None] | None:
    out = to_utc(pa.array(values, pa.string()))
    return None if out is None else out.to_pylist()


DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=2)


@st.composite
def near_timestamps(draw: st.DrawFn) -> str:
    """Strings shaped like the fast forms, with every part free to be out of range."""
    year = draw(st.sampled_from(["2017", "0000", "0001", "9999", "1970", "2016", "20x7"]))
    parts = [draw(DIGITS) for _ in range(5)]
    sep = draw(st.sampled_from(["T", "T", "t", " "]))
    body = f"{year}-{parts[0]:0>2}-{parts[1]:0>2}{sep}{parts[2]:0>2}:{parts[3]:0>2}:{parts[4]:0>2}"
    tail = draw(
        st.sampled_from(
            ["+0000", "Z", "+00:00", "-0000", "-00:00", "+00", "-00", "+0100", ".123Z", ".5Z", ""]
        )
    )
    return body + tail


VALUES = (
    near_timestamps()
    | st.text(alphabet="0123456789", min_size=1, max_size=17)
    | st.text(max_size=26)
    | st.sampled_from(["2017-W11-1T22:48:40+0000", "2017-W11-1T22:48:40.123Z", "٢٠١٧"])
)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_each_value_converts_exactly_like_the_row_path(value: str) -> None:
    expected = row_path(value)
    assert column_path([value]) == (None if expected is None else [expected])


@settings(max_examples=60, deadline=None)
@given(st.lists(near_timestamps() | st.none(), max_size=30))
def test_a_column_of_valid_values_keeps_order_and_nulls(values: list[str | None]) -> None:
    converted = [None if value is None else row_path(value) for value in values]
    if any(value is not None and out is None for value, out in zip(values, converted, strict=True)):
        assert column_path(values) is None  # one bad value: the row path must quarantine it
    else:
        assert column_path(values) == converted


@pytest.mark.parametrize(
    "value",
    ["2017-W11-1T22:48:40+0000", "2017-W11-1T22:48:40.123Z", "2017-02-29T00:00:00+0000"],
)
def test_week_dates_and_missing_days_are_no_timestamps(value: str) -> None:
    """Python 3.11's ``fromisoformat`` takes ISO week dates; schema v1 does not."""
    with pytest.raises(RowError):
        to_utc_rfc3339(value)
    assert column_path([value]) is None
