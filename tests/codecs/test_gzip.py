"""GzipDecoder: any split points, multi-member, truncation, corruption, bombs."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs import gzip as gzip_codec
from streamx.codecs.gzip import GzipDecoder, IdentityDecoder, is_gzip, make_decoder
from streamx.exceptions import CorruptInputError, DecompressionBombError


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length + 1, duplicates allowed)."""
    points = sorted(cut % (len(data) + 1) for cut in cuts)
    pieces, prev = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[prev:point])
        prev = point
    return pieces


def decode(pieces: list[bytes], decoder: GzipDecoder | None = None) -> bytes:
    decoder = decoder or GzipDecoder()
    out = [decoder.feed(piece) for piece in pieces]
    out.append(decoder.flush())
    return b"".join(out)


SAMPLE = 'Å 日本 😀 quoted "x"\r\n'.encode() * 50


@settings(max_examples=150, deadline=None)
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    level=st.integers(0, 9),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
)
def test_any_split_of_multi_member_stream_decodes_to_the_whole(
    members: list[bytes], level: int, cuts: list[int]
) -> None:
    stream = b"".join(gzip.compress(member, compresslevel=level) for member in members)
    assert decode(split(stream, cuts)) == b"".join(members)


def test_every_single_split_including_inside_the_10_byte_header() -> None:
    stream = gzip.compress(SAMPLE) + gzip.compress(b"second member")
    for cut in range(len(stream) + 1):
        assert decode([stream[:cut], stream[cut:]]) == SAMPLE + b"second member", cut


def test_byte_by_byte() -> None:
    stream = gzip.compress(SAMPLE, mtime=0)
    assert decode([stream[i : i + 1] for i in range(len(stream))]) == SAMPLE


def test_header_with_file_name_and_comment_fields() -> None:
    # FNAME | FCOMMENT | FHCRC are optional header parts a hand-rolled parser could miss.
    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = body.compress(SAMPLE) + body.flush()
    header = b"\x1f\x8b\x08\x1a\x00\x00\x00\x00\x00\xff" + b"name.csv\x00" + b"a comment\x00"
    header += (zlib.crc32(header) & 0xFFFF).to_bytes(2, "little")
    trailer = zlib.crc32(SAMPLE).to_bytes(4, "little") + len(SAMPLE).to_bytes(4, "little")
    stream = header + deflated + trailer
    for cut in range(0, 40):
        assert decode([stream[:cut], stream[cut:]]) == SAMPLE


def test_endless_header_file_name_is_an_error_not_a_buffer() -> None:
    decoder = GzipDecoder()
    decoder.feed(b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff")
    with pytest.raises(CorruptInputError, match="header too long"):
        for _ in range(20):
            decoder.feed(b"n" * 100_000)


def test_every_truncation_point_is_an_error_at_flush() -> None:
    stream = gzip.compress(b"id,name\n1,Ann\n2,Bob\n")
    for cut in range(1, len(stream)):
        decoder = GzipDecoder()
        decoder.feed(stream[:cut])
        with pytest.raises(CorruptInputError) as caught:
            decoder.flush()
        assert caught.value.offset == cut
        assert "truncated" in caught.value.reason


def test_members_are_counted() -> None:
    decoder = GzipDecoder()
    decoder.feed(gzip.compress(b"a") + gzip.compress(b"b") + gzip.compress(b"")[:5])
    assert decoder.members == 2


def test_truncated_second_member_is_an_error() -> None:
    stream = gzip.compress(b"first") + gzip.compress(b"second")[:15]
    decoder = GzipDecoder()
    assert decoder.feed(stream).startswith(b"first")
    with pytest.raises(CorruptInputError, match="member 2"):
        decoder.flush()


def test_lone_magic_byte_after_a_member_is_truncation() -> None:
    decoder = GzipDecoder()
    assert decoder.feed(gzip.compress(b"x") + b"\x1f") == b"x"
    with pytest.raises(CorruptInputError, match="truncated"):
        decoder.flush()


def test_garbage_after_a_member_is_an_error_naming_its_offset() -> None:
    member = gzip.compress(b"data")
    decoder = GzipDecoder()
    with pytest.raises(CorruptInputError, match="trailing garbage") as caught:
        decoder.feed(member + b"PK\x03\x04 not gzip")
    assert caught.value.offset == len(member)


def test_nul_padding_between_and_after_members_is_skipped() -> None:
    stream = gzip.compress(b"a") + b"\x00" * 7 + gzip.compress(b"b") + b"\x00" * 512
    assert decode(split(stream, [3, 25, 30, 40])) == b"ab"


def test_not_gzip_at_all() -> None:
    with pytest.raises(CorruptInputError, match="not a gzip stream") as caught:
        GzipDecoder().feed(b"id,name\n")
    assert caught.value.offset == 0


def test_empty_stream_is_an_error() -> None:
    with pytest.raises(CorruptInputError, match="empty"):
        decode([])


@pytest.mark.parametrize("where", ["deflate", "crc", "size"])
def test_corrupt_bytes_raise_corrupt_input_not_zlib_error(where: str) -> None:
    stream = bytearray(gzip.compress(SAMPLE))
    index = {"deflate": 20, "crc": len(stream) - 6, "size": len(stream) - 2}[where]
    stream[index] ^= 0xFF
    with pytest.raises(CorruptInputError):
        decode([bytes(stream)])


def test_zlib_fallback_decodes_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gzip_codec, "_ZLIB", zlib)
    stream = gzip.compress(SAMPLE) + gzip.compress(b"tail")
    assert decode(split(stream, [1, 9, 10, 11, 300])) == SAMPLE + b"tail"
    with pytest.raises(CorruptInputError, match="truncated"):
        decode([stream[:-3]])


def test_isal_is_used_when_installed() -> None:
    from isal import isal_zlib  # a dev dependency: installed wherever the tests run

    assert gzip_codec._ZLIB is isal_zlib


def zero_bomb(megabytes: int) -> bytes:
    """``megabytes`` MiB of zeros, gzip-compressed one MiB at a time (never all in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(megabytes)]
    return b"".join([*parts, compressor.flush()])


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zero_bomb(200)  # ~200 KB compressed


def test_bomb_is_stopped_early_when_fed_in_chunks(bomb: bytes) -> None:
    decoder = GzipDecoder(max_ratio=100, min_bomb_bytes=8 << 20)
    produced = 0
    with pytest.raises(DecompressionBombError) as caught:
        for piece in split(bomb, list(range(0, len(bomb), 16 * 1024))):
            produced += len(decoder.feed(piece))
    assert produced <= (8 << 20) + (1 << 20)
    assert caught.value.offset is not None and caught.value.offset < len(bomb)


def test_bomb_in_one_feed_stops_after_a_bounded_output(bomb: bytes) -> None:
    decoder = GzipDecoder(max_ratio=100, min_bomb_bytes=8 << 20)
    with pytest.raises(DecompressionBombError, match="ratio") as caught:
        decoder.feed(bomb)
    # It stopped after consuming a small part of the input, i.e. after ~9 MiB of output,
    # not after the full 200 MiB.
    assert caught.value.offset is not None and caught.value.offset < len(bomb) // 10


def test_high_ratio_below_the_absolute_floor_is_allowed() -> None:
    small = zero_bomb(4)
    assert decode([small], GzipDecoder(max_ratio=10, min_bomb_bytes=8 << 20)) == bytes(4 << 20)


def test_is_gzip_and_make_decoder() -> None:
    assert is_gzip(b"\x1f\x8b\x08")
    assert not is_gzip(b"\x1f")
    assert not is_gzip(b"[{")
    assert isinstance(make_decoder(gzip.compress(b"x")[:2]), GzipDecoder)
    assert isinstance(make_decoder(b"id,name"), IdentityDecoder)
    assert isinstance(make_decoder(b""), IdentityDecoder)


def test_identity_decoder_passes_bytes_through() -> None:
    decoder = IdentityDecoder()
    assert decoder.feed(b"abc") == b"abc"
    assert decoder.feed(b"") == b""
    assert decoder.flush() == b""
