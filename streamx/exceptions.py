"""The streamx exception tree.

Every error streamx raises on purpose is a :class:`StreamxError`. The split that matters to an
operator is *may a retry help?*: :class:`TransientError` (connect errors, timeouts, 429, 5xx) is
retried with backoff, :class:`PermanentError` is not. Errors carry the context an operator needs
(vendor, account, export id, file, line or byte offset) and never a secret: messages are built
from already-redacted values.
"""

from __future__ import annotations


class StreamxError(Exception):
    """Base of every error streamx raises deliberately."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        account: str | None = None,
        export_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.account = account
        self.export_id = export_id

    def __str__(self) -> str:
        where = [
            f"{key}={value}"
            for key, value in (
                ("vendor", self.vendor),
                ("account", self.account),
                ("export", self.export_id),
            )
            if value
        ]
        return f"{self.message} ({', '.join(where)})" if where else self.message


class TransientError(StreamxError):
    """A failure that may succeed when retried (network drop, timeout, 429, 5xx)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: str | None):
        super().__init__(message, **context)
        self.retry_after = retry_after


class PermanentError(StreamxError):
    """A failure a retry cannot fix: bad input, bad credentials, a rejected request."""


class ConfigError(PermanentError):
    """The configuration or command line is invalid."""


class InputError(PermanentError):
    """Input data is structurally unusable at a known place (file, line, byte offset).

    Raised for corruption that makes the rest of a file untrustworthy: a truncated gzip stream, an
    unclosed CSV quote at end of file, a JSON array that never closes. Row-level problems are not
    raised; they are quarantined.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        offset: int | None = None,
        **context: str | None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.offset = offset
        super().__init__(self._describe(), **context)

    def _describe(self) -> str:
        place = self.file or "<input>"
        if self.line is not None:
            place += f", line {self.line}"
        if self.offset is not None:
            place += f", byte offset {self.offset}"
        return f"{place}: {self.reason}"

    def located(self, file: str) -> InputError:
        """Return a copy that names ``file`` (codecs do not know their file name)."""
        return type(self)(
            self.reason,
            file=file,
            line=self.line,
            offset=self.offset,
            vendor=self.vendor,
            account=self.account,
            export_id=self.export_id,
        )


class CorruptInputError(InputError):
    """The bytes are damaged: truncated or invalid compression, broken structure."""


class DecompressionBombError(CorruptInputError):
    """Decompressed output grew past the allowed ratio to its compressed input."""


class FieldTooLargeError(CorruptInputError):
    """A single field or line exceeded the configured size bound."""


class RowError(Exception):
    """One source row cannot be normalized; it goes to quarantine with this reason.

    Not a StreamxError: it never escapes the pipeline, it becomes a quarantine line.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SinkError(PermanentError):
    """Publishing output failed (permission denied, disk full, remote refused)."""
