"""SFTP sink against a real OpenSSH sshd: temp name + posix-rename, clear refusals."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from fixtures.servers import SSHServerInfo, write_known_hosts

from streamx.exceptions import SinkError
from streamx.sinks.registry import open_sink
from streamx.sinks.sftp import SFTPSink
from streamx.ssh import HostKeyError, SSHAuthError, pinned_fingerprint

MiB = 1024 * 1024
BLOCK = os.urandom(MiB)


def chunk(index: int) -> bytes:
    return index.to_bytes(8, "big") + BLOCK[8:]


@pytest.fixture
def out(sftp_root: Path) -> Path:
    """A fresh output directory (owned by the test user), removed afterwards."""
    return sftp_root


def entries(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.asyncio
async def test_upload_into_missing_directories_then_rename_into_place(
    sshd: SSHServerInfo, out: Path
) -> None:
    sink = SFTPSink(sshd.config(), str(out / "lake"))
    try:
        upload = await sink.open("cordial/dt=2024-05-01/part-00000.csv")
        digest = hashlib.sha256()
        for index in range(9):
            await upload.write(chunk(index))
            digest.update(chunk(index))
        await upload.write(b"tail")
        digest.update(b"tail")
        await upload.finish()
        directory = out / "lake" / "cordial" / "dt=2024-05-01"
        # Finished: durable under the temporary name only.
        assert [path.name for path in directory.iterdir()] == [Path(upload.temp_path).name]
        assert Path(upload.temp_path).name.startswith(".part-00000.csv.tmp-")
        await upload.commit()
        final = directory / "part-00000.csv"
        assert hashlib.sha256(final.read_bytes()).hexdigest() == digest.hexdigest()
        assert final.stat().st_uid != 0  # written by the test user over SFTP
        assert entries(out) == [
            "lake",
            "lake/cordial",
            "lake/cordial/dt=2024-05-01",
            "lake/cordial/dt=2024-05-01/part-00000.csv",
        ]
        assert sink.location("a/b.csv") == f"sftp://{sshd.config().target}{out}/lake/a/b.csv"
    finally:
        await sink.close()


@pytest.mark.asyncio
async def test_commit_replaces_an_existing_output(sshd: SSHServerInfo, out: Path) -> None:
    target = out / "same.json"
    target.write_bytes(b"old output that is longer than the new one")
    sink = SFTPSink(sshd.config(), str(out))
    try:
        for content in (b"first", b"second"):
            upload = await sink.open("same.json")
            await upload.write(content)
            assert target.exists()  # the old file stays until the rename
            await upload.commit()
            assert target.read_bytes() == content
        assert entries(out) == ["same.json"]
    finally:
        await sink.close()


async def failing(count: int) -> AsyncIterator[bytes]:
    for index in range(count):
        yield chunk(index)
    raise OSError("upstream reset")


@pytest.mark.asyncio
async def test_failure_mid_upload_leaves_nothing(sshd: SSHServerInfo, out: Path) -> None:
    (out / "keep.txt").write_bytes(b"previous run")
    sink = SFTPSink(sshd.config(), str(out))
    try:
        upload = await sink.open("keep.txt")
        with pytest.raises(OSError, match="upstream reset"):
            try:
                async for data in failing(3):
                    await upload.write(data)
                await upload.commit()
            except BaseException:
                await upload.abort()
                raise
        await upload.abort()  # idempotent
        assert entries(out) == ["keep.txt"]
        assert (out / "keep.txt").read_bytes() == b"previous run"
        with pytest.raises(SinkError, match="upload aborted"):
            await upload.write(b"x")
    finally:
        await sink.close()


@pytest.mark.asyncio
async def test_permission_denied_names_the_path(sshd: SSHServerInfo, out: Path) -> None:
    locked = out / "locked"
    locked.mkdir(mode=0o555)  # owned by root, not writable by the test user
    locked.chmod(0o555)
    sink = SFTPSink(sshd.config(), str(out))
    try:
        with pytest.raises(SinkError) as info:
            await sink.open("locked/part.csv")
        message = str(info.value)
        assert f"{locked}/.part.csv.tmp-" in message
        assert message.endswith(": permission denied")
        with pytest.raises(SinkError) as info:
            await sink.open("locked/sub/part.csv")
        assert str(info.value) == (
            f"cannot create directory sftp://{sshd.config().target}{locked}/sub: permission denied"
        )
        assert sshd.password not in message
        assert list(locked.iterdir()) == []
    finally:
        await sink.close()


@pytest.mark.asyncio
async def test_symlink_leading_outside_the_root_is_refused(sshd: SSHServerInfo, out: Path) -> None:
    (out / "root").mkdir()
    shutil.chown(out / "root", user=sshd.username)
    (out / "root" / "escape").symlink_to(out)
    sink = SFTPSink(sshd.config(), str(out / "root"))
    try:
        with pytest.raises(SinkError, match="leads outside the root"):
            await sink.open("escape/part.csv")
        assert entries(out) == ["root", "root/escape"]
    finally:
        await sink.close()


@pytest.mark.asyncio
async def test_changed_host_key_is_refused(sshd: SSHServerInfo, out: Path) -> None:
    known_hosts = out / "known_hosts"
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    write_known_hosts(known_hosts, sshd.port, impostor)
    sink = SFTPSink(sshd.config(known_hosts=str(known_hosts)), str(out))
    with pytest.raises(SinkError) as info:
        await sink.open("x.csv")
    message = str(info.value)
    assert "host key CHANGED" in message
    assert pinned_fingerprint(sshd.host_key) in message  # what the server presented
    assert isinstance(info.value.__cause__, HostKeyError)
    await sink.close()


@pytest.mark.asyncio
async def test_unknown_host_is_refused(sshd: SSHServerInfo, out: Path) -> None:
    known_hosts = out / "empty_known_hosts"
    known_hosts.write_text("")
    sink = SFTPSink(sshd.config(known_hosts=str(known_hosts)), str(out))
    with pytest.raises(SinkError, match=r"unknown host key .*SHA256:.*not in .*empty_known_hosts"):
        await sink.open("x.csv")
    await sink.close()


@pytest.mark.asyncio
async def test_pinned_host_key_replaces_known_hosts(sshd: SSHServerInfo, out: Path) -> None:
    missing = str(out / "no_such_known_hosts")
    for pin in (sshd.host_key, pinned_fingerprint(sshd.host_key)):
        sink = SFTPSink(sshd.config(known_hosts=missing, host_key=pin), str(out))
        upload = await sink.open("pinned.txt")
        await upload.write(b"ok")
        await upload.commit()
        await sink.close()
    assert (out / "pinned.txt").read_bytes() == b"ok"
    wrong = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    sink = SFTPSink(sshd.config(host_key=wrong), str(out))
    with pytest.raises(SinkError, match="does not match the pinned key"):
        await sink.open("x.txt")
    await sink.close()


@pytest.mark.asyncio
async def test_key_authentication_and_a_refused_password(sshd: SSHServerInfo, out: Path) -> None:
    keyed = SFTPSink(sshd.config(password=None, client_keys=(sshd.client_key,)), str(out))
    upload = await keyed.open("by-key.txt")
    await upload.write(b"key")
    await upload.commit()
    await keyed.close()
    assert (out / "by-key.txt").read_bytes() == b"key"
    wrong = SFTPSink(sshd.config(password="not-the-password-123"), str(out))
    with pytest.raises(SinkError, match="login refused") as info:
        await wrong.open("x.txt")
    assert "not-the-password-123" not in str(info.value)
    assert isinstance(info.value.__cause__, SSHAuthError)
    await wrong.close()


@pytest.mark.asyncio
async def test_open_sink_builds_an_sftp_sink_from_a_url(sshd: SSHServerInfo, out: Path) -> None:
    url = f"sftp://{sshd.username}@127.0.0.1:{sshd.port}{out}/via-url"
    sink = open_sink(url, password=sshd.password, known_hosts=sshd.known_hosts)
    assert isinstance(sink, SFTPSink)
    upload = await sink.open("a/b.txt")
    await upload.write(b"registry")
    await upload.commit()
    await sink.close()
    assert (out / "via-url" / "a" / "b.txt").read_bytes() == b"registry"
