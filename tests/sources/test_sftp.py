"""SFTP landing-zone source: listing and reads against a real OpenSSH sshd, drops against an
asyncssh server that cuts the connection mid-read."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import pytest_asyncio
from fixtures.servers import SSHServerInfo, asyncssh_sftp_server, write_known_hosts

from streamx.engine.backoff import Backoff
from streamx.engine.clock import FakeClock
from streamx.engine.errors import ObjectChangedError
from streamx.engine.retry import RetryPolicy
from streamx.sources.sftp import RemoteFile, SFTPLandingZone, SFTPSource
from streamx.ssh import HostKeyError, SFTPFileError, SFTPSession

KiB = 1024
MiB = 1024 * KiB
DATA = os.urandom(5 * MiB + 321)


def options(**overrides: Any) -> dict[str, Any]:
    return {
        "policy": RetryPolicy(backoff=Backoff(base=0.5, cap=2.0), max_attempts=4),
        "clock": FakeClock(),
        "rng": random.Random(0),
        "chunk_size": 512 * KiB,
        "vendor": "cordial",
        "account": "acme",
        "export_id": "j5",
        **overrides,
    }


async def collect(src: SFTPSource) -> bytes:
    got = bytearray()
    start = src.offset
    async for data in src:
        assert len(data) <= 512 * KiB
        got += data
        assert src.offset == start + len(got)
    return bytes(got)


@pytest.fixture
def landing(sshd: SSHServerInfo) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="landing-", dir=sshd.root))
    path.chmod(0o755)
    (path / "acts_2.csv.gz").write_bytes(b"second")
    (path / "acts_1.csv.gz").write_bytes(DATA)
    (path / ".acts_3.csv.gz.part").write_bytes(b"still uploading")
    (path / "subdir").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture
async def zone(sshd: SSHServerInfo, landing: Path) -> AsyncIterator[SFTPLandingZone]:
    zone = SFTPLandingZone(sshd.config(), str(landing))
    yield zone
    await zone.close()


@pytest.mark.asyncio
async def test_lists_regular_files_by_name(zone: SFTPLandingZone, landing: Path) -> None:
    files = await zone.list()
    assert [(item.name, item.size) for item in files] == [
        ("acts_1.csv.gz", len(DATA)),
        ("acts_2.csv.gz", 6),
    ]
    assert files[0].path == f"{landing}/acts_1.csv.gz"
    assert files[0].mtime == int((landing / "acts_1.csv.gz").stat().st_mtime)
    hidden = await zone.list(include_hidden=True)
    assert ".acts_3.csv.gz.part" in [item.name for item in hidden]


@pytest.mark.asyncio
async def test_streams_a_listed_file(zone: SFTPLandingZone) -> None:
    listed = (await zone.list())[0]
    src = zone.source(listed, **options())
    assert await collect(src) == DATA
    assert (src.offset, src.total, src.version) == (len(DATA), len(DATA), listed.version)


@pytest.mark.asyncio
async def test_resume_at_an_offset_reads_exactly_the_rest(zone: SFTPLandingZone) -> None:
    listed = (await zone.list())[0]
    for offset in (1, 2 * MiB + 5, len(DATA) - 1, len(DATA)):
        src = zone.source(listed, **options(start_offset=offset))
        assert await collect(src) == DATA[offset:]
        assert src.offset == len(DATA)


@pytest.mark.asyncio
async def test_a_changed_file_is_refused(zone: SFTPLandingZone, landing: Path) -> None:
    listed = (await zone.list())[0]
    (landing / listed.name).write_bytes(DATA + b"appended")
    src = zone.source(listed, **options(start_offset=MiB))
    with pytest.raises(ObjectChangedError, match=r"changed from .* it must be restarted"):
        await collect(src)


@pytest.mark.asyncio
async def test_missing_file_and_missing_directory(zone: SFTPLandingZone, landing: Path) -> None:
    with pytest.raises(SFTPFileError, match=r"cannot open sftp://.*/nope\.csv: no such file"):
        await collect(zone.source("nope.csv", **options()))
    other = SFTPLandingZone(zone.session, str(landing / "absent"))
    with pytest.raises(SFTPFileError, match=r"cannot list .*absent"):
        await other.list()


@pytest.mark.asyncio
async def test_host_key_mismatch_is_refused(sshd: SSHServerInfo, landing: Path) -> None:
    known_hosts = landing / "known_hosts"
    write_known_hosts(known_hosts, sshd.port, asyncssh.generate_private_key("ssh-ed25519"))
    zone = SFTPLandingZone(sshd.config(known_hosts=str(known_hosts)), str(landing))
    with pytest.raises(HostKeyError, match="host key CHANGED"):
        await zone.list()
    await zone.close()


# -- connection drops (asyncssh server with a fault knob) ----------------------------------


@dataclass
class Faults:
    """Drop the connection once ``drop_after`` bytes were served, ``drops`` times."""

    drop_after: int = 0
    drops: int = 0
    served: int = 0
    dropped: int = 0
    on_drop: Any = None


class DroppingSFTPServer(asyncssh.SFTPServer):
    faults = Faults()

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        data = super().read(file_obj, offset, size)
        assert isinstance(data, bytes)
        faults = self.faults
        faults.served += len(data)
        if faults.drops and faults.served >= faults.drop_after:
            faults.drops -= 1
            faults.dropped += 1
            faults.served = 0
            if faults.on_drop is not None:
                faults.on_drop()
            self.connection.abort()  # the link dies mid-transfer
        return data


@pytest_asyncio.fixture
async def flaky(tmp_path: Path) -> AsyncIterator[tuple[SSHServerInfo, Faults]]:
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "big.csv").write_bytes(DATA)
    faults = Faults()

    def factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        server = DroppingSFTPServer(chan, chroot=os.fsencode(tmp_path))
        server.faults = faults
        return server

    async with asyncssh_sftp_server(tmp_path, factory) as server:
        yield server, faults


@pytest.mark.asyncio
async def test_drops_mid_read_reconnect_and_resume(flaky: tuple[SSHServerInfo, Faults]) -> None:
    server, faults = flaky
    faults.drop_after, faults.drops = 2 * MiB, 2
    session = SFTPSession(server.config())
    try:
        zone = SFTPLandingZone(session, "/landing")
        listed = await zone.list()
        assert [item.name for item in listed] == ["big.csv"]
        src = zone.source(listed[0], **options())
        assert await collect(src) == DATA
        assert faults.dropped == 2
        assert src.resumes == 2
        assert session.connects == 3
    finally:
        await session.close()


@pytest.mark.asyncio
async def test_file_replaced_during_a_drop(
    flaky: tuple[SSHServerInfo, Faults], tmp_path: Path
) -> None:
    server, faults = flaky
    faults.drop_after, faults.drops = MiB, 1
    faults.on_drop = lambda: (tmp_path / "landing" / "big.csv").write_bytes(b"new contents")
    zone = SFTPLandingZone(server.config(), "/landing")
    try:
        listed: list[RemoteFile] = await zone.list()
        src = zone.source(listed[0], **options())
        with pytest.raises(ObjectChangedError, match="export=j5"):
            await collect(src)
        assert faults.dropped == 1
    finally:
        await zone.close()
