"""Specific engine errors, and the mapping from HTTP answers and network failures onto them.

The base tree lives in :mod:`streamx.exceptions`; this module adds the leaves the engine raises
and decides, in one place, which failures are worth a retry:

* transient (retried with backoff): 429 (:class:`RateLimitedError`), 5xx and 408
  (:class:`ServerError`), connection errors and socket timeouts (:class:`NetworkError`,
  :class:`NetworkTimeoutError`), a body cut short (:class:`IncompleteBodyError`), an expired
  presigned URL (:class:`UrlExpiredError`, fixed by asking the vendor for a new URL);
* permanent: 401/403 (:class:`AuthError`), other 4xx (:class:`RequestRejectedError`, with the
  vendor's error body summarized), 412 (:class:`ObjectChangedError`), a TLS certificate that does
  not verify (:class:`TLSVerificationError`), and the retry machinery giving up
  (:class:`DeadlineExceededError`, :class:`RetryBudgetExhaustedError`).

Every message is passed through :func:`streamx.redact.redact_text` and every URL stored on an
error is redacted, so no presigned signature survives into a log line.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from streamx.exceptions import PermanentError, StreamxError, TransientError
from streamx.redact import redact_text, redact_url

#: Bytes of an error body worth reading: enough for any vendor's JSON or S3's XML error.
BODY_EXCERPT_LIMIT = 4096
_SUMMARY_LIMIT = 300
_EXPIRED_MARKERS = ("request has expired", "expiredtoken", "token has expired")
_SECONDS_RE = re.compile(r"-?\d+(?:\.\d+)?")


class HTTPStatusError(StreamxError):
    """Base of errors derived from an HTTP answer: carries ``status`` and a redacted ``url``."""

    def __init__(
        self, message: str, *, status: int | None = None, url: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(redact_text(message), **kwargs)
        self.status = status
        self.url = redact_url(url) if url else None


class TransientHTTPError(HTTPStatusError, TransientError):
    """An HTTP answer that a later retry may turn into a success."""


class PermanentHTTPError(HTTPStatusError, PermanentError):
    """An HTTP answer that no retry will change."""


class RateLimitedError(TransientHTTPError):
    """429: too many requests. ``retry_after`` is the server's wish (or the vendor's default)."""


class ServerError(TransientHTTPError):
    """5xx (and 408): the server failed or timed out on its side."""


class UrlExpiredError(TransientHTTPError):
    """A presigned URL is past its expiry: fetch a fresh URL and resume at the same offset."""


class AuthError(PermanentHTTPError):
    """401/403: the credentials are wrong or lack permission."""


class RequestRejectedError(PermanentHTTPError):
    """The vendor rejected the request itself (400/404/406/415/...): ``detail`` says why."""

    def __init__(self, message: str, *, detail: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.detail = detail


class ObjectChangedError(PermanentHTTPError):
    """412 (or a different ETag/size on resume): the object was replaced mid-download.

    The bytes already delivered belong to the old object, so the download cannot be resumed; the
    export has to start over from byte zero.
    """


class NetworkError(TransientError):
    """The connection failed or dropped (refused, reset, DNS, server disconnected)."""

    def __init__(self, message: str, *, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(redact_text(message), **kwargs)
        self.url = redact_url(url) if url else None


class NetworkTimeoutError(NetworkError):
    """Connecting took longer than the connect timeout, or the peer went silent (read timeout)."""


class IncompleteBodyError(TransientError):
    """A body ended before its declared length (``expected``) with ``received`` bytes."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        expected: int | None = None,
        received: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(redact_text(message), **kwargs)
        self.url = redact_url(url) if url else None
        self.expected = expected
        self.received = received


class ProtocolError(PermanentError):
    """The HTTP exchange failed in a way a retry will not fix (invalid URL, redirect loop...)."""


class TLSVerificationError(PermanentError):
    """The server's TLS certificate did not verify. streamx never downgrades to unverified TLS."""


class DeadlineExceededError(PermanentError):
    """The export's deadline would pass before the next retry; ``__cause__`` is the last error."""


class RetryBudgetExhaustedError(PermanentError):
    """The shared retry budget is empty (an outage): give up instead of joining a retry storm."""


def parse_retry_after(value: str | None, *, now: datetime, cap: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, or None if absent/garbage.

    Accepts delay-seconds (``"120"``, tolerantly also ``"1.5"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, compared with ``now``). Negative values and dates in the
    past give 0; anything longer than ``cap`` gives ``cap``. A naive ``now`` is taken as UTC.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _SECONDS_RE.fullmatch(text):
        seconds = float(text)
    else:
        seconds_or_none = _seconds_until_date(text, now)
        if seconds_or_none is None:
            return None
        seconds = seconds_or_none
    return min(max(seconds, 0.0), cap)


def _seconds_until_date(text: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def summarize_body(body: bytes | str, *, limit: int = _SUMMARY_LIMIT) -> str:
    """A one-line, redacted summary of a vendor error body (JSON, S3 XML or plain text)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    summary = _summarize_json(text) or _summarize_xml(text) or " ".join(text.split())
    summary = redact_text(summary)
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."


def _summarize_json(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    parts = [
        str(data[key])
        for key in ("errorKey", "code", "error", "message", "detail", "error_description")
        if isinstance(data.get(key), str | int) and not isinstance(data.get(key), bool)
    ]
    return ": ".join(parts) if parts else json.dumps(data, separators=(",", ":"))


def _summarize_xml(text: str) -> str | None:
    code = re.search(r"<Code>(.*?)</Code>", text, re.DOTALL)
    message = re.search(r"<Message>(.*?)</Message>", text, re.DOTALL)
    parts = [m.group(1).strip() for m in (code, message) if m]
    return ": ".join(parts) if parts else None


def classify_response(
    status: int,
    headers: Mapping[str, str],
    body_excerpt: bytes | str,
    *,
    vendor: str | None,
    account: str | None,
    export_id: str | None,
    url: str | None = None,
    subject: str | None = None,
    now: datetime | None = None,
    retry_after_cap: float = 300.0,
    rate_limit_default: float | None = None,
) -> StreamxError:
    """Turn a non-success HTTP answer into the right error (returned, not raised).

    ``subject`` prefixes the message (e.g. the source name); ``url`` is stored redacted.
    ``rate_limit_default`` is the wait to assume for a 429 without ``Retry-After`` (Symplify
    asks for >= 60 s); ``now`` (default: the current UTC time) resolves HTTP-date Retry-After.
    """
    detail = summarize_body(body_excerpt)
    prefix = f"{subject}: " if subject else ""
    message = f"{prefix}HTTP {status}" + (f" from {redact_url(url)}" if url else "")
    message += f": {detail}" if detail else ""
    context: dict[str, Any] = {
        "status": status,
        "url": url,
        "vendor": vendor,
        "account": account,
        "export_id": export_id,
    }
    if status == 429:
        wait = parse_retry_after(
            _header(headers, "Retry-After"), now=now or datetime.now(UTC), cap=retry_after_cap
        )
        return RateLimitedError(
            message, retry_after=rate_limit_default if wait is None else wait, **context
        )
    if status >= 500 or status == 408:
        return ServerError(message, **context)
    if status == 403 and any(marker in detail.lower() for marker in _EXPIRED_MARKERS):
        return UrlExpiredError(message, **context)
    if status in (401, 403):
        return AuthError(message, **context)
    if status == 412:
        return ObjectChangedError(
            f"{message} (the object changed since the download started; it must be restarted)",
            **context,
        )
    return RequestRejectedError(message, detail=detail, **context)


def classify_exception(
    exc: BaseException,
    *,
    vendor: str | None = None,
    account: str | None = None,
    export_id: str | None = None,
    url: str | None = None,
    subject: str | None = None,
) -> StreamxError | None:
    """Map a network-level exception (aiohttp, asyncio, OSError) onto the tree, else None.

    The returned error has ``exc`` as ``__cause__`` unless ``exc``'s own text holds a secret
    (aiohttp puts full URLs into some messages); then the chain is cut so a logged traceback
    cannot leak it.
    """
    if isinstance(exc, StreamxError):
        return exc
    error = _map_exception(exc, subject, url, vendor=vendor, account=account, export_id=export_id)
    if error is not None:
        _chain_safely(error, exc)
    return error


def _map_exception(
    exc: BaseException,
    subject: str | None,
    url: str | None,
    *,
    vendor: str | None,
    account: str | None,
    export_id: str | None,
) -> StreamxError | None:
    prefix = f"{subject}: " if subject else ""
    where = f" ({redact_url(url)})" if url else ""
    text = f"{prefix}{type(exc).__name__}: {exc}{where}"
    ids = {"vendor": vendor, "account": account, "export_id": export_id}
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLSVerificationError(redact_text(text), **ids)
    if isinstance(exc, asyncio.TimeoutError):  # includes aiohttp.ServerTimeoutError
        return NetworkTimeoutError(text, url=url, **ids)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return IncompleteBodyError(
            text, url=url, vendor=vendor, account=account, export_id=export_id
        )
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return NetworkError(text, url=url, **ids)
    if isinstance(exc, aiohttp.ClientResponseError) and exc.status >= 400:
        # raise_for_status() style: classify by status like any other answer.
        headers = exc.headers if exc.headers is not None else {}
        real_url = url or str(exc.request_info.real_url)
        return classify_response(
            exc.status,
            headers,
            exc.message,
            url=real_url,
            subject=subject,
            vendor=vendor,
            account=account,
            export_id=export_id,
        )
    if isinstance(exc, aiohttp.ClientError):
        return ProtocolError(redact_text(text), **ids)
    return None


def _chain_safely(error: StreamxError, cause: BaseException) -> None:
    text = str(cause)
    if redact_text(text) == text:
        error.__cause__ = cause
    else:
        error.__cause__ = None
    error.__suppress_context__ = True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


__all__ = [
    "BODY_EXCERPT_LIMIT",
    "AuthError",
    "DeadlineExceededError",
    "HTTPStatusError",
    "IncompleteBodyError",
    "NetworkError",
    "NetworkTimeoutError",
    "ObjectChangedError",
    "PermanentHTTPError",
    "ProtocolError",
    "RateLimitedError",
    "RequestRejectedError",
    "RetryBudgetExhaustedError",
    "ServerError",
    "TLSVerificationError",
    "TransientHTTPError",
    "UrlExpiredError",
    "classify_exception",
    "classify_response",
    "parse_retry_after",
    "summarize_body",
]
