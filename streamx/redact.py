"""Remove secrets from URLs and free text before they reach a log line or an error message.

Presigned object-store URLs carry their credential in the query string (``X-Amz-Signature``,
``X-Amz-Credential``, ``Signature``, ``AWSAccessKeyId``...), and aiohttp/botocore happily put the
full URL into their exception messages. Every message streamx builds from a URL or from a foreign
exception goes through :func:`redact_text`, so a traceback pasted into a ticket never leaks a
working download link.

The redaction keeps parameter *names* and the rest of the URL (host, path, other parameters) so
the message is still useful: ``...?X-Amz-Signature=REDACTED&partNumber=3``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "REDACTED"

#: Query parameter names (compared case-insensitively) whose values are secrets or belong to a
#: signature. ``Expires``/``X-Amz-Date`` are not secret on their own, but they are part of what
#: was signed and the team's rule is to hide the whole signing set.
SECRET_PARAMS: frozenset[str] = frozenset(
    {
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-date",
        "x-amz-expires",
        "awsaccesskeyid",
        "expires",
        "policy",
        "key-pair-id",
        "x-goog-signature",
        "x-goog-credential",
        "googleaccessid",
        "sig",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "password",
        "secret",
        "client_secret",
        "aws_secret_access_key",
        "secret_access_key",
        "aws_session_token",
        "session_token",
        "passphrase",
    }
)

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# A ``name=value`` pair anywhere (a bare query string, a path without scheme, a log fragment).
_PARAM_RE = re.compile(r"(?P<name>[A-Za-z0-9_.\-%]+)=(?P<value>[^&\s'\"<>`;,)]*)")
# Elements of S3 error bodies that echo the request's signing material back.
_XML_SECRET_RE = re.compile(
    r"<(?P<tag>SignatureProvided|StringToSign|StringToSignBytes|CanonicalRequest|"
    r"CanonicalRequestBytes|AWSAccessKeyId|X-Amz-Credential)>.*?</(?P=tag)>",
    re.DOTALL,
)
# ``Authorization: Basic ...`` or ``X-Carma-Authentication-Token: ...`` echoed in text.
_HEADER_RE = re.compile(
    r"(?i)(?P<name>authorization|x-carma-authentication-token|x-amz-security-token)"
    r"(?P<sep>['\"]?\s*[:=]\s*['\"]?)(?P<value>(?:basic |bearer )?[^\s'\",}]+)"
)


def redact_url(url: str) -> str:
    """Return ``url`` with secret query values and any userinfo password replaced.

    Only the secret parts change; everything else is kept byte for byte (no re-encoding). A URL
    of the form ``scheme://user:password@host`` becomes ``scheme://user:REDACTED@host``; when the
    password is empty (Cordial's "API key as user name, empty password") the user name is the
    secret and becomes ``REDACTED``.
    """
    url = _redact_userinfo(url)
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = query.partition("#")
    return head + sep + _redact_query(query) + hash_sep + fragment


def redact_text(text: str) -> str:
    """Redact every URL, bare secret query pair, echoed header and S3 signing element in text."""
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    text = _PARAM_RE.sub(_redact_pair, text)
    text = _XML_SECRET_RE.sub(lambda m: f"<{m['tag']}>{REDACTED}</{m['tag']}>", text)
    return _HEADER_RE.sub(lambda m: f"{m['name']}{m['sep']}{REDACTED}", text)


def _redact_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, password = userinfo.partition(":")
    if not colon:
        return url
    safe = f"{user}:{REDACTED}" if password else f"{REDACTED}:"
    return f"{scheme}://{safe}@{host}{tail}"


def _redact_query(query: str) -> str:
    pairs = query.split("&")
    return "&".join(_redact_pair_text(pair) for pair in pairs)


def _redact_pair_text(pair: str) -> str:
    name, eq, _value = pair.partition("=")
    if eq and _is_secret(name):
        return f"{name}={REDACTED}"
    return pair


def _redact_pair(match: re.Match[str]) -> str:
    if _is_secret(match["name"]):
        return f"{match['name']}={REDACTED}"
    return match.group(0)


def _is_secret(name: str) -> bool:
    return unquote_plus(name).strip().lower() in SECRET_PARAMS


__all__ = ["REDACTED", "SECRET_PARAMS", "redact_text", "redact_url"]
