"""The SFTP landing zone against a real OpenSSH sshd: Cordial's destination object, the job
folder made before the job, listing in chunk order, reads from an offset pinned to the listed
version, names that must stay inside the prefix (also when a server lists a hostile name), and
its configuration keys."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import pytest_asyncio
from fixtures.servers import SSHServerInfo, asyncssh_sftp_server

from streamx.config import parse_config
from streamx.engine.errors import ObjectChangedError
from streamx.exceptions import ConfigError, PermanentError
from streamx.landing import open_landing_zone
from streamx.landing_sftp import SFTPZone
from streamx.ssh import HostKeyError, SFTPFileError

MiB = 1 << 20
DATA = os.urandom(3 * MiB + 11)


@pytest_asyncio.fixture
async def zone(sshd: SSHServerInfo, sftp_root: Path) -> AsyncIterator[SFTPZone]:
    zone = SFTPZone(sshd.config(), root=str(sftp_root), prefix="landing")
    yield zone
    await zone.close()


async def read(zone: SFTPZone, name: str, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in zone.open(name, offset)])


def test_destination_is_cordials_sftp_object(sshd: SSHServerInfo) -> None:
    zone = SFTPZone(sshd.config(), root="/srv/in/", prefix="landing")
    path = zone.job_path("0a1b")
    assert zone.destination(path) == {
        "type": "sftp",
        "server": "127.0.0.1",
        "port": sshd.port,  # an integer, as the OpenAPI subset says
        "username": sshd.username,
        "password": sshd.password,
        "path": "/srv/in/landing/0a1b",
    }
    target = f"{sshd.username}@127.0.0.1:{sshd.port}"
    assert zone.location(f"{path}/x_1.csv") == f"sftp://{target}/srv/in/landing/0a1b/x_1.csv"
    assert sshd.password not in repr(zone)
    keyed = SFTPZone(
        sshd.config(password=None, client_keys=(sshd.client_key,)),
        root="in",
        saved_key="streamx-key",
        cordial_host="sftp.example.com",
        cordial_port=2222,
    )
    assert keyed.destination("streamx/t") == {
        "type": "sftp",
        "server": "sftp.example.com",
        "port": 2222,
        "username": sshd.username,
        "savedKey": "streamx-key",  # instead of the password
        "path": "in/streamx/t",  # relative: under the login directory
    }


@pytest.mark.asyncio
async def test_prepare_makes_the_folder_and_listing_is_in_chunk_order(
    zone: SFTPZone, sftp_root: Path
) -> None:
    path = zone.job_path("abc")
    assert await zone.list_files(path) == []  # missing folder: nothing landed yet
    await zone.prepare(path)
    await zone.prepare(path)  # again: nothing to do
    folder = sftp_root / "landing" / "abc"
    assert folder.is_dir()
    for number in (3, 12, 1, 10, 2):
        (folder / f"streamx-abc_{number}.csv").write_bytes(b"x" * number)
    (folder / ".streamx-abc_13.csv.part").write_bytes(b"uploading")
    (folder / "sub").mkdir()
    assert await zone.list_files(path) == [
        (f"{path}/streamx-abc_{number}.csv", number) for number in (1, 2, 3, 10, 12)
    ]


@pytest.mark.asyncio
async def test_reads_a_file_whole_or_from_an_offset(zone: SFTPZone, sftp_root: Path) -> None:
    await zone.prepare("landing/j")
    (sftp_root / "landing" / "j" / "f_1.csv").write_bytes(DATA)
    assert await zone.list_files("landing/j") == [("landing/j/f_1.csv", len(DATA))]
    assert await read(zone, "landing/j/f_1.csv") == DATA
    for offset in (1, 2 * MiB + 3, len(DATA)):
        assert await read(zone, "landing/j/f_1.csv", offset) == DATA[offset:]


@pytest.mark.asyncio
async def test_a_file_replaced_after_listing_is_refused(zone: SFTPZone, sftp_root: Path) -> None:
    await zone.prepare("landing/j")
    (sftp_root / "landing" / "j" / "f_1.csv").write_bytes(DATA)
    await zone.list_files("landing/j")
    (sftp_root / "landing" / "j" / "f_1.csv").write_bytes(DATA[:100])
    with pytest.raises(ObjectChangedError, match=r"version .* changed"):
        await read(zone, "landing/j/f_1.csv")


@pytest.mark.asyncio
async def test_a_folder_it_may_not_create_is_a_clear_error(
    sshd: SSHServerInfo, sftp_root: Path
) -> None:
    locked = sftp_root / "locked"
    locked.mkdir(mode=0o755)  # owned by root: the login user cannot write here
    zone = SFTPZone(sshd.config(), root=str(locked))
    try:
        denied = r"cannot create landing folder sftp://.*/locked/streamx: permission denied"
        with pytest.raises(SFTPFileError, match=denied):
            await zone.prepare(zone.job_path("t"))
    finally:
        await zone.close()


@pytest.mark.asyncio
async def test_an_unknown_host_key_is_refused(sshd: SSHServerInfo, sftp_root: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    zone = SFTPZone(sshd.config(host_key=other), root=str(sftp_root))
    try:
        with pytest.raises(HostKeyError, match="does not match the pinned key"):
            await zone.list_files(zone.job_path("t"))
    finally:
        await zone.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "name",
    ["../x", "/landing/j/x", "elsewhere/x", "landing/../x", "landing//x", "landing/./x", ""],
)
async def test_names_outside_the_prefix_are_refused(zone: SFTPZone, name: str) -> None:
    with pytest.raises(PermanentError, match="refusing landing path"):
        await read(zone, name)
    with pytest.raises(PermanentError, match="refusing landing path"):
        await zone.list_files(name)
    with pytest.raises(PermanentError, match="refusing landing path"):
        await zone.prepare(name)


class HostileSFTPServer(asyncssh.SFTPServer):
    """Lists a name that would lead out of the folder if it were joined to it."""

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        attrs = asyncssh.SFTPAttrs(permissions=stat.S_IFREG | 0o644, size=1, mtime=0)
        yield asyncssh.SFTPName(b"../../etc/passwd", attrs=attrs)


@pytest.mark.asyncio
async def test_a_listed_name_with_a_slash_is_refused(tmp_path: Path) -> None:
    async with asyncssh_sftp_server(tmp_path, HostileSFTPServer) as server:
        zone = SFTPZone(server.config(), root="/", prefix="landing")
        try:
            hostile = re.escape("refusing the name '../../etc/passwd'")
            with pytest.raises(SFTPFileError, match=hostile):
                await zone.list_files("landing/j")
        finally:
            await zone.close()


# -- configuration ------------------------------------------------------------------------

ENV = {"CORDIAL_KEY": "api", "SFTP_PASSWORD": "s3cret"}


def landing_zone(**landing: Any) -> Any:
    raw = {
        "accounts": {
            "us": {
                "vendor": "cordial",
                "api_key_env": "CORDIAL_KEY",
                "landing": {"type": "sftp", **landing},
            }
        }
    }
    config = parse_config(raw, env=ENV)
    landing_config = config.accounts["us"].landing
    assert landing_config is not None
    return open_landing_zone(landing_config)


BASE = {"host": "files.example.com", "username": "cordial", "password_env": "SFTP_PASSWORD"}


def test_configuration_keys_and_secrets_from_the_environment() -> None:
    zone = landing_zone(
        **BASE,
        port=2222,
        path="/srv/landing",
        prefix="jobs",
        host_key="SHA256:" + "A" * 43,
        client_keys=["/etc/streamx/id_ed25519"],
        connect_timeout=5,
    )
    assert isinstance(zone, SFTPZone)
    assert zone.config.client_keys == ("/etc/streamx/id_ed25519",)
    assert zone.destination(zone.job_path("t")) == {
        "type": "sftp",
        "server": "files.example.com",
        "port": 2222,
        "username": "cordial",
        "password": "s3cret",
        "path": "/srv/landing/jobs/t",
    }
    keyed = landing_zone(host="h", username="u", saved_key="k1", cordial_host="pub")
    destination = keyed.destination("streamx/t")
    shown = (destination["server"], destination["port"], destination["savedKey"])
    assert shown == ("pub", 22, "k1")
    assert "password" not in destination


@pytest.mark.parametrize(
    ("landing", "message"),
    [
        ({"username": "u", "password_env": "SFTP_PASSWORD"}, "host is required"),
        ({"host": "h", "password_env": "SFTP_PASSWORD"}, "username is required"),
        ({"host": "h", "username": "u"}, "needs password_env"),
        ({**BASE, "password": "plain"}, "secret in clear text"),
        ({**BASE, "dir": "/srv"}, "path, not dir"),
        ({**BASE, "directory": "/srv"}, r"unknown key\(s\) directory"),
        ({**BASE, "port": "22"}, "port must be int"),
        ({**BASE, "client_keys": "/k"}, "client_keys must be list"),
        ({**BASE, "client_keys": [1]}, "client_keys must be a list of key file paths"),
        ({**BASE, "host_key": "nonsense"}, "host_key must be"),
        ({**BASE, "cordial_port": 70000}, "invalid cordial_port"),
        ({**BASE, "prefix": "in/./out"}, "invalid prefix"),
    ],
)
def test_configuration_errors_name_the_problem(landing: dict[str, Any], message: str) -> None:
    landing = {key: value for key, value in landing.items() if value is not None}
    with pytest.raises(ConfigError, match=message):
        landing_zone(**landing)
