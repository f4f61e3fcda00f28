"""How every route of the Cordial fake authenticates and fails, as Cordial's v2 API does.

Authentication is HTTP Basic with the API key as user name; the password is ignored, and a
missing or malformed header (or an unknown key) is 401. Every error, whether a documented
validation error or an injected fault, is answered as ``{error: true, errorKey, message}`` with
its HTTP status, so clients see one error shape whatever went wrong.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

import orjson
from aiohttp import web


class CordialError(Exception):
    """A documented error answer: HTTP status and ``{error, errorKey, message}``."""

    def __init__(
        self,
        status: int,
        message: str,
        error_key: str = "GENERIC_ERROR_KEY",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error_key = status, message, error_key
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return orjson.dumps({"error": True, "errorKey": self.error_key, "message": self.message})


def basic_authorization(api_key: str, password: str = "") -> str:
    """The ``Authorization`` value Cordial expects: HTTP Basic with the API key as user name."""
    return "Basic " + base64.b64encode(f"{api_key}:{password}".encode()).decode()


def request_api_key(request: web.Request) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header, if well formed."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, colon, _password = decoded.partition(":")
    return user if colon else None


def fault_response(status: int) -> web.StreamResponse:
    """An injected fault's answer, in Cordial's error shape so clients parse it as they would a
    real one."""
    messages = {429: "Too Many Requests", 500: "Server Error", 503: "Service Unavailable"}
    body = CordialError(status, messages.get(status, f"HTTP {status}")).body()
    return web.Response(status=status, body=body, content_type="application/json")


__all__ = ["CordialError", "basic_authorization", "fault_response", "request_api_key"]
