"""Which sink serves a destination URL: one registry line per sink.

``open_sink("s3://bucket/prefix", region=...)``, ``open_sink("sftp://user@host:22/dir",
password=...)``, ``open_sink("/data/out")`` or ``open_sink("file:///data/out")``. Factories are
named as ``"module:attribute"`` and imported on first use, so a run that writes to local disk
never pays for importing aioboto3 or asyncssh. A new sink is one module plus one line here.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from streamx.exceptions import ConfigError
from streamx.sinks.base import Sink
from streamx.sinks.local import LocalSink

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")

#: URL scheme -> ``"module:callable"`` taking ``(url, **options)`` and returning a Sink.
SINKS: dict[str, str] = {
    "file": "streamx.sinks.registry:local_sink",
    "s3": "streamx.sinks.s3:S3Sink.from_url",
    "sftp": "streamx.sinks.sftp:SFTPSink.from_url",
}


def local_sink(url: str, **options: Any) -> LocalSink:
    """A local directory from a plain path or a ``file://`` URL (local host only)."""
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ConfigError(f"not a local file URL: {url!r}")
        url = unquote(parts.path)
    if not url:
        raise ConfigError("empty local sink path")
    try:
        return LocalSink(os.path.expanduser(url), **options)
    except TypeError as exc:
        raise ConfigError(f"local sink: {exc}") from None


def scheme(url: str) -> str:
    """The registry key for ``url``: its scheme, or ``file`` for a plain path."""
    match = _SCHEME.match(url)
    return match[1].lower() if match else "file"


def open_sink(url: str, **options: Any) -> Sink:
    """The sink for ``url``; ``options`` go to its factory (credentials, part size...)."""
    kind = scheme(url)
    target = SINKS.get(kind)
    if target is None:
        known = ", ".join(sorted(SINKS))
        raise ConfigError(f"no sink for {kind!r} URLs (known: {known})")
    return cast(Sink, _resolve(target)(url, **options))


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for name in attribute.split("."):
        value = getattr(value, name)
    return cast(Callable[..., Any], value)


__all__ = ["SINKS", "local_sink", "open_sink", "scheme"]
