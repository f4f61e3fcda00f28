"""Is a block of CSV all whole, well-formed records? Asked of RE2, which answers without the GIL.

The columnar lanes may only hand pyarrow records the row parser would read identically
(:mod:`streamx.columnar.csvlanes`). The row parser's own validator
(:func:`~streamx.codecs.csv.valid_run`) answers that with Python's ``re``, which holds the GIL
for its ~1 ms per 512 KiB block, all of it on the event loop while the block threads wait for
the GIL. RE2 (Arrow's ``match_substring_regex``) takes as long but releases the GIL, so the
threads encode meanwhile.

The pattern is the row parser's strict record grammar (``_Patterns.records`` in
:mod:`streamx.codecs.csv`) as a regular language, anchored at both ends: every quoted field
opens at a field start and closes before a delimiter or line end, doubled quotes inside, and no
CR outside quotes except in a CRLF. It only ever says yes to a block ``valid_run`` takes whole
(RE2 reads a binary value byte by byte, as ``re`` does, so invalid UTF-8 is left to pyarrow's
check, as before). After a no (a stray quote, a bare CR) the lanes run ``valid_run`` as they
always did, which finds the exact cut.
"""

from __future__ import annotations

import pyarrow.compute as pc

from streamx.bytes_like import Bytes
from streamx.columnar.csvlanes import WholeRecords
from streamx.columnar.kernels import as_binary_array


def records_pattern(delimiter: str) -> str:
    """RE2 pattern matching a whole run of records (the empty run included)."""
    d = f"\\x{{{ord(delimiter):x}}}"  # any one character, safe inside and outside a class
    quoted = '"(?:[^"]|"")*"'
    unquoted = f'[^"\\r\\n{d}]*'
    field = f"(?:{quoted}|{unquoted})"
    return f"^(?:{field}(?:{d}{field})*\\r?\\n)*$"


def whole_records_check(delimiter: str) -> WholeRecords | None:
    """A check for ``delimiter`` (``None`` when it is not one ASCII character)."""
    if len(delimiter) != 1 or not delimiter.isascii():
        return None
    pattern = records_pattern(delimiter)

    def whole_records(block: Bytes) -> bool:
        text = as_binary_array(block)
        return bool(pc.match_substring_regex(text, pattern)[0].as_py())

    return whole_records
