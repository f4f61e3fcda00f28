"""Small Arrow building blocks shared by the columnar modules.

Everything here works on whole columns (``pyarrow.StringArray``) with Arrow compute kernels,
which run in C++ and release the GIL, so a block is processed in a worker thread while the
event loop keeps running. Python is only called per *distinct* value (:func:`map_distinct`:
event types, bounce types, dates) or for the rare rows no kernel can decide exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamx.allocators import ARROW_POOL_ENV, pin_mmap_threshold
from streamx.bytes_like import Bytes

STRING = pa.string()
#: Typed scalars: a bare Python value costs a type inference and a cast on every kernel call
#: (75 instead of 13 microseconds for a 4000-row comparison).
EMPTY = pa.scalar("", STRING)
NULL = pa.scalar(None, STRING)


def use_lean_memory_pool() -> None:
    """Keep freed block buffers from piling up (see :mod:`streamx.allocators` for why).

    The command line has already chosen Arrow's pool through the environment (jemalloc with
    one arena, see :data:`streamx.allocators.JEMALLOC_CONF`); in a library user's process
    pyarrow is loaded by now, too late to configure jemalloc, so pyarrow's own default
    becomes the system pool (the user's choice in ``ARROW_DEFAULT_MEMORY_POOL`` is kept)."""
    pin_mmap_threshold()
    if not os.environ.get(ARROW_POOL_ENV):
        pa.set_memory_pool(pa.system_memory_pool())


def as_binary_array(data: Bytes) -> Any:
    """``data`` as a one-value binary array, without copying it (for RE2 over a block)."""
    offsets = pa.array([0, len(data)], pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])


def used_bytes(array: Any) -> bytes:
    """The bytes of a string array's values, back to back (only the slice's own values)."""
    if len(array) == 0:
        return b""
    offsets = memoryview(array.buffers()[1]).cast("i")
    start, stop = offsets[array.offset], offsets[array.offset + len(array)]
    data = array.buffers()[2]
    return b"" if data is None else bytes(memoryview(data)[start:stop])


def record_ends(array: Any) -> Sequence[int]:
    """End offset of each value in the data buffer of a freshly built (unsliced) string array."""
    offsets = memoryview(array.buffers()[1]).cast("i")
    assert array.offset == 0 and offsets[0] == 0
    return offsets[1 : len(array) + 1]


def data_of(array: Any) -> memoryview:
    """The values of a freshly built (unsliced, non-null) string array, back to back: a view
    of Arrow's buffer, not a copy (see :mod:`streamx.bytes_like`)."""
    if len(array) == 0:
        return memoryview(b"")
    size = record_ends(array)[-1]
    return memoryview(array.buffers()[2])[:size]


def non_empty(array: Any) -> Any:
    """Boolean mask: the value is neither null nor the empty string."""
    return pc.not_equal(array, EMPTY)


def all_true(mask: Any) -> bool:
    """True when every value of ``mask`` is true (nulls count as false)."""
    return bool(mask.true_count == len(mask))


def first_non_empty(columns: Sequence[Any]) -> Any:
    """Per row, the first column whose value is non-empty; null where all are empty."""
    picked = []
    for column in columns:
        mask = non_empty(column)
        full = all_true(mask)
        picked.append(column if full else pc.if_else(mask, column, NULL))
        if full:
            break  # later columns can never win
    return picked[0] if len(picked) == 1 else pc.coalesce(*picked)


def map_distinct(array: Any, function: Callable[[Any], Any], result_type: Any = STRING) -> Any:
    """``function`` applied to each distinct non-null value (low-cardinality columns only).

    Event types, bounce types and dates repeat; mapping the dictionary instead of the rows
    calls Python a handful of times per block and keeps the exact row-path semantics.
    """
    encoded = pc.dictionary_encode(array)
    dictionary = encoded.dictionary.to_pylist()
    mapped = pa.array([function(value) for value in dictionary], result_type)
    return pc.take(mapped, encoded.indices)


def join(pieces: Sequence[Any]) -> Any:
    """Concatenate arrays and string constants row by row (no separator); a null in any piece
    makes the row null. (Leaving nulls out instead, ``null_handling="skip"``, is twice as slow:
    pieces that may be absent are made empty with :func:`or_empty` first.)"""
    return pc.binary_join_element_wise(*pieces, "")


def or_empty(values: Any) -> Any:
    """Nulls as empty strings (an absent optional piece contributes nothing to a join)."""
    return pc.fill_null(values, EMPTY) if values.null_count else values


class Pieces:
    """Pieces of one output row (constants and columns) for :func:`join`; adjacent constants
    are merged, because every piece costs a pass over the rows."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._text: list[str] = []

    def text(self, value: str) -> None:
        self._text.append(value)

    def column(self, array: Any) -> None:
        self._flush()
        self.items.append(array)

    def done(self) -> list[Any]:
        self._flush()
        return self.items

    def _flush(self) -> None:
        if self._text:
            self.items.append("".join(self._text))
            self._text.clear()
