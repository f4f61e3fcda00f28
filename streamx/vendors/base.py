"""What the engine needs from a vendor, and the one HTTP helper every vendor client shares.

A vendor client does *single attempts*: each method makes its request(s) once and raises an error
from the streamx tree (transient or permanent) on failure. Retrying, backoff, deadlines and the
retry budget belong to the engine, which wraps every call in
:func:`~streamx.engine.retry.call_with_retries`; keeping them out of the clients means one policy
governs every vendor. The exception is the byte stream of a result file: it is resumable, so
:meth:`ResultFile.open` receives the export's :class:`CallOptions` and retries inside.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson

from streamx.engine.clock import Clock
from streamx.engine.errors import BODY_EXCERPT_LIMIT, classify_exception, classify_response
from streamx.engine.retry import RetryPolicy
from streamx.exceptions import PermanentError, StreamxError, TransientError
from streamx.redact import redact_text

if TYPE_CHECKING:
    from streamx.config import ExportSpec

#: API answers (JSON status documents, a URL) are small; anything larger is refused.
API_BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One poll's answer, in the engine's terms.

    ``state`` is the vendor's own word (``IN_PROGRESS``, ``Processing``…); ``done`` means the
    result can be fetched, ``failed`` that it never will be (``reason`` says why). ``progress``
    is a fraction in [0, 1] when the vendor reports one. ``totals`` is the number of source rows
    the finished job says it exported, set only when the vendor's count is trustworthy: the
    engine then requires ``rows_read == totals`` before it publishes.
    """

    state: str
    done: bool = False
    failed: bool = False
    progress: float | None = None
    totals: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How one export retries: its policy (deadline, budget), clock and random source."""

    policy: RetryPolicy
    clock: Clock
    rng: random.Random


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Engine settings every vendor client needs (from ``[engine]``)."""

    retry_after_cap: float = 300.0
    connect_timeout: float = 30.0
    read_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One file of a finished export. ``open(options)`` returns a fresh byte iterator each call
    (a restart starts from byte 0); ``name`` appears in the manifest, quarantine and errors."""

    name: str
    size: int | None
    open: Callable[[CallOptions], AsyncIterator[bytes]]


class VendorClient(Protocol):
    """One vendor account, as the engine drives it."""

    vendor: str
    account: str

    def check(self, spec: ExportSpec, stream: str) -> None:
        """Raise ConfigError if ``spec`` cannot be sent (bad period, missing timeframe…)."""
        ...

    def column_labels(self, spec: ExportSpec) -> dict[str, str]:
        """File label -> vendor field name, for the normalizer (Cordial ``columnHeaders``)."""
        ...

    async def start(self, spec: ExportSpec, stream: str) -> str:
        """Ask the vendor for the export; returns its id (batch id, job id)."""
        ...

    async def poll(self, remote_id: str) -> JobStatus:
        """The export's current status."""
        ...

    async def locate(self, remote_id: str) -> list[ResultFile]:
        """The finished export's files, in order."""
        ...

    async def close(self) -> None:
        """Release what the client owns (not the shared HTTP session)."""
        ...


class JobFailedError(PermanentError):
    """The vendor reports the export as failed; ``reason`` is its explanation."""

    def __init__(self, message: str, *, reason: str | None = None, **ids: str | None) -> None:
        super().__init__(redact_text(message), **ids)
        self.reason = reason


class TotalsMismatchError(PermanentError):
    """The rows read differ from the vendor's own count: files are missing or cut short."""


class MalformedResponseError(TransientError):
    """A vendor answer that is not what the API documents (not JSON, missing id…).

    Transient because proxies and load balancers produce such answers during incidents; the
    engine's attempt limit bounds the retries.
    """

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        account: str | None = None,
        export_id: str | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor, account=account, export_id=export_id)


class ApiClient:
    """Small JSON/text HTTP calls to one vendor API, mapped onto the error tree."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        vendor: str,
        account: str,
        clock: Clock,
        headers: Mapping[str, str] | None = None,
        rate_limit_default: float | None = None,
        retry_after_cap: float = 300.0,
    ) -> None:
        self.session = session
        self.vendor = vendor
        self.account = account
        self._clock = clock
        self._headers = dict(headers or {})
        self._rate_limit_default = rate_limit_default
        self._retry_after_cap = retry_after_cap

    def ids(self, export_id: str | None = None) -> dict[str, str | None]:
        """The context every error of this client carries."""
        return {"vendor": self.vendor, "account": self.account, "export_id": export_id}

    async def json(
        self,
        method: str,
        url: str,
        *,
        subject: str,
        export_id: str | None = None,
        body: Any = None,
    ) -> Any:
        """Send ``body`` as JSON (if given) and parse the JSON answer."""
        data = await self.request(
            method, url, subject=subject, export_id=export_id, body=body, accept="application/json"
        )
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            excerpt = redact_text(data[:200].decode("utf-8", "replace"))
            raise MalformedResponseError(
                f"{subject}: the answer is not JSON: {excerpt!r}", **self.ids(export_id)
            ) from None

    async def request(
        self,
        method: str,
        url: str,
        *,
        subject: str,
        accept: str,
        export_id: str | None = None,
        body: Any = None,
    ) -> bytes:
        """One request; the (bounded) body of a 2xx answer, else the classified error."""
        headers = {**self._headers, "Accept": accept}
        payload = None
        if body is not None:
            payload = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            async with self.session.request(
                method, url, data=payload, headers=headers, allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    excerpt = await _excerpt(response)
                    raise classify_response(
                        response.status,
                        response.headers,
                        excerpt,
                        url=url,
                        subject=subject,
                        now=self._clock.wall(),
                        retry_after_cap=self._retry_after_cap,
                        rate_limit_default=self._rate_limit_default,
                        **self.ids(export_id),
                    )
                return await _read_capped(response, API_BODY_LIMIT, strict=True)
        except StreamxError:
            raise
        except Exception as exc:
            mapped = classify_exception(exc, url=url, subject=subject, **self.ids(export_id))
            if mapped is None:
                raise
            raise mapped from mapped.__cause__


async def _excerpt(response: aiohttp.ClientResponse) -> bytes:
    """The start of an error body; a body that breaks off only loses the detail."""
    try:
        return await _read_capped(response, BODY_EXCERPT_LIMIT, strict=False)
    except (TimeoutError, aiohttp.ClientError):
        return b""


async def _read_capped(response: aiohttp.ClientResponse, limit: int, *, strict: bool) -> bytes:
    """Read at most ``limit`` bytes; with ``strict`` a longer body is an error."""
    data = bytearray()
    while len(data) <= limit:
        piece = await response.content.read(limit + 1 - len(data))
        if not piece:
            return bytes(data)
        data += piece
    if strict:
        raise MalformedResponseError(f"answer larger than {limit} bytes from {response.url.host}")
    return bytes(data[:limit])


def path_segment(remote_id: str) -> str:
    """``remote_id`` quoted as exactly one URL path segment.

    Ids come from the vendor's answers; quoting them keeps an id such as ``../../x`` from
    steering an authenticated request to another path of the vendor's host.
    """
    return quote(remote_id, safe="")


def text_field(value: Any) -> str | None:
    """A JSON id that may be a string or a number (never a bool); None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()
    return None


def count_field(value: Any) -> int | None:
    """A non-negative JSON integer (never a bool); None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


__all__ = [
    "API_BODY_LIMIT",
    "ApiClient",
    "CallOptions",
    "ClientSettings",
    "JobFailedError",
    "JobStatus",
    "MalformedResponseError",
    "ResultFile",
    "TotalsMismatchError",
    "VendorClient",
    "count_field",
    "text_field",
]
