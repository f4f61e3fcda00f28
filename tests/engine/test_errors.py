"""HTTP answers and network failures land on the right branch of the exception tree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

from streamx.engine.errors import (
    AuthError,
    IncompleteBodyError,
    NetworkError,
    NetworkTimeoutError,
    ObjectChangedError,
    ProtocolError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    UrlExpiredError,
    classify_exception,
    classify_response,
    parse_retry_after,
    summarize_body,
)
from streamx.exceptions import PermanentError, StreamxError, TransientError

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
URL = "https://b.s3.amazonaws.com/r.json?AWSAccessKeyId=AKIASECRET&Signature=SIGSECRET&Expires=1"

S3_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><Expires>2026-03-01T11:00:00Z</Expires></Error>"
)


def classify(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> StreamxError:
    return classify_response(
        status,
        headers or {},
        body,
        url=URL,
        subject="opens",
        now=NOW,
        vendor="symplify",
        account="5004",
        export_id="101111",
    )


# -- parse_retry_after --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("86400", 300.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("12abc", None),
        ("inf", None),
        ("nan", None),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
        ("Mon, 02 Mar 2026 12:00:00 GMT", 300.0),
        ("Sunday, 01-Mar-26 12:01:00 GMT", 60.0),  # obsolete RFC 850 form, still accepted
        ("Sun Mar  1 12:00:20 2026", 20.0),  # asctime form
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW, cap=300.0) == expected


def test_parse_retry_after_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:10 GMT", now=naive, cap=60) == 10.0


# -- classify_response --------------------------------------------------------------------


def test_429_with_retry_after_seconds_and_date() -> None:
    error = classify(429, b'{"error": "Too many requests"}', {"Retry-After": "42"})
    assert isinstance(error, RateLimitedError)
    assert isinstance(error, TransientError)
    assert error.retry_after == 42.0
    date = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert classify(429, b"", {"retry-after": date}).retry_after == 90.0  # type: ignore[attr-defined]


def test_429_without_retry_after_uses_vendor_default() -> None:
    plain = classify(429)
    assert isinstance(plain, RateLimitedError)
    assert plain.retry_after is None
    symplify = classify_response(
        429,
        {},
        b"",
        rate_limit_default=60.0,
        now=NOW,
        vendor="symplify",
        account=None,
        export_id=None,
    )
    assert isinstance(symplify, RateLimitedError)
    assert symplify.retry_after == 60.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient(status: int) -> None:
    error = classify(status, b"<html>Bad gateway</html>")
    assert isinstance(error, ServerError)
    assert isinstance(error, TransientError)
    assert error.status == status


def test_expired_url_is_transient_and_other_403_is_auth() -> None:
    assert isinstance(classify(403, S3_EXPIRED), UrlExpiredError)
    denied = classify(403, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message>")
    assert isinstance(denied, AuthError)
    assert isinstance(denied, PermanentError)
    assert isinstance(classify(401, b'{"error": "Invalid token"}'), AuthError)


def test_412_is_object_changed() -> None:
    error = classify(412, b"<Error><Code>PreconditionFailed</Code></Error>")
    assert isinstance(error, ObjectChangedError)
    assert "restarted" in str(error)


@pytest.mark.parametrize("status", [400, 404, 406, 415, 416, 422])
def test_client_errors_are_rejections_with_vendor_detail(status: int) -> None:
    body = (
        b'{"error": true, "errorKey": "EXPORT_TYPE_INVALID",'
        b' "message": "The selected export type is invalid."}'
    )
    error = classify(status, body)
    assert isinstance(error, RequestRejectedError)
    assert isinstance(error, PermanentError)
    assert error.detail == "EXPORT_TYPE_INVALID: The selected export type is invalid."
    assert error.detail in str(error)


def test_error_carries_context_and_no_secret() -> None:
    error = classify(503, b"oops " + URL.encode())
    text = str(error)
    assert "vendor=symplify" in text
    assert "account=5004" in text
    assert "export=101111" in text
    assert text.startswith("opens: HTTP 503 from https://b.s3.amazonaws.com/r.json?")
    assert "SIGSECRET" not in text
    assert "AKIASECRET" not in text
    assert error.url is not None and "SIGSECRET" not in error.url  # type: ignore[attr-defined]
    assert (error.vendor, error.account, error.export_id) == ("symplify", "5004", "101111")


def test_summarize_body_shapes() -> None:
    assert summarize_body(b'{"error": "Batch not found"}') == "Batch not found"
    assert summarize_body(S3_EXPIRED) == "AccessDenied: Request has expired"
    assert summarize_body(b"  plain\n\n text  ") == "plain text"
    assert summarize_body(b'["a list"]') == '["a list"]'
    assert summarize_body(b"\xff\xfe bad utf8").endswith("bad utf8")
    long = summarize_body(b"x" * 10_000)
    assert len(long) == 300
    assert long.endswith("...")


# -- classify_exception -------------------------------------------------------------------


def test_network_exceptions_are_transient() -> None:
    timeout = classify_exception(aiohttp.ServerTimeoutError("Timeout on reading"), url=URL)
    assert isinstance(timeout, NetworkTimeoutError)
    assert isinstance(classify_exception(TimeoutError()), NetworkTimeoutError)
    dropped = classify_exception(aiohttp.ServerDisconnectedError())
    assert isinstance(dropped, NetworkError)
    assert not isinstance(dropped, NetworkTimeoutError)
    assert isinstance(classify_exception(ConnectionResetError(104, "reset")), NetworkError)
    payload = classify_exception(aiohttp.ClientPayloadError("Response payload is not completed"))
    assert isinstance(payload, IncompleteBodyError)
    assert isinstance(payload, TransientError)


def test_unknown_exceptions_are_not_mapped() -> None:
    assert classify_exception(ValueError("bug")) is None
    assert classify_exception(KeyError("bug")) is None


def test_mapped_exception_never_leaks_signature_even_via_cause() -> None:
    leaky = aiohttp.ClientConnectionError(f"failed on {URL}")
    mapped = classify_exception(leaky, url=URL, subject="opens", vendor="symplify")
    assert isinstance(mapped, NetworkError)
    assert "SIGSECRET" not in str(mapped)
    assert mapped.__cause__ is None  # its text held the secret: the chain is cut
    clean = aiohttp.ServerDisconnectedError()
    assert classify_exception(clean).__cause__ is clean  # type: ignore[union-attr]


def test_streamx_errors_pass_through() -> None:
    error = ServerError("x", status=500)
    assert classify_exception(error) is error


def _response_error(status: int, headers: dict[str, str]) -> aiohttp.ClientResponseError:
    url = yarl.URL(URL)
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(
        info, (), status=status, message="Too Many Requests", headers=CIMultiDict(headers)
    )


def test_raise_for_status_errors_are_classified_by_status() -> None:
    limited = classify_exception(_response_error(429, {"Retry-After": "5"}), vendor="cordial")
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 5.0
    assert isinstance(classify_exception(_response_error(502, {})), ServerError)
    assert isinstance(classify_exception(_response_error(404, {})), RequestRejectedError)
    assert "SIGSECRET" not in str(classify_exception(_response_error(500, {})))


def test_other_client_errors_are_permanent_and_redacted() -> None:
    error = classify_exception(aiohttp.InvalidURL(URL + " bad"), subject="opens")
    assert isinstance(error, ProtocolError)
    assert "SIGSECRET" not in str(error)
    assert error.__cause__ is None
