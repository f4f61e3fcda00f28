"""The unread input of the block-wise paths: views that stay valid, positions from the rest."""

from __future__ import annotations

from streamx.unread import Unread


def test_views_of_cut_blocks_survive_later_input() -> None:
    unread = Unread()
    unread.append(b"a1\nb2\nc")
    first = unread.view(unread.after_last_newline())
    assert first == b"a1\nb2\n" and unread.count(b"\n", len(first)) == 2
    unread.drop(len(first))
    unread.append(b"3\nd4\n")  # the rest "c" is joined to the new chunk
    assert first == b"a1\nb2\n"  # the block handed out earlier is untouched
    assert len(unread) == 6 and unread.copy(len(unread)) == b"c3\nd4\n"
    assert unread.ends_with_newline()


def test_newline_positions_count_from_the_rest() -> None:
    unread = Unread()
    unread.append(b"xx\nyyyy\nzz")
    unread.drop(3)
    assert unread.after_last_newline() == 5  # "yyyy\n"
    assert unread.after_last_newline(4) == 0  # no newline in "yyyy"
    assert unread.after_newline_from(2) == 5
    assert unread.after_newline_from(5) == 0
    assert not unread.ends_with_newline()
    unread.drop(len(unread))
    assert len(unread) == 0 and not unread
    unread.append(b"new\n")  # nothing left over: the chunk is kept as it is
    assert unread.copy(4) == b"new\n"
