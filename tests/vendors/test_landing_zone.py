"""The local landing zone: listing in chunk order, reading from an offset, staying inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamx.config import LandingConfig
from streamx.exceptions import ConfigError, PermanentError
from streamx.landing import LocalLandingZone, chunk_order, open_landing_zone


def test_chunk_order_is_numeric() -> None:
    names = ["x_10.json.gz", "x_2.json.gz", "x_1.json.gz", "x.json.gz"]
    assert sorted(names, key=chunk_order) == [
        "x.json.gz", "x_1.json.gz", "x_2.json.gz", "x_10.json.gz",
    ]  # fmt: skip


@pytest.mark.asyncio
async def test_lists_files_in_chunk_order_skipping_hidden_ones(tmp_path: Path) -> None:
    zone = LocalLandingZone(tmp_path, prefix="in")
    path = zone.job_path("abc")
    assert path == "in/abc"
    assert zone.destination(path) == {"type": "local", "path": "in/abc"}
    assert await zone.list_files(path) == []  # nothing yet, not an error
    await zone.prepare(path)
    folder = tmp_path / "in" / "abc"
    for number in (1, 10, 2):
        (folder / f"job_{number}.csv").write_bytes(b"x" * number)
    (folder / ".job_3.csv.part").write_bytes(b"partial")
    (folder / "sub").mkdir()
    assert await zone.list_files(path) == [
        ("in/abc/job_1.csv", 1), ("in/abc/job_2.csv", 2), ("in/abc/job_10.csv", 10),
    ]  # fmt: skip
    assert zone.location("in/abc/job_1.csv") == str(folder / "job_1.csv")


@pytest.mark.asyncio
async def test_open_reads_everything_from_an_offset(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # > 2 MiB: several chunks
    (tmp_path / "f.bin").write_bytes(data)
    zone = LocalLandingZone(tmp_path, prefix="")
    assert b"".join([chunk async for chunk in zone.open("f.bin")]) == data
    assert b"".join([chunk async for chunk in zone.open("f.bin", 1000)]) == data[1000:]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "a\\b"])
async def test_paths_cannot_leave_the_root(tmp_path: Path, name: str) -> None:
    zone = LocalLandingZone(tmp_path / "root")
    with pytest.raises(PermanentError):
        await zone.list_files(name)
    with pytest.raises(PermanentError):
        zone.location(name)


def test_landing_zones_come_from_the_registry(tmp_path: Path) -> None:
    zone = open_landing_zone(LandingConfig(type="local", dir=str(tmp_path), prefix="p"))
    assert isinstance(zone, LocalLandingZone) and zone.job_path("t") == "p/t"
    with pytest.raises(ConfigError, match="'gcs' is not available"):
        open_landing_zone(LandingConfig(type="gcs"))
    with pytest.raises(ConfigError, match="unknown key"):
        open_landing_zone(LandingConfig(type="local", dir="/x", options={"bucket": "b"}))
