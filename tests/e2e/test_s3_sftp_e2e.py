"""End to end through ``streamx.Engine`` with real servers on loopback: a simulated Cordial job
delivers its chunk files into an S3 landing zone (moto) and streamx publishes to SFTP (a real
OpenSSH sshd); and the reverse, Cordial delivers over SFTP and streamx publishes to S3 through the
S3 sink. The configuration is parsed from TOML-shaped data with secrets from the environment, as
docs/configuration.md documents it, so the simulator also checks that the destination objects
streamx sends are the ones Cordial's docs describe. Output equals, record for record, what the
seeded generator produced."""

from __future__ import annotations

import dataclasses
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ directory

from fixtures.servers import SSHServerInfo, moto_config

from streamx.config import Config, ExportSpec, parse_config
from streamx.engine.runner import ExportResult
from streamx.s3 import open_client
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START, FAST_ENGINE, SimHarness
from streamx.testing.seeded import SeededProvider, published_records

SPECS = [
    ExportSpec("activity", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END),
    ExportSpec(
        "contacts", "cor", "contacts", options={"lists": ["vip", "weekly"], "exportType": "csv"}
    ),
]
ROWS = 400
RECORDS_PER_FILE = 35  # 400 rows -> 12 chunk files per export
ENGINE = dataclasses.asdict(FAST_ENGINE)


@pytest_asyncio.fixture
async def s3(moto_endpoint: str) -> AsyncIterator[tuple[Any, str]]:
    async with open_client(moto_config(moto_endpoint)) as client:
        bucket = f"e2e-{uuid.uuid4().hex[:12]}"
        await client.create_bucket(Bucket=bucket)
        yield client, bucket


@pytest_asyncio.fixture
async def sims(tmp_path: Path, moto_endpoint: str) -> AsyncIterator[SimHarness]:
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    async with SimHarness(SeededProvider(rows=ROWS), directory=tmp_path) as harness:
        harness.cordial.s3_endpoint_url = moto_endpoint  # where "Cordial" reaches S3
        yield harness


def configure(
    sims: SimHarness, sshd: SSHServerInfo, landing: dict[str, Any], output: dict[str, Any]
) -> Config:
    """A configuration as the TOML file would hold it; every secret comes from the environment."""
    raw = {
        "engine": {  # TOML has no null: unset keys are left out
            key: value for key, value in ENGINE.items() if value is not None
        },
        "output": output,
        "accounts": {
            "cor": {
                "vendor": "cordial",
                "api_key_env": "CORDIAL_KEY",
                "base_url": sims.cordial.base_url,
                "records_per_file": RECORDS_PER_FILE,
                "landing": landing,
            }
        },
    }
    env = {
        "CORDIAL_KEY": sims.cordial.api_key,
        "S3_SECRET": "testing",
        "S3_WRITER_SECRET": "writer-secret",
        "SFTP_PASSWORD": sshd.password,
    }
    return parse_config(raw, env=env)


def s3_keys(moto_endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": moto_endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key_env": "S3_SECRET",
    }


def ssh_login(sshd: SSHServerInfo) -> dict[str, Any]:
    return {"password_env": "SFTP_PASSWORD", "known_hosts": sshd.known_hosts}


def assert_exact(
    sims: SimHarness, result: ExportResult, config: Config, published: list[dict[str, Any]]
) -> None:
    assert result.ok, f"{result.name} failed: {result.error}"
    expected = sims.expected(result, config)
    assert len(published) == len(expected) == result.records > 0
    assert published == expected
    assert result.rows_quarantined == 0
    assert result.files == -(-ROWS // RECORDS_PER_FILE)  # every chunk file, in order


@pytest.mark.asyncio
async def test_cordial_delivers_to_s3_and_streamx_publishes_to_sftp(
    sims: SimHarness,
    moto_endpoint: str,
    s3: tuple[Any, str],
    sshd: SSHServerInfo,
    sftp_root: Path,
) -> None:
    client, bucket = s3
    landing = {
        "type": "s3",
        "bucket": bucket,
        "prefix": "cordial/in",
        **s3_keys(moto_endpoint),
        "aws_access_key_id": "AKIAWRITER",  # Cordial's own key (moto accepts any)
        "aws_secret_access_key_env": "S3_WRITER_SECRET",
    }
    output = {
        "url": f"sftp://{sshd.username}@127.0.0.1:{sshd.port}{sftp_root}/out",
        "sink": ssh_login(sshd),
    }
    config = configure(sims, sshd, landing, output)
    results = await sims.run(SPECS, config)
    for result in results:
        assert result.manifest is not None, result.error
        published = list(published_records(sftp_root / "out", result.manifest))
        assert_exact(sims, result, config, published)
    landed = await client.list_objects_v2(Bucket=bucket)
    keys = [item["Key"] for item in landed["Contents"]]
    assert len(keys) == sum(result.files for result in results)
    assert all(key.startswith("cordial/in/") and "//" not in key for key in keys)
    assert list((sftp_root / "out").rglob(".*")) == []  # every temp name was renamed into place


@pytest.mark.asyncio
@pytest.mark.parametrize("login", ["password", "saved_key"])
async def test_cordial_delivers_over_sftp_and_streamx_publishes_to_s3(
    sims: SimHarness,
    moto_endpoint: str,
    s3: tuple[Any, str],
    sshd: SSHServerInfo,
    sftp_root: Path,
    tmp_path: Path,
    login: str,
) -> None:
    client, bucket = s3
    landing = {
        "type": "sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": sshd.username,
        "path": f"{sftp_root}/landing",
        "known_hosts": sshd.known_hosts,
    }
    if login == "password":
        landing["password_env"] = "SFTP_PASSWORD"  # for streamx and Cordial alike
    else:  # no password anywhere: streamx logs in with its key, Cordial with a saved key
        sims.cordial.saved_keys = {"streamx-landing": sshd.client_key}
        landing.update(client_keys=[sshd.client_key], saved_key="streamx-landing")
    output = {"url": f"s3://{bucket}/exports", "sink": s3_keys(moto_endpoint)}
    config = configure(sims, sshd, landing, output)
    results = await sims.run(SPECS, config)
    download = tmp_path / "downloaded"
    for result in results:
        assert result.manifest is not None, result.error
        for part in result.manifest.parts:
            answer = await client.get_object(Bucket=bucket, Key=f"exports/{part.path}")
            target = download / part.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(await answer["Body"].read())
        published = list(published_records(download, result.manifest))
        assert_exact(sims, result, config, published)
    jobs = list((sftp_root / "landing" / "streamx").iterdir())
    assert len(jobs) == len(SPECS)  # one fresh folder per job, made by streamx before it ran
    assert sum(len(list(job.iterdir())) for job in jobs) == sum(r.files for r in results)
    uploads = await client.list_multipart_uploads(Bucket=bucket)
    assert uploads.get("Uploads", []) == []
