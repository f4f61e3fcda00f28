"""A tiny S3-like object store serving presigned (query-string auth, signature v2) URLs.

Symplify hands out result URLs such as
``https://carma-filetransfer.s3-eu-west-1.amazonaws.com/result/5004/3232465_result.json?Expires=
1403187484&AWSAccessKeyId=AKIA...&Signature=FWZp8...%3D``. moto does not enforce expiry or
signatures, so this store exists to make the behaviour streamx must handle real:

- ``Expires`` is enforced: 403 ``AccessDenied`` / "Request has expired" (S3's XML body);
- the HMAC-SHA1 signature over ``VERB\\n\\n\\nExpires\\n/bucket/key`` is enforced: 403
  ``SignatureDoesNotMatch`` on any tampering. As on S3 the verb is signed, so a URL presigned for
  GET is rejected for HEAD (presign with ``method="HEAD"`` to HEAD an object);
- ``Range: bytes=N-``, ``N-M`` and ``-N`` give 206 with ``Content-Range`` (416 when unsatisfiable);
- ``ETag`` is the MD5 of the content; ``If-Match`` mismatch gives 412, ``If-None-Match`` 304;
- bodies are streamed from a file on disk, and :meth:`ObjectStore.put_chunks` writes that file
  from a chunk generator, so object size never costs memory.

The whole server is one bucket (path-style keys on 127.0.0.1). Fault knobs apply on the
``objectstore.get`` route, for the account the object was stored for.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web

from streamx.testing.clock import Clock, SystemClock
from streamx.testing.faults import (
    ROUTE_OBJECT_GET,
    AppServer,
    FaultPlan,
    Faults,
    before_response,
    http_date,
    send_body,
)

DEFAULT_BUCKET = "carma-filetransfer"
DEFAULT_ACCESS_KEY_ID = "AKIASTREAMXSIMULATOR"
DEFAULT_SECRET_ACCESS_KEY = "streamx-simulator-secret-access-key"
#: Body bytes read from disk and written per step. 1 MiB, not 256 KiB: each write waits for the
#: transport to drain, and on a busy machine those round trips halved loopback throughput.
_READ_CHUNK = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_S3_ERRORS = {
    404: ("NoSuchKey", "The specified key does not exist."),
    412: ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold"),
    416: ("InvalidRange", "The requested range is not satisfiable"),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object: its bytes live in ``path``; ``etag`` is the quoted MD5 hex of them."""

    key: str
    path: Path
    size: int
    etag: str
    last_modified: float
    content_type: str
    account: str | None


class ObjectStore(AppServer):
    """The presigned-URL object store (an in-process aiohttp server on loopback)."""

    def __init__(
        self,
        *,
        bucket: str = DEFAULT_BUCKET,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        clock: Clock | None = None,
        faults: FaultPlan | None = None,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.clock: Clock = clock or SystemClock()
        self.faults = faults or FaultPlan()
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="streamx-objectstore-"))
        self._objects: dict[str, StoredObject] = {}

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{key:.+}", self._handle)
        app.router.add_route("HEAD", "/{key:.+}", self._handle)
        return app

    async def stop(self) -> None:
        await super().stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- objects (blocking: call from a thread for large objects) --------------------------------

    def put_chunks(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        account: str | None = None,
    ) -> StoredObject:
        """Store (or replace) ``key`` from a chunk stream, writing it to disk as it comes.

        Replacing changes the ETag when the content changes; downloads already in flight keep
        reading the old bytes (as S3 readers do)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / uuid.uuid4().hex
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with path.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        stored = StoredObject(
            key, path, size, f'"{digest.hexdigest()}"', self.clock.wall(), content_type, account
        )
        previous = self._objects.get(key)
        self._objects[key] = stored
        if previous is not None:
            previous.path.unlink(missing_ok=True)
        return stored

    def put_bytes(self, key: str, data: bytes, **options: Any) -> StoredObject:
        """Store small content (tests)."""
        return self.put_chunks(key, (data,), **options)

    def get(self, key: str) -> StoredObject | None:
        return self._objects.get(key)

    def delete(self, key: str) -> None:
        stored = self._objects.pop(key, None)
        if stored is not None:
            stored.path.unlink(missing_ok=True)

    # --- URLs ------------------------------------------------------------------------------------

    def string_to_sign(self, method: str, expires: int | str, key: str) -> str:
        """S3 signature v2 for query-string auth (no Content-MD5, Content-Type or x-amz-*)."""
        return f"{method}\n\n\n{expires}\n/{self.bucket}/{key}"

    def sign(self, method: str, expires: int | str, key: str) -> str:
        mac = hmac.new(
            self.secret_access_key.encode(),
            self.string_to_sign(method, expires, key).encode(),
            hashlib.sha1,
        )
        return base64.b64encode(mac.digest()).decode()

    def presign(
        self,
        key: str,
        *,
        expires_in: float = 3600.0,
        method: str = "GET",
        expires_at: int | None = None,
    ) -> str:
        """A presigned URL for ``key`` valid ``expires_in`` seconds (or until ``expires_at``)."""
        expires = int(self.clock.wall() + expires_in) if expires_at is None else expires_at
        signature = quote(self.sign(method, expires, key), safe="")
        return (
            f"{self.base_url}/{quote(key)}?Expires={expires}"
            f"&AWSAccessKeyId={quote(self.access_key_id, safe='')}&Signature={signature}"
        )

    # --- HTTP ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        stored = self._objects.get(key)
        faults = self.faults.take(ROUTE_OBJECT_GET, stored.account if stored else None)
        early = await before_response(faults, lambda status: s3_error(status))
        if early is not None:
            return early
        denied = self._authorize(request, key, faults)
        if denied is not None:
            return denied
        if stored is None:
            return s3_error(404, Key=key)
        return await self._serve(request, stored, faults)

    def _authorize(self, request: web.Request, key: str, faults: Faults) -> web.Response | None:
        query = request.query
        if not all(name in query for name in ("Expires", "AWSAccessKeyId", "Signature")):
            return s3_error(
                403,
                code="AccessDenied",
                message="Query-string authentication requires the Signature, Expires and "
                "AWSAccessKeyId parameters",
            )
        if query["AWSAccessKeyId"] != self.access_key_id:
            return s3_error(
                403,
                code="InvalidAccessKeyId",
                message="The AWS Access Key Id you provided does not exist in our records.",
                AWSAccessKeyId=query["AWSAccessKeyId"],
            )
        expires = query["Expires"]
        now = self.clock.wall()
        if faults.expire_url or not expires.isdigit() or int(expires) < now:
            return s3_error(
                403,
                code="AccessDenied",
                message="Request has expired",
                Expires=_iso(int(expires) if expires.isdigit() else 0),
                ServerTime=_iso(now),
            )
        expected = self.sign(request.method, expires, key)
        if not hmac.compare_digest(expected, query["Signature"]):
            return s3_error(
                403,
                code="SignatureDoesNotMatch",
                message="The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                AWSAccessKeyId=self.access_key_id,
                StringToSign=self.string_to_sign(request.method, expires, key),
                SignatureProvided=query["Signature"],
            )
        return None

    async def _serve(
        self, request: web.Request, stored: StoredObject, faults: Faults
    ) -> web.StreamResponse:
        precondition = _precondition(request, stored)
        if precondition == 304:
            return web.Response(status=304, headers=_object_headers(stored))
        if precondition == 412:
            return s3_error(412, Condition="If-Match")
        try:
            span = _parse_range(request.headers.get("Range"), stored.size)
        except _Unsatisfiable:
            error = s3_error(416, RangeRequested=request.headers.get("Range", ""))
            error.headers["Content-Range"] = f"bytes */{stored.size}"
            return error
        start, end = span or (0, stored.size - 1)
        response = web.StreamResponse(status=206 if span else 200, headers=_object_headers(stored))
        if span:
            response.headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
        length = max(0, end + 1 - start)
        with stored.path.open("rb") as handle:  # closed even when a fault cuts the body short
            handle.seek(start)
            return await send_body(request, response, _read(handle, length), length, faults)


class _Unsatisfiable(Exception):
    """The Range starts beyond the object (416)."""


def s3_error(
    status: int, *, code: str | None = None, message: str | None = None, **extra: str
) -> web.Response:
    """An S3-style XML error response."""
    default_code, default_message = _S3_ERRORS.get(status, ("ServiceUnavailable", "Error"))
    fields = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code or default_code}</Code>"
        f"<Message>{escape(message or default_message)}</Message>{fields}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>"
        f"<HostId>streamx-simulator</HostId></Error>"
    )
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


def _object_headers(stored: StoredObject) -> dict[str, str]:
    return {
        "ETag": stored.etag,
        "Last-Modified": http_date(stored.last_modified),
        "Accept-Ranges": "bytes",
        "Content-Type": stored.content_type,
        "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
    }


def _precondition(request: web.Request, stored: StoredObject) -> int | None:
    """S3's conditional GET: 412 for a failed If-Match, 304 for a matching If-None-Match."""
    if_match = request.headers.get("If-Match")
    if if_match is not None and not _etag_matches(if_match, stored.etag):
        return 412
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _etag_matches(if_none_match, stored.etag):
        return 304
    return None


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates or etag.strip('"') in candidates


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive, or ``None`` to serve the whole object (no header, or one S3
    ignores: malformed or several ranges). Raises :class:`_Unsatisfiable` for a 416."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        if int(last) == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, size - 1 if last == "" else min(int(last), size - 1)


def _read(handle: BinaryIO, length: int) -> Iterator[bytes]:
    """``length`` bytes from the handle's position, in bounded chunks."""
    while length > 0:
        chunk = handle.read(min(_READ_CHUNK, length))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["DEFAULT_BUCKET", "ObjectStore", "StoredObject", "s3_error"]
