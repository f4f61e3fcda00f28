"""Block sizes of the columnar lanes: bounded by ``block_bytes``, not by the size of the
chunks the decoder hands over (one 1 MiB read of gzip inflates to several MiB of text)."""

from __future__ import annotations

from streamx.codecs.csv import CsvParser
from streamx.columnar.csvlanes import Block, CsvLanes

HEADER = b"a,b,c\n"


def _lanes(block_bytes: int) -> CsvLanes:
    return CsvLanes(CsvParser(), delimiter=",", max_record_bytes=1 << 20, block_bytes=block_bytes)


def _records(count: int) -> bytes:
    return b"".join(b'%d,"x, ""y""",z\n' % number for number in range(count))


def test_one_large_chunk_is_cut_into_blocks_of_at_most_block_bytes() -> None:
    lanes = _lanes(4096)
    body = _records(20_000)  # ~330 KB in one feed
    steps = [*lanes.feed(HEADER + body), *lanes.flush()]
    blocks = [step for step in steps if isinstance(step, Block)]
    assert len(blocks) > 50
    assert all(len(block.data) <= 4096 for block in blocks)
    assert b"".join(block.data for block in blocks) == body  # nothing lost or repeated
    lines = [block.line for block in blocks]
    assert lines[0] == 2 and lines == sorted(lines)  # each block knows its first line


def test_a_record_longer_than_a_block_still_gets_through_whole() -> None:
    lanes = _lanes(64)
    long_record = b'1,"' + b"q" * 500 + b'",z\n'
    body = _records(10) + long_record + _records(10)
    steps = [*lanes.feed(HEADER + body), *lanes.flush()]
    blocks = [step for step in steps if isinstance(step, Block)]
    rows = [item for step in steps if not isinstance(step, Block) for item in step]
    assert b"".join(block.data for block in blocks).count(b"\n") + len(rows) == 21
    in_blocks = any(long_record in bytes(block.data) for block in blocks)
    in_rows = any(getattr(item, "data", {}).get("b") == "q" * 500 for item in rows)
    assert in_blocks != in_rows  # exactly once, on either lane
