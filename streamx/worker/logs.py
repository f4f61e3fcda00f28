"""Structured logs for the worker: one line per export state change, text or JSON, no secrets.

Why redaction lives in the formatter: a secret reaches a log line by many roads (a presigned
URL in an aiohttp error, a token echoed in a vendor's error body, a password in a DSN, an
exception text from a library). Redacting at the one place every record is turned into text
catches all of them, including records from third-party loggers. Each line is passed through
:class:`Redactor`: :func:`streamx.redact.redact_text` (URLs, ``name=value`` secrets, echoed
auth headers, S3 signing elements), the secret setting names of the configuration
(``secret_access_key = ...`` and friends), and every secret value the configuration resolved
(account tokens, API keys, sink and landing-zone passwords and keys), wherever it appears.

``--log-format json`` writes one JSON object per line (orjson): ``ts`` (UTC, milliseconds),
``level``, ``logger``, ``msg``, the structured fields of a state change (``export``,
``export_id``, ``account``, ``stream``, ``state``, ``detail``, ``key``) and ``exc`` when an
exception is attached. ``text`` writes the same as one readable line.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import unquote, urlsplit

import orjson

from streamx.config import Config
from streamx.credentials import SECRET_KEYS
from streamx.engine.export import EngineEvent, OnEvent
from streamx.redact import REDACTED, redact_text

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")
#: The logger of state-change lines.
STATE_LOG = logging.getLogger("streamx.worker.state")
#: Known secrets shorter than this are not scrubbed verbatim (it would garble every line);
#: the configuration never holds a credential that short.
MIN_SECRET_LENGTH = 6
_FIELDS = ("export", "export_id", "account", "stream", "state", "detail", "key", "worker")
_EXTRA_KEY = "streamx"
_SECRET_NAMES = "|".join(
    sorted({*SECRET_KEYS, "aws_session_token", "private_key", "client_secret"}, key=len)[::-1]
)
_NAMED_SECRET = re.compile(
    rf"(?i)(?P<name>\b(?:{_SECRET_NAMES}))(?P<sep>['\"]?\s*[=:]\s*['\"]?)(?P<value>[^\s'\",;&)}}]+)"
)


class Redactor:
    """Removes secrets from text: :func:`redact_text`, secret ``name=value`` / ``name: value``
    pairs of the configuration's secret names, and the given secret values verbatim."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Scrub these values too (and their HTTP Basic ``value:`` encoding, Cordial's)."""
        found = set(self._secrets)
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                found.add(secret)
                found.add(base64.b64encode(f"{secret}:".encode()).decode())
        self._secrets = sorted(found, key=len, reverse=True)  # longest first: no partial leaks

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = redact_text(text)
        return _NAMED_SECRET.sub(lambda m: f"{m['name']}{m['sep']}{REDACTED}", text)


def secrets_from_config(config: Config) -> set[str]:
    """Every secret value the configuration resolved: account secrets, the secret options of
    the output sink and of each landing zone (nested tables included), and the password of
    the ``[state]`` Postgres URL."""
    found = {account.secret for account in config.accounts.values() if account.secret}
    if config.state.url is not None:
        found |= {secret for secret in _url_password(config.state.url) if secret}
    found |= _secret_values(config.output.options)
    for account in config.accounts.values():
        if account.landing is not None:
            found |= _secret_values(account.landing.options)
    return found


def _url_password(url: str) -> set[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return set()
    return set() if not password else {password, unquote(password)}


def _secret_values(options: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for name, value in options.items():
        if isinstance(value, Mapping):
            found |= _secret_values(value)
        elif isinstance(value, str) and value and name in SECRET_KEYS | {"aws_session_token"}:
            found.add(value)
    return found


class _Formatter(logging.Formatter):
    """Shared by both formats: the record's text parts, each redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def parts(self, record: logging.LogRecord) -> dict[str, Any]:
        fields = getattr(record, _EXTRA_KEY, None) or {}
        parts: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": self.redactor(record.getMessage()),
        }
        for name in _FIELDS:
            value = fields.get(name)
            if value is not None:
                parts[name] = self.redactor(str(value))
        if record.exc_info:
            parts["exc"] = self.redactor(self.formatException(record.exc_info))
        if record.stack_info:
            parts["stack"] = self.redactor(self.formatStack(record.stack_info))
        return parts


class JsonFormatter(_Formatter):
    """One JSON object per line (``--log-format json``)."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(self.parts(record)).decode()


class TextFormatter(_Formatter):
    """``ts LEVEL logger: msg (field=value ...)`` plus the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        parts = self.parts(record)
        context = " ".join(f"{name}={parts[name]}" for name in _FIELDS if name in parts)
        line = f"{parts['ts']} {parts['level']} {parts['logger']}: {parts['msg']}"
        line += f" ({context})" if context else ""
        for extra in ("exc", "stack"):
            if extra in parts:
                line += "\n" + parts[extra]
        return line


def configure_logging(
    log_format: LogFormat = "text",
    *,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Send every log record (third-party ones too) through one redacting handler on the
    root logger, replacing any handler an earlier call installed; returns the handler."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    redactor = Redactor(secrets)
    formatter = JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("streamx")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "streamx"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def log_state_change(
    export: str,
    state: str,
    *,
    account: str | None,
    stream: str | None,
    export_id: str | None = None,
    detail: str | None = None,
    key: str | None = None,
    level: int = logging.INFO,
    logger: logging.Logger = STATE_LOG,
) -> None:
    """One line for one state change of one export (the fields become JSON keys)."""
    fields = {
        "export": export,
        "state": state,
        "account": account,
        "stream": stream,
        "export_id": export_id,
        "detail": detail,
        "key": key,
    }
    message = f"export {export}: {state}" + (f": {detail}" if detail else "")
    logger.log(level, "%s", message, extra={_EXTRA_KEY: fields})


def event_logger(
    describe: Callable[[str], tuple[str | None, str | None]],
    *,
    logger: logging.Logger = STATE_LOG,
) -> OnEvent:
    """An engine ``on_event`` callback logging each state change once: ``started`` /
    ``resumed``, every change of the vendor's job state (not every poll), ``transfer_start``
    / ``transfer_end``, ``retry`` and ``gone`` (warnings), ``checkpoint`` (debug),
    ``skipped``, ``done`` and ``failed`` (error); never ``progress``. ``describe`` maps an
    export name to its ``(account, stream)``. The engine also logs each event on the
    ``streamx.engine`` logger: a worker using this sets that logger to WARNING."""
    last_status: dict[str, str] = {}

    def on_event(event: EngineEvent) -> None:
        if event.kind in _NOT_STATE_CHANGES:
            return
        state, level = event.kind, _LEVELS.get(event.kind, logging.INFO)
        if event.kind == "status":
            if event.status is None or last_status.get(event.export) == event.status.state:
                return
            last_status[event.export] = event.status.state
            state = f"vendor {event.status.state}"
        if event.kind in ("done", "failed", "skipped"):
            last_status.pop(event.export, None)
        account, stream = describe(event.export)
        log_state_change(
            event.export,
            state,
            account=account,
            stream=stream,
            export_id=event.remote_id,
            detail=event.detail,
            level=level,
            logger=logger,
        )

    return on_event


_LEVELS = {
    "retry": logging.WARNING,
    "gone": logging.WARNING,
    "failed": logging.ERROR,
    "checkpoint": logging.DEBUG,
}
#: Events that are not state changes: ``progress`` comes several times a second.
_NOT_STATE_CHANGES = frozenset({"progress"})


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


__all__ = [
    "LOG_FORMATS",
    "MIN_SECRET_LENGTH",
    "STATE_LOG",
    "JsonFormatter",
    "LogFormat",
    "Redactor",
    "TextFormatter",
    "configure_logging",
    "event_logger",
    "log_state_change",
    "secrets_from_config",
]
