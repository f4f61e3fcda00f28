"""Secrets in the configuration: only from environment variables or files, never inline.

A configuration file is copied, committed and pasted into tickets; a credential in it leaks.
So every secret setting ``<key>`` is given as ``<key>_env = "NAME"`` (an environment variable)
or ``<key>_file = "path"`` (a file, relative to the configuration file; surrounding whitespace
stripped), and a literal ``<key> = "..."`` is a :class:`~streamx.exceptions.ConfigError`.
Errors name the variable or the file, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamx.exceptions import ConfigError

#: Setting names that hold a secret; each is read from ``<key>_env`` / ``<key>_file``.
SECRET_KEYS = frozenset(
    {
        "token",
        "api_key",
        "password",
        "passphrase",
        "secret",
        "aws_secret_access_key",
        "secret_access_key",
        "session_token",
    }
)
#: A secret file larger than this is refused (it is not a credential).
SECRET_FILE_LIMIT = 64 * 1024


class Secrets:
    """Resolves ``<key>_env`` / ``<key>_file`` pairs against ``env`` and ``base_dir``."""

    def __init__(self, env: Mapping[str, str], base_dir: Path) -> None:
        self._env = env
        self._base_dir = base_dir

    def take(self, body: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
        """Remove ``key``'s secret source from ``body`` and return the secret (or None)."""
        if key in body:
            raise ConfigError(
                f"{where}: {key!r} holds a secret in clear text; put it in an environment "
                f'variable ({key}_env = "NAME") or a file ({key}_file = "path")'
            )
        env_name, file_name = body.pop(f"{key}_env", None), body.pop(f"{key}_file", None)
        if env_name is not None and file_name is not None:
            raise ConfigError(f"{where}: give {key}_env or {key}_file, not both")
        if env_name is not None:
            return self._from_env(_name(env_name, f"{where}.{key}_env"), where)
        if file_name is not None:
            return self._from_file(_name(file_name, f"{where}.{key}_file"), where)
        if required:
            raise ConfigError(f"{where}: missing {key}_env or {key}_file")
        return None

    def _from_env(self, name: str, where: str) -> str:
        value = self._env.get(name, "")
        if not value.strip():
            raise ConfigError(f"{where}: environment variable {name} is not set or empty")
        return value.strip()

    def _from_file(self, name: str, where: str) -> str:
        path = Path(name) if os.path.isabs(name) else self._base_dir / name
        try:
            with path.open("rb") as handle:
                data = handle.read(SECRET_FILE_LIMIT + 1)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from exc
        if len(data) > SECRET_FILE_LIMIT or not data.strip():
            raise ConfigError(f"{where}: secret file {path} is empty or too large")
        try:
            return data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: secret file {path} is not UTF-8 text") from None


def secret_options(raw: Any, secrets: Secrets, where: str) -> dict[str, Any]:
    """A table of options (a sink's, a landing zone's) with its secrets resolved."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    body = dict(raw)
    for key in sorted(SECRET_KEYS):
        if key in body or f"{key}_env" in body or f"{key}_file" in body:
            body[key] = secrets.take(body, key, where, required=False)
    return body


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string")
    return value


__all__ = ["SECRET_FILE_LIMIT", "SECRET_KEYS", "Secrets", "secret_options"]
