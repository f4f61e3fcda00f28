"""open_sink: one URL -> the right sink, options checked, secrets kept out of URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamx.exceptions import ConfigError
from streamx.s3 import S3Config
from streamx.sinks.local import LocalSink
from streamx.sinks.registry import SINKS, open_sink, scheme
from streamx.sinks.s3 import S3Sink
from streamx.sinks.sftp import SFTPSink


def test_schemes_are_detected() -> None:
    assert set(SINKS) == {"file", "s3", "sftp"}
    assert [scheme(url) for url in ("/a", "rel/dir", "file:///a", "S3://b", "sftp://h/x")] == [
        "file",
        "file",
        "file",
        "s3",
        "sftp",
    ]


@pytest.mark.asyncio
async def test_local_paths_and_file_urls(tmp_path: Path) -> None:
    for url in (str(tmp_path / "plain"), f"file://{tmp_path}/url", f"file:{tmp_path}/short"):
        sink = open_sink(url)
        assert isinstance(sink, LocalSink)
        upload = await sink.open("x/y.txt")
        await upload.write(b"hi")
        await upload.commit()
        await sink.close()
    assert (tmp_path / "plain" / "x" / "y.txt").read_bytes() == b"hi"
    assert (tmp_path / "url" / "x" / "y.txt").read_bytes() == b"hi"
    assert (tmp_path / "short" / "x" / "y.txt").read_bytes() == b"hi"
    with pytest.raises(ConfigError, match="not a local file URL"):
        open_sink("file://otherhost/data")
    with pytest.raises(ConfigError, match="local sink"):
        open_sink(str(tmp_path), part_size=1)


@pytest.mark.asyncio
async def test_s3_url_with_settings(s3_config: S3Config, s3_client: Any, bucket: str) -> None:
    sink = open_sink(
        f"s3://{bucket}/exports/",
        endpoint_url=s3_config.endpoint_url,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        part_size=6 * 1024 * 1024,
    )
    assert isinstance(sink, S3Sink)
    assert sink.location("a.json") == f"s3://{bucket}/exports/a.json"
    upload = await sink.open("a.json")
    await upload.write(b"{}")
    await upload.commit()
    await sink.close()
    answer = await s3_client.get_object(Bucket=bucket, Key="exports/a.json")
    assert await answer["Body"].read() == b"{}"


def test_sftp_urls_are_parsed() -> None:
    sink = open_sink("sftp://etl@files.example.com:2222/srv/landing/", password="pw")
    assert isinstance(sink, SFTPSink)
    assert (sink.config.username, sink.config.host, sink.config.port) == (
        "etl",
        "files.example.com",
        2222,
    )
    assert sink.root == "/srv/landing"
    assert sink.location("a/b.csv") == "sftp://etl@files.example.com:2222/srv/landing/a/b.csv"
    assert "pw" not in repr(sink.config)
    home = open_sink("sftp://etl@host/~/out", client_keys=["/keys/id"])
    assert isinstance(home, SFTPSink)
    assert home.root == "out"
    assert home.config.port == 22 and home.config.client_keys == ("/keys/id",)
    assert home.location("x") == "sftp://etl@host:22/~/out/x"


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("ftp://host/x", {}, "no sink for 'ftp'"),
        ("sftp://etl:secret@host/x", {}, "must not contain a password"),
        ("sftp://etl@host/x", {"colour": "blue"}, "SFTP sink"),
        ("sftp://etl@host/x", {"host_key": "not a key"}, "host_key must be"),
        ("s3://bucket/x?versioning=1", {}, "not an S3 sink URL"),
        ("s3://bucket/x", {"part_size": 1024}, "part_size"),
        ("s3://bucket/x", {"colour": "blue"}, "S3 sink"),
    ],
)
def test_bad_urls_and_options_are_config_errors(
    url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        open_sink(url, **options)
    assert "secret" not in str(info.value)
