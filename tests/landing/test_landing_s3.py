"""The S3 landing zone against a real moto server: Cordial's destination object, listing a
job's folder page by page in chunk order, reads from an offset pinned to the listed ETag, and
names that must stay inside the prefix; plus its configuration keys."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from streamx.config import parse_config
from streamx.engine.errors import ObjectChangedError
from streamx.exceptions import ConfigError, PermanentError
from streamx.landing import open_landing_zone
from streamx.landing_s3 import S3LandingZone
from streamx.s3 import S3Config

MiB = 1 << 20
DATA = os.urandom(3 * MiB + 17)
WRITER = {"aws_access_key_id": "AKIAWRITER", "aws_secret_access_key": "writer-secret"}


@pytest_asyncio.fixture
async def zone(s3_config: S3Config, bucket: str) -> AsyncIterator[S3LandingZone]:
    zone = S3LandingZone(bucket, prefix="landing", config=s3_config, page_size=5, **WRITER)
    yield zone
    await zone.close()


async def read(zone: S3LandingZone, name: str, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in zone.open(name, offset)])


def test_destination_is_cordials_s3_object(s3_config: S3Config) -> None:
    zone = S3LandingZone("my_bucket", prefix="/landing/", config=s3_config, **WRITER)
    path = zone.job_path("0a1b")
    assert path == "landing/0a1b"
    assert zone.destination(path) == {
        "type": "s3",
        "aws_access_key_id": "AKIAWRITER",
        "aws_secret_access_key": "writer-secret",
        "aws_bucket": "my_bucket",
        "aws_region": "us-east-1",
        "path": "landing/0a1b",  # "folder", never "/folder/" (Cordial would write folder//x)
    }
    assert zone.location("landing/0a1b/x_1.json.gz") == "s3://my_bucket/landing/0a1b/x_1.json.gz"
    assert "writer-secret" not in repr(zone)
    iam = S3LandingZone("my_bucket", config=s3_config)
    assert iam.destination("streamx/t") == {
        "type": "s3",
        "aws_bucket": "my_bucket",
        "aws_region": "us-east-1",
        "path": "streamx/t",
    }


@pytest.mark.asyncio
async def test_lists_the_jobs_files_page_by_page_in_chunk_order(
    zone: S3LandingZone, s3_client: Any, bucket: str
) -> None:
    path = zone.job_path("abc")
    await zone.prepare(path)
    assert await zone.list_files(path) == []  # nothing yet: not an error
    for number in (3, 12, 1, 10, 2, 11, 4, 5, 6, 7, 8, 9):
        key = f"{path}/streamx-abc_{number}.json.gz"
        await s3_client.put_object(Bucket=bucket, Key=key, Body=b"x" * number)
    for other in ("landing/abcdef/streamx-abcdef_1.json.gz", f"{path}/sub/deeper.json", f"{path}/"):
        await s3_client.put_object(Bucket=bucket, Key=other, Body=b"not this job's")
    assert await zone.list_files(path) == [
        (f"{path}/streamx-abc_{number}.json.gz", number) for number in range(1, 13)
    ]


@pytest.mark.asyncio
async def test_reads_an_object_whole_or_from_an_offset(
    zone: S3LandingZone, s3_client: Any, bucket: str
) -> None:
    await s3_client.put_object(Bucket=bucket, Key="landing/j/f_1.csv", Body=DATA)
    (listed,) = await zone.list_files("landing/j")
    assert listed == ("landing/j/f_1.csv", len(DATA))
    assert await read(zone, "landing/j/f_1.csv") == DATA
    for offset in (1, 2 * MiB + 3, len(DATA)):
        assert await read(zone, "landing/j/f_1.csv", offset) == DATA[offset:]


@pytest.mark.asyncio
async def test_an_object_replaced_after_listing_is_refused(
    zone: S3LandingZone, s3_client: Any, bucket: str
) -> None:
    await s3_client.put_object(Bucket=bucket, Key="landing/j/f_1.csv", Body=DATA)
    await zone.list_files("landing/j")
    await s3_client.put_object(Bucket=bucket, Key="landing/j/f_1.csv", Body=DATA[:100])
    with pytest.raises(ObjectChangedError, match=r"PreconditionFailed.*object changed"):
        await read(zone, "landing/j/f_1.csv")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "name",
    [
        "../landing/j/x",
        "/landing/j/x",
        "elsewhere/j/x",
        "landing/../j/x",
        "landing/j/../../x",
        "landing//x",
        "landing/./x",
        "landing\\j\\x",
        "landing",
        "",
    ],
)
async def test_names_outside_the_prefix_are_refused(zone: S3LandingZone, name: str) -> None:
    with pytest.raises(PermanentError, match="refusing landing path"):
        await read(zone, name)
    with pytest.raises(PermanentError, match="refusing landing path"):
        await zone.list_files(name)
    with pytest.raises(PermanentError, match="refusing landing path"):
        zone.destination(name)


@pytest.mark.asyncio
async def test_a_listed_dot_dot_key_is_refused(
    zone: S3LandingZone, s3_client: Any, bucket: str
) -> None:
    await s3_client.put_object(Bucket=bucket, Key="landing/j/..", Body=b"sneaky")
    with pytest.raises(PermanentError, match=r"'landing/j/\.\.'"):
        await zone.list_files("landing/j")


@pytest.mark.asyncio
async def test_a_missing_bucket_is_a_clear_permanent_error(s3_config: S3Config) -> None:
    zone = S3LandingZone("no-such-bucket-here", prefix="landing", config=s3_config, **WRITER)
    try:
        with pytest.raises(PermanentError, match="NoSuchBucket"):
            await zone.list_files("landing/j")
    finally:
        await zone.close()


# -- configuration ------------------------------------------------------------------------

ENV = {"CORDIAL_KEY": "api", "READ_SECRET": "read-secret", "WRITE_SECRET": "write-secret"}


def landing_zone(**landing: Any) -> Any:
    raw = {
        "accounts": {
            "us": {
                "vendor": "cordial",
                "api_key_env": "CORDIAL_KEY",
                "landing": {"type": "s3", **landing},
            }
        }
    }
    config = parse_config(raw, env=ENV)
    landing_config = config.accounts["us"].landing
    assert landing_config is not None
    return open_landing_zone(landing_config)


BASE = {"bucket": "acme-landing", "region": "us-west-2", "prefix": "cordial/in"}
READ_KEYS = {"access_key_id": "AKIAREAD", "secret_access_key_env": "READ_SECRET"}


def test_configuration_keys_and_secrets_from_the_environment() -> None:
    zone = landing_zone(
        **BASE,
        **READ_KEYS,
        aws_access_key_id="AKIAWRITE",
        aws_secret_access_key_env="WRITE_SECRET",
        endpoint_url="http://127.0.0.1:9",
        max_attempts=3,
        read_timeout=5,
    )
    assert isinstance(zone, S3LandingZone)
    assert zone.destination(zone.job_path("t")) == {
        "type": "s3",
        "aws_access_key_id": "AKIAWRITE",
        "aws_secret_access_key": "write-secret",
        "aws_bucket": "acme-landing",
        "aws_region": "us-west-2",
        "path": "cordial/in/t",
    }
    shared = landing_zone(**BASE, **READ_KEYS)  # Cordial writes with streamx's own keys
    destination = shared.destination("cordial/in/t")
    assert (destination["aws_access_key_id"], destination["aws_secret_access_key"]) == (
        "AKIAREAD",
        "read-secret",
    )
    iam = landing_zone(**BASE, profile="reader", cordial_iam_role=True)
    assert "aws_access_key_id" not in iam.destination("cordial/in/t")


@pytest.mark.parametrize(
    ("landing", "message"),
    [
        ({"region": "us-west-2", **READ_KEYS}, "bucket is required"),
        ({"bucket": "b", **READ_KEYS}, "region is required"),
        ({**BASE, **READ_KEYS, "dir": "x"}, "not dir"),
        ({**BASE, **READ_KEYS, "buckets": "x"}, r"unknown key\(s\) buckets"),
        ({**BASE, **READ_KEYS, "max_attempts": "3"}, "max_attempts must be int"),
        ({**BASE, **READ_KEYS, "cordial_iam_role": "yes"}, "cordial_iam_role must be bool"),
        ({**BASE, "secret_access_key": "plain"}, "secret in clear text"),
        ({**BASE, "aws_secret_access_key": "plain"}, "secret in clear text"),
        ({**BASE, "profile": "p"}, "Cordial needs keys to write"),
        ({**BASE, "aws_access_key_id": "A"}, "give both aws_access_key_id"),
        ({**BASE, **READ_KEYS, "session_token_env": "READ_SECRET"}, "temporary"),
        ({**BASE, **READ_KEYS, "cordial_iam_role": True, "aws_access_key_id": "A"}, "excludes"),
        ({**BASE, "bucket": "a/b", **READ_KEYS}, "invalid bucket"),
        ({**BASE, **READ_KEYS, "prefix": "in/../out"}, "invalid prefix"),
    ],
)
def test_configuration_errors_name_the_problem(landing: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        landing_zone(**landing)
