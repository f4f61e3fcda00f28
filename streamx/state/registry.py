"""Configuration -> state store: SQLite by default, Postgres when ``[state] url`` names one.

The Postgres backend is imported only when asked for, so SQLite users never need asyncpg.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

from streamx.config import Config, StateConfig
from streamx.exceptions import ConfigError
from streamx.state.base import StateStore
from streamx.state.sqlite import SQLiteStore

POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def open_store(config: Config | StateConfig) -> StateStore:
    """The store ``[state]`` describes (not yet opened: use it as ``async with``)."""
    state = config.state if isinstance(config, Config) else config
    if state.url is None:
        return SQLiteStore(state.path)
    if state.url.startswith(POSTGRES_SCHEMES):
        try:
            module = importlib.import_module("streamx.state.postgres")
        except ImportError as exc:
            raise ConfigError(
                f"[state] url needs the Postgres backend (pip install 'streamx[postgres]'): {exc}"
            ) from None
        return cast(StateStore, module.PostgresStore(state.url))
    raise ConfigError("[state] url must be a postgres:// or postgresql:// URL")


def spool_dir(config: Config | StateConfig) -> Path:
    """A local directory for what must survive a crash beside the store: quarantine spools
    and the record-id index (next to the SQLite file; under the output directory's parent
    for Postgres, whose rows may move between hosts)."""
    state = config.state if isinstance(config, Config) else config
    if state.url is None:
        path = Path(state.path)
        return path.with_name(f"{path.name}.d")
    if isinstance(config, Config):
        return Path(config.output.dir).parent / ".streamx-state.d"
    return Path(".streamx-state.d")


__all__ = ["POSTGRES_SCHEMES", "open_store", "spool_dir"]
