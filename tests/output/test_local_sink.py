"""LocalSink: temp file next to the final name, atomic publish, no escape from the root."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamx.exceptions import SinkError
from streamx.sinks.base import split_relpath
from streamx.sinks.local import LocalSink


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.asyncio
async def test_commit_publishes_under_final_name_and_leaves_no_temp(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path)
    upload = await sink.open("a/b/file.txt")
    await upload.write(b"hello ")
    await upload.write(b"world")
    (temp,) = _files(tmp_path)
    assert temp.startswith("a/b/.file.txt.tmp-")  # invisible to readers until commit
    assert not (tmp_path / "a/b/file.txt").exists()
    await upload.commit()
    assert _files(tmp_path) == ["a/b/file.txt"]
    assert (tmp_path / "a/b/file.txt").read_bytes() == b"hello world"
    await sink.close()


@pytest.mark.asyncio
async def test_writes_are_buffered_then_flushed_in_large_blocks(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path, buffer_size=1000)
    upload = await sink.open("f.bin")
    temp = upload.temp_path
    await upload.write(b"x" * 600)
    assert temp.stat().st_size == 0  # still in the buffer
    await upload.write(b"y" * 600)
    assert temp.stat().st_size == 1200  # buffer passed 1000 bytes: one write of both
    await upload.write(b"z" * 10)
    await upload.finish()
    assert temp.read_bytes() == b"x" * 600 + b"y" * 600 + b"z" * 10  # durable, still hidden
    assert not (tmp_path / "f.bin").exists()
    await upload.commit()
    assert (tmp_path / "f.bin").read_bytes() == b"x" * 600 + b"y" * 600 + b"z" * 10


@pytest.mark.asyncio
async def test_large_single_write(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    upload = await LocalSink(tmp_path).open("big.bin")
    await upload.write(data)
    await upload.commit()
    assert (tmp_path / "big.bin").read_bytes() == data


@pytest.mark.asyncio
async def test_commit_replaces_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"old")
    upload = await LocalSink(tmp_path).open("f.txt")
    await upload.write(b"new")
    assert (tmp_path / "f.txt").read_bytes() == b"old"
    await upload.commit()
    assert _files(tmp_path) == ["f.txt"]
    assert (tmp_path / "f.txt").read_bytes() == b"new"


@pytest.mark.asyncio
async def test_abort_removes_temp_and_is_idempotent(tmp_path: Path) -> None:
    upload = await LocalSink(tmp_path).open("d/f.txt")
    await upload.write(b"data" * 1000)
    await upload.finish()
    await upload.abort()
    await upload.abort()
    assert _files(tmp_path) == []
    with pytest.raises(SinkError, match="aborted"):
        await upload.write(b"more")
    with pytest.raises(SinkError, match="aborted"):
        await upload.commit()


@pytest.mark.asyncio
async def test_abort_after_commit_keeps_the_file_and_write_after_commit_fails(
    tmp_path: Path,
) -> None:
    upload = await LocalSink(tmp_path).open("f.txt")
    await upload.write(b"kept")
    await upload.commit()
    await upload.abort()
    assert (tmp_path / "f.txt").read_bytes() == b"kept"
    with pytest.raises(SinkError, match="committed"):
        await upload.write(b"x")
    with pytest.raises(SinkError, match="committed"):
        await upload.commit()


@pytest.mark.asyncio
async def test_concurrent_uploads_in_one_directory(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path)

    async def put(i: int) -> None:
        upload = await sink.open(f"dt=2024-01-01/part-{i}")
        for _ in range(20):
            await upload.write(bytes([i]) * 100)
        await upload.commit()

    await asyncio.gather(*(put(i) for i in range(8)))
    assert _files(tmp_path) == sorted(f"dt=2024-01-01/part-{i}" for i in range(8))
    for i in range(8):
        assert (tmp_path / f"dt=2024-01-01/part-{i}").read_bytes() == bytes([i]) * 2000


@pytest.mark.parametrize(
    "relpath", ["", "/etc/passwd", "../x", "a/../../x", "a/..", "a//b", "./a", "a/", "a\\b", "a\0"]
)
@pytest.mark.asyncio
async def test_relpaths_that_could_escape_are_refused(tmp_path: Path, relpath: str) -> None:
    sink = LocalSink(tmp_path / "root")
    with pytest.raises(SinkError, match="refusing path"):
        await sink.open(relpath)
    with pytest.raises(SinkError, match="refusing path"):
        sink.location(relpath)
    assert list(tmp_path.iterdir()) == []


def test_split_relpath() -> None:
    assert split_relpath("a/b/c.txt") == ("a", "b", "c.txt")
    assert split_relpath("..hidden/x") == ("..hidden", "x")


@pytest.mark.asyncio
async def test_symlinked_directory_leading_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    sink = LocalSink(root)
    with pytest.raises(SinkError, match="outside the root"):
        await sink.open("link/file.txt")
    with pytest.raises(SinkError, match="outside the root"):
        await sink.open("link/deeper/file.txt")
    assert list(outside.iterdir()) == []  # nothing created through the link


@pytest.mark.asyncio
async def test_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    upload = await LocalSink(tmp_path).open("alias/f.txt")
    await upload.write(b"ok")
    await upload.commit()
    assert (tmp_path / "real/f.txt").read_bytes() == b"ok"


@pytest.mark.asyncio
async def test_root_given_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    sink = LocalSink(tmp_path / "link")
    upload = await sink.open("sub/f.txt")
    await upload.write(b"ok")
    await upload.commit()
    assert (tmp_path / "real/sub/f.txt").read_bytes() == b"ok"
    assert sink.location("sub/f.txt") == str(tmp_path / "real/sub/f.txt")


@pytest.mark.asyncio
async def test_file_in_the_way_is_a_sink_error_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    sink = LocalSink(tmp_path)
    with pytest.raises(SinkError, match=r"blocker.*not a directory|blocker.*Not a directory"):
        await sink.open("blocker/f.txt")
    root_is_file = LocalSink(tmp_path / "blocker")
    with pytest.raises(SinkError, match="blocker"):
        await root_is_file.open("f.txt")


@pytest.mark.asyncio
async def test_publish_failure_is_a_sink_error(tmp_path: Path) -> None:
    upload = await LocalSink(tmp_path).open("d/f.txt")
    await upload.write(b"data")
    (tmp_path / "d/f.txt").mkdir()  # a directory now occupies the final name
    with pytest.raises(SinkError, match=r"cannot publish .*d/f\.txt"):
        await upload.commit()
    await upload.abort()
    assert not any(p.name.startswith(".") for p in (tmp_path / "d").iterdir())


_WRITE_FAILURE = """
import asyncio, resource, signal, sys
from streamx.exceptions import SinkError
from streamx.sinks.local import LocalSink

async def main() -> None:
    upload = await LocalSink(sys.argv[1]).open("d/f.bin")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    try:
        await upload.write(b"x" * 2_000_000)
        await upload.commit()
    except SinkError as exc:
        print(exc)
    try:
        await upload.commit()  # bytes were lost: publishing now would publish a torn file
    except SinkError as exc:
        print(exc)
    await upload.abort()

asyncio.run(main())
"""


def test_disk_write_failure_is_a_sink_error_naming_path_and_reason(tmp_path: Path) -> None:
    # A file size limit makes the kernel fail the write (EFBIG) exactly as a full disk does
    # (ENOSPC): an OSError from write(2). Run in a child so the limit binds nobody else.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-c", _WRITE_FAILURE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "cannot write" in result.stdout and "f.bin.tmp-" in result.stdout
    first, second = result.stdout.splitlines()
    assert "File too large" in first
    assert "cannot commit" in second and "failed" in second
    assert _files(tmp_path) == []  # aborted: the partial temp file is gone


def test_location_is_absolute(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path)
    assert sink.location("a/b.txt") == os.path.join(os.path.realpath(tmp_path), "a", "b.txt")
    assert sink.root == os.path.realpath(tmp_path)


@pytest.mark.asyncio
async def test_closed_sink_refuses_new_uploads(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path)
    await sink.close()
    with pytest.raises(SinkError, match="closed"):
        await sink.open("f.txt")
