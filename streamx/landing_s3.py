"""An S3 landing zone: Cordial writes an export's files under an S3 prefix, streamx reads them.

The request's ``destination`` is what Cordial's export docs and OpenAPI subset describe for S3:
``type: "s3"``, ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_bucket``, ``aws_region``
and ``path``, the "folder" the files go to (``folder``, never ``/folder/``: Cordial joins
``path`` and the file name with a ``/``, and a trailing slash would give ``folder//file``). The
keys given to Cordial may differ from the ones streamx reads with (a write-only key for Cordial),
and the OpenAPI subset allows leaving them out when Cordial has an IAM role for the bucket.

Reading wraps :mod:`streamx.sources.s3`: the job's folder is listed page by page; each object is
streamed in ~1 MiB chunks, resumed with ``Range`` after a drop, and pinned to the ETag seen when
it was *listed*, so an object replaced between the listing and the read (or during it) is a
clear :class:`~streamx.engine.errors.ObjectChangedError`, never a mix of two versions.

Every name is checked before it is used: relative, no ``.``/``..``/empty segments, and inside the
zone's prefix. A listed key that breaks the rule is refused (a
:class:`~streamx.exceptions.PermanentError`), not skipped: the landing prefix belongs to streamx.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from streamx.config import LandingConfig
from streamx.exceptions import ConfigError, PermanentError
from streamx.landing import (
    CHUNK_SIZE,
    check_relative,
    checked_options,
    chunk_order,
    is_plain,
    retry_options,
)
from streamx.s3 import S3Config, open_client
from streamx.sources.s3 import S3Source, list_objects

if TYPE_CHECKING:
    from streamx.vendors.base import CallOptions

#: How many listed objects keep their ETag for pinning (older ones are pinned at first read).
PINNED_LIMIT = 10_000
#: Configuration keys and their TOML types (secrets arrive resolved from ``…_env``/``…_file``).
OPTION_TYPES: Mapping[str, tuple[type, ...]] = {
    "bucket": (str,),
    "region": (str,),
    "endpoint_url": (str,),
    "profile": (str,),
    "access_key_id": (str,),
    "secret_access_key": (str,),
    "session_token": (str,),
    "aws_access_key_id": (str,),
    "aws_secret_access_key": (str,),
    "cordial_iam_role": (bool,),
    "addressing_style": (str,),
    "max_attempts": (int,),
    "max_pool_connections": (int,),
    "connect_timeout": (int, float),
    "read_timeout": (int, float),
}
_S3_CONFIG_KEYS = (
    "endpoint_url",
    "region",
    "profile",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "addressing_style",
    "max_attempts",
    "max_pool_connections",
    "connect_timeout",
    "read_timeout",
)


class S3LandingZone:
    """The objects under ``s3://bucket/prefix``, as a :class:`~streamx.landing.LandingZone`.

    ``config`` is how streamx reaches S3 (its ``region`` is also Cordial's ``aws_region``).
    ``aws_access_key_id``/``aws_secret_access_key`` are the keys put in the request for Cordial
    to write with; give neither when Cordial has an IAM role for the bucket. Pass ``client`` to
    share an aioboto3 S3 client (the caller closes it); otherwise one is opened on first use.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "streamx",
        config: S3Config | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        client: Any | None = None,
        page_size: int = 1000,
    ) -> None:
        self._config = config or S3Config()
        if not bucket or "/" in bucket:
            raise ConfigError(f"S3 landing zone: invalid bucket name {bucket!r}")
        if not self._config.region:
            raise ConfigError("S3 landing zone: region is required (Cordial's aws_region)")
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            raise ConfigError(
                "S3 landing zone: give both aws_access_key_id and aws_secret_access_key, or"
                " neither (Cordial's IAM role)"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix and not is_plain(self.prefix):
            raise ConfigError(f"S3 landing zone: invalid prefix {prefix!r}")
        self.region: str = self._config.region
        self._writer_keys = (
            (aws_access_key_id, aws_secret_access_key)
            if aws_access_key_id is not None and aws_secret_access_key is not None
            else None
        )
        self._client = client
        self._owns_client = client is None
        self._page_size = page_size
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._etags: OrderedDict[str, str] = OrderedDict()

    def __repr__(self) -> str:
        return f"S3LandingZone({self.location(self.prefix)!r})"

    @classmethod
    def from_config(cls, config: LandingConfig) -> S3LandingZone:
        """The zone a ``type = "s3"`` landing table describes (keys: ``docs/configuration.md``)."""
        if config.dir is not None:
            raise ConfigError("s3 landing zone: use bucket and prefix, not dir")
        options = _checked(config.options)
        bucket = options.pop("bucket", None)
        if bucket is None:
            raise ConfigError("s3 landing zone: bucket is required")
        settings = {key: options.pop(key) for key in _S3_CONFIG_KEYS if key in options}
        key_id, secret = _writer_keys(options, settings)
        return cls(
            bucket,
            prefix=config.prefix,
            config=S3Config(**settings),
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    # -- the LandingZone protocol ---------------------------------------------------------

    def job_path(self, token: str) -> str:
        # A dot in the last segment would make Cordial take the path for a file name.
        if not token or "/" in token or "." in token:
            raise ValueError(f"invalid job token {token!r}")
        return f"{self.prefix}/{token}" if self.prefix else token

    def destination(self, path: str) -> dict[str, Any]:
        """Cordial's S3 destination writing ``<path>/<file>`` into the bucket."""
        self._check(path)
        destination: dict[str, Any] = {"type": "s3"}
        if self._writer_keys is not None:
            destination["aws_access_key_id"] = self._writer_keys[0]
            destination["aws_secret_access_key"] = self._writer_keys[1]
        destination.update(aws_bucket=self.bucket, aws_region=self.region, path=path)
        return destination

    async def prepare(self, path: str) -> None:
        """Nothing to do: S3 has no folders; Cordial creates the keys."""
        self._check(path)

    async def list_files(self, path: str) -> list[tuple[str, int]]:
        """The objects directly under ``path/`` (deeper keys belong to no job), chunk order."""
        self._check(path)
        client = await self._get_client()
        folder = f"{path}/"
        files: list[tuple[str, int]] = []
        async for item in list_objects(client, self.bucket, folder, page_size=self._page_size):
            if "/" in item.key[len(folder) :]:
                continue
            self._check(item.key)
            self._pin(item.key, item.etag)
            files.append((item.key, item.size))
        return sorted(files, key=lambda item: chunk_order(item[0]))

    async def open(
        self, name: str, offset: int = 0, options: CallOptions | None = None
    ) -> AsyncIterator[bytes]:
        """The object's bytes from ``offset``, pinned to the ETag it was listed with."""
        self._check(name)
        source = S3Source(
            await self._get_client(),
            self.bucket,
            name,
            chunk_size=CHUNK_SIZE,
            start_offset=offset,
            **retry_options(options),
            expected_etag=self._etags.get(name),
        )
        async with contextlib.aclosing(source.chunks()) as chunks:
            async for chunk in chunks:
                yield chunk

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{name}"

    async def close(self) -> None:
        await self._stack.aclose()
        if self._owns_client:
            self._client = None

    # -- internals ------------------------------------------------------------------------

    def _check(self, name: str) -> None:
        """Refuse a name that is not a plain relative key inside the zone's prefix."""
        check_relative(name)
        if self.prefix and not name.startswith(f"{self.prefix}/"):
            raise PermanentError(
                f"refusing landing path {name!r}: it is outside the zone's prefix {self.prefix!r}"
            )

    def _pin(self, key: str, etag: str) -> None:
        self._etags[key] = etag
        self._etags.move_to_end(key)
        while len(self._etags) > PINNED_LIMIT:
            self._etags.popitem(last=False)

    async def _get_client(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client = await self._stack.enter_async_context(open_client(self._config))
            return self._client


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with unknown keys and wrong TOML types refused."""
    return checked_options(options, OPTION_TYPES, "s3")


def _writer_keys(
    options: dict[str, Any], settings: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    """The keys Cordial writes with: its own, else streamx's, else none (IAM role)."""
    iam_role = options.pop("cordial_iam_role", False)
    key_id = options.pop("aws_access_key_id", None)
    secret = options.pop("aws_secret_access_key", None)
    if iam_role:
        if key_id is not None or secret is not None:
            raise ConfigError("s3 landing zone: cordial_iam_role excludes aws_access_key_id")
        return None, None
    if (key_id is None) != (secret is None):
        raise ConfigError(
            "s3 landing zone: give both aws_access_key_id and aws_secret_access_key_env (or"
            " _file) for Cordial, or neither"
        )
    if key_id is None:
        if "session_token" in settings:
            raise ConfigError(
                "s3 landing zone: streamx's keys are temporary (session_token) and cannot be"
                " given to Cordial: set aws_access_key_id and aws_secret_access_key_env"
            )
        key_id, secret = settings.get("access_key_id"), settings.get("secret_access_key")
    if key_id is None or secret is None:
        raise ConfigError(
            "s3 landing zone: Cordial needs keys to write: set aws_access_key_id and"
            " aws_secret_access_key_env (or access_key_id and secret_access_key_env, shared"
            " with streamx), or cordial_iam_role = true if Cordial has an IAM role"
        )
    return key_id, secret


__all__ = ["OPTION_TYPES", "PINNED_LIMIT", "S3LandingZone"]
