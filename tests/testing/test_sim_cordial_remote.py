"""Cordial jobs deliver into real remote destinations: S3 (moto server) and SFTP (asyncssh)."""

from __future__ import annotations

import csv
import gzip
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
import boto3
import pytest
import pytest_asyncio
from sim_helpers import poll_json

from streamx.testing import CordialSim, ManualClock, StaticRows

ROWS = [{"cID": f"c{n}", "email": f"u{n}@example.com", "action": "open",
         "time": "2019-03-24T10:00:00+0000"} for n in range(25)]  # fmt: skip
WINDOW = {"selected_timeframe_start": "2019-03-24T00:00:00.000Z",
          "selected_timeframe_end": "2019-03-25T23:59:59.999Z"}  # fmt: skip
KEYS = {"aws_access_key_id": "A1234567890", "aws_secret_access_key": "B1234567890"}


@pytest.fixture
def bucket(moto_endpoint: str) -> tuple[Any, str]:
    s3 = boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return s3, name


async def _run_job(
    sim: CordialSim, session: aiohttp.ClientSession, clock: ManualClock, body: dict[str, Any]
) -> dict[str, Any]:
    url = f"{sim.base_url}/contactactivityexport"
    async with session.post(url, json=body, headers=sim.auth_headers) as response:
        assert response.status == 200, await response.text()
        job_id = (await response.json())["jobId"]
    clock.advance(60)
    return await poll_json(
        session,
        f"{sim.base_url}/jobs/{job_id}",
        lambda job: job["status"] in ("Done", "Failed"),
        headers=sim.auth_headers,
        timeout=30,
    )


def _s3_destination(bucket: str, path: str) -> dict[str, Any]:
    return {"type": "s3", **KEYS, "aws_bucket": bucket, "aws_region": "us-east-1", "path": path}


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


@pytest.mark.asyncio
async def test_s3_delivery_of_gzipped_chunks(
    clock: ManualClock, session: aiohttp.ClientSession, moto_endpoint: str, bucket: tuple[Any, str]
) -> None:
    s3, name = bucket
    body = {"name": "acts", "exportType": "csv", "destination": _s3_destination(name, "folder"),
            "showHeader": True, "compress": True, "limitRecordsPerFile": 10, **WINDOW,
            "columnHeaders": [{"name": "cID", "label": "Contact"}, {"name": "email"}]}  # fmt: skip
    async with CordialSim(
        clock=clock, provider=StaticRows(ROWS), s3_endpoint_url=moto_endpoint
    ) as sim:
        job = await _run_job(sim, session, clock, body)
    assert job["status"] == "Done", job
    keys = [f"folder/acts_{n}.csv.gz" for n in (1, 2, 3)]
    assert job["metadata"]["files"] == keys
    listed = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=name)["Contents"])
    assert listed == keys
    rows = []
    for key in keys:
        table = _csv_rows(gzip.decompress(s3.get_object(Bucket=name, Key=key)["Body"].read()))
        assert table[0] == ["Contact", "email"]
        rows.extend(table[1:])
    assert rows == [[row["cID"], row["email"]] for row in ROWS]


@pytest.mark.asyncio
async def test_s3_path_naming_a_file_and_multipart_upload(
    clock: ManualClock, session: aiohttp.ClientSession, moto_endpoint: str, bucket: tuple[Any, str]
) -> None:
    s3, name = bucket
    wide = [{"cID": f"c{n}", "action": "open", "time": "2019-03-24T10:00:00Z",
             "payload": f"{n:08d}" + "x" * 1000} for n in range(12_000)]  # fmt: skip
    body = {"name": "big", "exportType": "csv", **WINDOW, "showHeader": True,
            "destination": _s3_destination(name, "/exports/contactsExport.csv")}  # fmt: skip
    async with CordialSim(
        clock=clock, provider=StaticRows(wide), s3_endpoint_url=moto_endpoint,
        s3_part_size=5 * 1024 * 1024,
    ) as sim:  # fmt: skip
        job = await _run_job(sim, session, clock, body)
    assert job["status"] == "Done", job
    assert job["metadata"]["files"] == ["exports/contactsExport.csv"]
    stored = s3.get_object(Bucket=name, Key="exports/contactsExport.csv")
    assert stored["ETag"].strip('"').endswith("-3")  # 5 MiB + 5 MiB + the rest
    table = _csv_rows(stored["Body"].read())
    assert table[0] == ["cID", "action", "time", "payload"]
    assert [row[0] for row in table[1:]] == [row["cID"] for row in wide]
    assert table[-1][3] == wide[-1]["payload"]


@pytest.mark.asyncio
async def test_s3_delivery_to_a_missing_bucket_fails_the_job(
    clock: ManualClock, session: aiohttp.ClientSession, moto_endpoint: str
) -> None:
    body = {"name": "acts", "exportType": "csv", **WINDOW,
            "destination": _s3_destination("no-such-bucket-here", "folder")}  # fmt: skip
    async with CordialSim(
        clock=clock, provider=StaticRows(ROWS), s3_endpoint_url=moto_endpoint
    ) as sim:
        job = await _run_job(sim, session, clock, body)
    assert job["status"] == "Failed"
    assert "NoSuchBucket" in job["errorMessage"]


class _PasswordServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == ("cordial", "s3cret")


@pytest_asyncio.fixture
async def sftp_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(tmp_path / "saved_key"))
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    server = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[host_key], server_factory=_PasswordServer,
        sftp_factory=True, authorized_client_keys=authorized,
    )  # fmt: skip
    (tmp_path / "landing").mkdir()
    yield server.sockets[0].getsockname()[1], tmp_path
    server.close()
    await server.wait_closed()


@pytest.mark.asyncio
async def test_sftp_delivery_with_password(
    clock: ManualClock, session: aiohttp.ClientSession, sftp_server: tuple[int, Path]
) -> None:
    port, root = sftp_server
    landing = str(root / "landing")
    destination = {"type": "sftp", "server": "127.0.0.1", "port": str(port),
                   "username": "cordial", "password": "s3cret", "path": landing}  # fmt: skip
    body = {"name": "acts", "exportType": "csv", "destination": destination, **WINDOW,
            "showHeader": True, "limitRecordsPerFile": 20}  # fmt: skip
    async with CordialSim(clock=clock, provider=StaticRows(ROWS)) as sim:
        job = await _run_job(sim, session, clock, body)
    assert job["status"] == "Done", job
    files = sorted((root / "landing").iterdir())
    assert [path.name for path in files] == ["acts_1.csv", "acts_2.csv"]
    tables = [_csv_rows(path.read_bytes()) for path in files]
    assert [len(table) - 1 for table in tables] == [20, 5]
    assert tables[0][0] == ["cID", "email", "action", "time"]
    assert [row[0] for table in tables for row in table[1:]] == [row["cID"] for row in ROWS]


@pytest.mark.asyncio
async def test_sftp_delivery_with_a_saved_key_and_a_wrong_password(
    clock: ManualClock, session: aiohttp.ClientSession, sftp_server: tuple[int, Path]
) -> None:
    port, root = sftp_server
    base = {"type": "sftp", "server": "127.0.0.1", "port": port, "username": "cordial",
            "path": str(root / "landing")}  # fmt: skip
    saved = {**base, "savedKey": "myKeyName"}
    wrong = {**base, "password": "nope"}
    async with CordialSim(
        clock=clock, provider=StaticRows(ROWS), saved_keys={"myKeyName": root / "saved_key"}
    ) as sim:
        by_key = await _run_job(sim, session, clock, {"name": "keyed", "exportType": "json",
                                                      "destination": saved, **WINDOW})  # fmt: skip
        refused = await _run_job(sim, session, clock, {"name": "refused", "exportType": "csv",
                                                       "destination": wrong, **WINDOW})  # fmt: skip
    assert by_key["status"] == "Done", by_key
    assert len((root / "landing" / "keyed.json").read_bytes().splitlines()) == len(ROWS)
    assert refused["status"] == "Failed"
    assert "PermissionDenied" in refused["errorMessage"]
    assert not (root / "landing" / "refused.csv").exists()
