"""One place that knows how streamx talks to S3: credentials, endpoint, retries, error mapping.

Both the S3 sink and the S3 landing-zone source open their aioboto3 client here, so every S3
call streamx makes uses the same settings: an explicit ``endpoint_url`` (MinIO, moto, a VPC
endpoint) or AWS itself, a region, and credentials from a named profile, from explicit keys, or
from boto's usual chain (environment, instance role) when neither is given. botocore's
``standard`` retry mode retries throttling, 5xx and connection errors of each *request* with
backoff; what it cannot fix surfaces once, mapped here onto the streamx exception tree.

Secrets never appear in ``repr`` or in any message built here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from botocore import exceptions as boto_errors  # type: ignore[import-untyped]

from streamx.engine.errors import (
    IncompleteBodyError,
    NetworkError,
    NetworkTimeoutError,
    classify_exception,
    classify_response,
)
from streamx.exceptions import ConfigError, PermanentError, StreamxError

#: S3 refuses parts smaller than this (except the last part of an upload).
MIN_PART_SIZE = 5 * 1024 * 1024
#: S3 refuses parts larger than this.
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
#: S3 numbers parts 1..10000.
MAX_PARTS = 10_000


@dataclass(frozen=True)
class S3Config:
    """How to reach S3. Every field is optional: boto's defaults fill the gaps.

    ``profile`` names a section of ``~/.aws/config``; ``access_key_id``/``secret_access_key``
    (and ``session_token``) are explicit keys and win over the profile. ``max_attempts`` is
    botocore's per-request attempt limit in ``standard`` retry mode.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_attempts: int = 5
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    max_pool_connections: int = 16
    #: ``"path"`` or ``"virtual"``; None lets botocore choose (path-style for IP endpoints).
    addressing_style: str | None = None

    def __post_init__(self) -> None:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError("S3: give both access_key_id and secret_access_key, or neither")
        if self.max_attempts < 1:
            raise ConfigError(f"S3: max_attempts must be >= 1, got {self.max_attempts}")
        if self.addressing_style not in (None, "path", "virtual", "auto"):
            raise ConfigError(f"S3: unknown addressing_style {self.addressing_style!r}")


def client_config(config: S3Config) -> Any:
    """The botocore client configuration: ``standard`` retries, timeouts, pool size."""
    s3_options = {"addressing_style": config.addressing_style} if config.addressing_style else {}
    return AioConfig(
        # total_max_attempts counts the first try; botocore's max_attempts counts only retries
        retries={"mode": "standard", "total_max_attempts": config.max_attempts},
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_pool_connections=config.max_pool_connections,
        s3=s3_options or None,
    )


@contextlib.asynccontextmanager
async def open_client(config: S3Config) -> AsyncIterator[Any]:
    """An aioboto3 S3 client for ``config``; closed when the block ends."""
    import aioboto3  # heavy import: paid only by runs that actually use S3

    session = aioboto3.Session(
        profile_name=config.profile,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        aws_session_token=config.session_token,
        region_name=config.region,
    )
    async with session.client(
        "s3", endpoint_url=config.endpoint_url, config=client_config(config)
    ) as client:
        yield client


def error_code(exc: BaseException) -> str | None:
    """S3's error code (``NoSuchKey``, ``PreconditionFailed``...) of a ClientError, else None."""
    if isinstance(exc, boto_errors.ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def error_status(exc: BaseException) -> int | None:
    """The HTTP status of a ClientError, else None."""
    if isinstance(exc, boto_errors.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def describe(exc: BaseException) -> str:
    """A one-line reason for an S3 failure, without request ids or secrets."""
    if isinstance(exc, boto_errors.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "error"), error.get("Message", "")
        return f"{code}: {message}" if message else str(code)
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def classify(exc: BaseException, *, subject: str) -> StreamxError | None:
    """Map an S3 failure onto the streamx tree (transient or permanent), else None.

    HTTP answers go through :func:`~streamx.engine.errors.classify_response` (5xx/429
    transient, 403 auth, 412 object changed...); a body that broke off or timed out is a
    transient :class:`IncompleteBodyError`/:class:`NetworkError`, so a reader resumes.
    """
    if isinstance(exc, StreamxError):
        return exc
    if isinstance(exc, boto_errors.ClientError):
        status = error_status(exc) or 0
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return classify_response(
            status, headers, describe(exc), subject=subject, vendor=None, account=None,
            export_id=None,
        )  # fmt: skip
    text = f"{subject}: {describe(exc)}"
    if isinstance(
        exc,
        boto_errors.IncompleteReadError
        | boto_errors.ResponseStreamingError
        | aiohttp.ClientPayloadError,
    ):
        return IncompleteBodyError(text)
    if isinstance(exc, boto_errors.ReadTimeoutError):
        return NetworkTimeoutError(text)
    if isinstance(exc, (boto_errors.ConnectionError, boto_errors.HTTPClientError)):
        return NetworkError(text)
    mapped = classify_exception(exc, subject=subject)
    if mapped is None and isinstance(exc, boto_errors.BotoCoreError):
        return PermanentError(text)  # e.g. no credentials, a bad parameter: retrying won't help
    return mapped


__all__ = [
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "S3Config",
    "classify",
    "client_config",
    "describe",
    "error_code",
    "error_status",
    "open_client",
]
