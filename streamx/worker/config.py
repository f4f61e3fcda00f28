"""The ``[worker]`` table of ``streamx.toml``: the worker's settings and its schedules.

Why a parser of its own: the worker's settings mean nothing to ``streamx run``, so they stay
out of :mod:`streamx.config`; :func:`load_worker_config` reads the one TOML file, hands
everything but ``[worker]`` to :func:`~streamx.config.parse_config` and checks ``[worker]``
here with the same strictness (unknown keys and wrong types are errors naming the key)::

    [worker]
    id = "worker-a"            # default: <hostname>-<pid>
    host = "0.0.0.0"           # /healthz and /metrics
    port = 9464
    grace = 30

    [worker.schedules.opens_daily]   # the name of an [exports.*] entry
    daily = "02:30"
    timezone = "Europe/Stockholm"
    catch_up = 3
    jitter = 300

    [worker.schedules.clicks]
    every = "15m"
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamx.config import Config, parse_config, read_toml
from streamx.exceptions import ConfigError
from streamx.worker.logs import LOG_FORMATS
from streamx.worker.schedule import Schedule, parse_daily, parse_every


@dataclass(frozen=True)
class WorkerSettings:
    """How one worker runs (durations in seconds). ``id`` names it in leases and logs;
    ``max_exports`` is how many exports it runs at once (the claim limit); ``heartbeat`` is
    how often it renews its leases (at most half of ``[state] lease_seconds``, the lease
    length); ``tick`` bounds how long it sleeps between planning and claiming; ``grace`` is
    how long a drain waits for exports in flight; ``max_lag`` and ``max_tick_age`` are the
    ``/healthz`` thresholds; ``lag_interval`` is the loop-lag probe's period."""

    id: str = ""
    host: str = "127.0.0.1"
    port: int = 9464
    log_format: str = "text"
    max_exports: int = 8
    heartbeat: float = 15.0
    tick: float = 5.0
    grace: float = 30.0
    max_lag: float = 1.0
    max_tick_age: float = 120.0
    lag_interval: float = 0.5


@dataclass(frozen=True)
class WorkerConfig:
    """``[worker]``: settings and one schedule per scheduled export."""

    settings: WorkerSettings
    schedules: tuple[Schedule, ...] = ()


_SCHEDULE_KEYS = {"every", "daily", "timezone", "catch_up", "jitter"}
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


def load_worker_config(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> tuple[Config, WorkerConfig]:
    """Read ``path``: the engine configuration and its ``[worker]`` table."""
    source = Path(path)
    raw = read_toml(source)
    worker = raw.pop("worker", {})
    config = parse_config(raw, base_dir=source.parent, env=os.environ if env is None else env)
    return config, parse_worker(worker, config)


def parse_worker(raw: Any, config: Config) -> WorkerConfig:
    """Check a ``[worker]`` table against ``config`` (schedules must name its exports)."""
    body = dict(_table(raw, "[worker]"))
    schedules_raw = _table(body.pop("schedules", {}), "[worker.schedules]")
    settings = _settings(body, config.state.lease_seconds)
    known = {spec.name for spec in config.exports}
    schedules = []
    for name, table in schedules_raw.items():
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"[worker.schedules.{name}]: no export named {name!r} ({listed})")
        schedules.append(_schedule(name, _table(table, f"[worker.schedules.{name}]")))
    return WorkerConfig(settings=settings, schedules=tuple(schedules))


def default_worker_id() -> str:
    """``<hostname>-<pid>``: unique per process on a fleet, readable in lease rows."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _settings(body: Mapping[str, Any], lease_seconds: float) -> WorkerSettings:
    where = "[worker]"
    known = {item.name: item for item in fields(WorkerSettings)}
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}")
        values[key] = _typed(value, str(known[key].type), f"{where} {key}")
    settings = WorkerSettings(**values)
    if not settings.id:
        settings = WorkerSettings(**{**values, "id": default_worker_id()})
    _check_settings(settings, lease_seconds)
    return settings


def _check_settings(settings: WorkerSettings, lease_seconds: float) -> None:
    where = "[worker]"
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(f"{where} log_format must be one of {', '.join(LOG_FORMATS)}")
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"{where} port must be 0..65535, got {settings.port}")
    for name in ("max_exports", "heartbeat", "tick", "max_lag", "lag_interval"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{where} {name} must be > 0, got {getattr(settings, name)}")
    if settings.grace < 0:
        raise ConfigError(f"{where} grace must be >= 0")
    if settings.heartbeat * 2 > lease_seconds:
        raise ConfigError(
            f"{where} heartbeat ({settings.heartbeat} s) must be at most half of [state] "
            f"lease_seconds ({lease_seconds} s), or one slow renewal loses every lease"
        )
    if settings.max_tick_age <= settings.tick:
        raise ConfigError(f"{where} max_tick_age must be greater than tick")


def _schedule(name: str, table: Mapping[str, Any]) -> Schedule:
    where = f"[worker.schedules.{name}]"
    unknown = sorted(set(table) - _SCHEDULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    every, daily = table.get("every"), table.get("daily")
    if (every is None) == (daily is None):
        raise ConfigError(f"{where}: give exactly one of every or daily")
    if every is not None and "timezone" in table:
        raise ConfigError(f"{where}: timezone applies to daily schedules (every is UTC-aligned)")
    try:
        return Schedule(
            export=name,
            every=None if every is None else parse_every(_typed(every, "str", f"{where} every")),
            daily=None if daily is None else parse_daily(_typed(daily, "str", f"{where} daily")),
            timezone=_zone(table.get("timezone", "UTC"), where),
            catch_up=_typed(table.get("catch_up", 1), "int", f"{where} catch_up"),
            jitter=_typed(table.get("jitter", 0.0), "float", f"{where} jitter"),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _zone(value: Any, where: str) -> ZoneInfo:
    name = _typed(value, "str", f"{where} timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown timezone {name!r} (an IANA name)") from None


def _typed(value: Any, kind: str, where: str) -> Any:
    allowed = _TYPES[kind]
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ConfigError(f"{where} must be {kind}, got {value!r}")
    if kind == "float" and isinstance(value, int):
        return float(value)
    return value


def _table(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    return raw


__all__ = [
    "WorkerConfig",
    "WorkerSettings",
    "default_worker_id",
    "load_worker_config",
    "parse_worker",
]
