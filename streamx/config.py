"""The TOML configuration (``streamx.toml``) and the export specs it names.

Why a typed layer over the TOML: every key is checked once, at load time, with a message naming
the key, so a typo fails before any vendor is called; unknown keys are errors, not silently
ignored. Secrets never live in the file: a credential is read from an environment variable
(``token_env``) or a file (``token_file``), and a literal secret (``token = "..."``) is a
:class:`~streamx.exceptions.ConfigError`. Resolved secrets are kept out of ``repr``.
``docs/configuration.md`` documents every key.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from streamx.credentials import SECRET_KEYS, Secrets, secret_options
from streamx.exceptions import ConfigError
from streamx.records import STREAMS
from streamx.writers.encoders import check_output

Vendor = Literal["symplify", "cordial"]
VENDORS: tuple[Vendor, ...] = ("symplify", "cordial")
#: Keys that would hold a secret in clear text; each has ``<key>_env`` / ``<key>_file`` forms.


@dataclass(frozen=True)
class ExportSpec:
    """One export to run: which account, which stream, which slice of time.

    ``stream`` may be short (``opens``) or full (``symplify.opens``). Symplify exports take a
    relative ``period`` (``TODAY``, ``LAST_DAY``, ``LAST_3_DAYS``, ``LAST_WEEK``,
    ``LAST_2_WEEKS``); Cordial activity and audience-trend exports take a timeframe ``start`` /
    ``end`` (ISO 8601) or ``days`` (the last N days up to now). ``options`` are extra fields of the
    vendor request (Cordial filters such as ``selected_action_names``, ``audiences``, ``fields``,
    ``lists``, ``columnHeaders``). ``deadline`` (seconds) overrides the engine's; ``dt`` (a
    ``YYYY-MM-DD`` date) overrides the output partition date (default: the UTC day the export
    started).
    """

    name: str
    account: str
    stream: str
    period: str | None = None
    start: str | None = None
    end: str | None = None
    days: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    dt: str | None = None


@dataclass(frozen=True)
class EngineConfig:
    """How the engine schedules, polls and retries (every duration in seconds)."""

    concurrency: int = 8
    connections: int = 100
    deadline: float = 6 * 3600.0
    poll_interval: float = 1.0
    poll_interval_max: float = 30.0
    poll_backoff: float = 1.5
    backoff_base: float = 2.0
    backoff_cap: float = 60.0
    max_attempts: int = 8
    retry_after_cap: float = 300.0
    retry_budget: float = 50.0
    retry_budget_ratio: float = 0.1
    retry_budget_per_second: float = 1.0
    transfer_attempts: int = 3
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    #: A PEM file of CA certificates trusted for HTTPS in addition to the system's (a private
    #: or corporate CA); relative to the configuration file. TLS is always verified.
    ca_file: str | None = None


@dataclass(frozen=True)
class OutputConfig:
    """Where and how records are published: a local ``dir``, or a sink ``url``
    (``s3://bucket/prefix``, ``sftp://user@host/dir``, ``file:///path``) with its ``options``
    (credentials already resolved from their secret sources)."""

    dir: str = "streamx-out"
    url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    prefix: str = ""
    format: str = "jsonl"
    #: ``None``: the format's default (gzip for jsonl/csv, zstd inside Parquet files).
    compression: str | None = None
    compression_level: int | None = None
    records_per_part: int = 1_000_000
    bytes_per_part: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class LandingConfig:
    """A Cordial account's landing zone: where Cordial is told to write and streamx reads.

    ``type`` picks the implementation (``local``, ``s3``, ``sftp``: ``streamx.landing``);
    ``dir`` is the local root, ``prefix`` the sub-path under it used for jobs; ``options`` holds
    the remaining keys of the type (with secrets already resolved).
    """

    type: str
    dir: str | None = None
    prefix: str = "streamx"
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class AccountConfig:
    """One vendor account. ``secret`` is the Symplify token or the Cordial API key."""

    name: str
    vendor: Vendor
    secret: str = field(repr=False)
    base_url: str | None = None
    customer_id: str | None = None
    region: str | None = None
    max_transfers: int | None = None
    rate_limit_wait: float = 60.0
    landing: LandingConfig | None = None
    records_per_file: int = 500_000
    compress: bool = True
    file_type: str | None = None


@dataclass(frozen=True)
class StateConfig:
    """Where export state is kept (``[state]``): a SQLite file ``path`` (default
    ``streamx-state.sqlite`` next to the configuration file) or, for a fleet of workers, a
    Postgres ``url`` (``postgres://...``; ``url_env`` / ``url_file`` when it holds a password)."""

    path: str = "streamx-state.sqlite"
    url: str | None = field(default=None, repr=False)
    #: A running export records a checkpoint at most this often (seconds); a killed one
    #: resumes from its last checkpoint. Each checkpoint also ends the current output part.
    checkpoint_seconds: float = 30.0
    #: How long a claimed export stays leased to its process without a renewal.
    lease_seconds: float = 60.0


@dataclass(frozen=True)
class Config:
    """A whole configuration: engine settings, output, accounts by name, named exports."""

    accounts: Mapping[str, AccountConfig]
    output: OutputConfig = field(default_factory=OutputConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    exports: tuple[ExportSpec, ...] = ()
    state: StateConfig = field(default_factory=StateConfig)

    def export(self, name: str) -> ExportSpec:
        """The named export; ConfigError lists the known names."""
        for spec in self.exports:
            if spec.name == name:
                return spec
        known = ", ".join(spec.name for spec in self.exports) or "none"
        raise ConfigError(f"no export named {name!r} in the configuration (known: {known})")


# --- loading ---------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and check a TOML configuration; secrets come from ``env`` (default ``os.environ``)
    or from files named relative to the configuration file."""
    source = Path(path)
    raw = read_toml(source)
    return parse_config(raw, base_dir=source.parent, env=os.environ if env is None else env)


def read_toml(source: Path) -> dict[str, Any]:
    """The TOML table in ``source``; a :class:`ConfigError` naming the file when it cannot be
    read or parsed (shared by every command that reads a configuration)."""
    try:
        with source.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {source}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration {source} is not valid TOML: {exc}") from exc


def parse_config(
    raw: Mapping[str, Any], *, base_dir: Path = Path("."), env: Mapping[str, str] | None = None
) -> Config:
    """Build a :class:`Config` from already-parsed TOML data (see :func:`load_config`)."""
    # [worker] belongs to `streamx worker` (streamx.worker.config); other commands ignore it.
    _only(raw, {"engine", "output", "accounts", "exports", "state", "worker"}, "the configuration")
    secrets = Secrets(os.environ if env is None else env, base_dir)
    engine = _engine(_table(raw, "engine"), base_dir)
    output = _output(_table(raw, "output"), secrets, base_dir)
    accounts = {
        name: _account(name, body, secrets, base_dir)
        for name, body in _named(raw.get("accounts", {}), "accounts")
    }
    exports = tuple(_export(name, body) for name, body in _named(raw.get("exports", {}), "exports"))
    state = _state(_table(raw, "state"), secrets, base_dir)
    config = Config(accounts=accounts, output=output, engine=engine, exports=exports, state=state)
    check_config(config)
    return config


def check_config(config: Config) -> None:
    """Check cross-references: every export names a known account and one of its streams, and
    no two exports share a name. (Vendor-specific request checks run when the engine starts.)"""
    _check_engine(config.engine)
    seen: set[str] = set()
    for spec in config.exports:
        if spec.name in seen:
            raise ConfigError(f"two exports are named {spec.name!r}")
        seen.add(spec.name)
        resolve_stream(config, spec)


def resolve_stream(config: Config, spec: ExportSpec) -> tuple[AccountConfig, str]:
    """The spec's account and full stream name (``opens`` -> ``symplify.opens``)."""
    account = config.accounts.get(spec.account)
    if account is None:
        known = ", ".join(config.accounts) or "none"
        raise ConfigError(f"export {spec.name!r}: unknown account {spec.account!r} ({known})")
    full = spec.stream if "." in spec.stream else f"{account.vendor}.{spec.stream}"
    info = STREAMS.get(full)
    if info is None or info.source != account.vendor:
        names = [name for name, s in STREAMS.items() if s.source == account.vendor]
        raise ConfigError(
            f"export {spec.name!r}: stream {spec.stream!r} is not a {account.vendor} stream "
            f"(known: {', '.join(names)})"
        )
    return account, full


def _account(name: str, raw: Any, secrets: Secrets, base_dir: Path) -> AccountConfig:
    where = f"[accounts.{name}]"
    body = dict(_mapping(raw, where))
    vendor = body.pop("vendor", None)
    if vendor not in VENDORS:
        raise ConfigError(f"{where}: vendor must be one of {', '.join(VENDORS)}, got {vendor!r}")
    key = "token" if vendor == "symplify" else "api_key"
    other = "api_key" if vendor == "symplify" else "token"
    if any(k.startswith(other) for k in body):
        raise ConfigError(f"{where}: a {vendor} account takes {key}_env / {key}_file")
    secret = secrets.take(body, key, where, required=True)
    for literal in sorted(SECRET_KEYS & set(body)):
        raise ConfigError(f"{where}: {literal!r} is not a setting; use {key}_env or {key}_file")
    landing = body.pop("landing", None)
    account = _dataclass(
        AccountConfig,
        {**body, "name": name, "vendor": vendor, "secret": secret},
        where,
    )
    if landing is not None:
        if vendor != "cordial":
            raise ConfigError(f"{where}: only Cordial accounts have a landing zone")
        account = replace(account, landing=_landing(landing, secrets, base_dir, f"{where}.landing"))
    if vendor == "cordial" and account.landing is None:
        raise ConfigError(f"{where}: a Cordial account needs a [landing] zone")
    if account.max_transfers is not None and account.max_transfers < 1:
        raise ConfigError(f"{where}: max_transfers must be >= 1")
    if account.records_per_file < 1:
        raise ConfigError(f"{where}: records_per_file must be >= 1")
    return account


def _output(raw: Mapping[str, Any], secrets: Secrets, base_dir: Path) -> OutputConfig:
    body = dict(raw)
    options = secret_options(body.pop("sink", {}), secrets, "[output.sink]")
    if "options" in body:
        raise ConfigError("[output]: sink options go in an [output.sink] table")
    output = _dataclass(OutputConfig, body, "[output]")
    if output.url is not None and "dir" in body:
        raise ConfigError("[output]: give dir or url, not both")
    if options and output.url is None:
        raise ConfigError("[output.sink] options need an [output] url")
    try:  # an unknown format, a bad compression or a missing extra fails at load time
        check_output(output.format, output.compression, output.compression_level)
    except ConfigError as exc:
        raise ConfigError(f"[output]: {exc.message}") from None
    if not os.path.isabs(output.dir):
        output = replace(output, dir=str(base_dir / output.dir))
    return replace(output, options=options)


def _state(raw: Mapping[str, Any], secrets: Secrets, base_dir: Path) -> StateConfig:
    body = dict(raw)
    url = secrets.take(body, "url", "[state]", required=False) if _url_secret(body) else None
    state = _dataclass(StateConfig, body, "[state]")
    if url is not None:
        state = replace(state, url=url)
    if state.url is not None:
        if "path" in body:
            raise ConfigError("[state]: give path or url, not both")
        if not state.url.startswith(("postgres://", "postgresql://")):
            raise ConfigError("[state]: url must be a postgres:// or postgresql:// URL")
        if "url" in body and urlsplit(state.url).password:
            raise ConfigError("[state]: url holds a password; use url_env or url_file")
    if state.checkpoint_seconds < 0 or state.lease_seconds <= 0:
        raise ConfigError("[state]: checkpoint_seconds must be >= 0 and lease_seconds > 0")
    if not os.path.isabs(state.path):
        state = replace(state, path=str(base_dir / state.path))
    return state


def _url_secret(body: Mapping[str, Any]) -> bool:
    return "url_env" in body or "url_file" in body


def _landing(raw: Any, secrets: Secrets, base_dir: Path, where: str) -> LandingConfig:
    body = dict(_mapping(raw, where))
    kind = _text(body.pop("type", None), f"{where}.type")
    directory = body.pop("dir", None)
    if directory is not None:
        directory = _text(directory, f"{where}.dir")
        directory = directory if os.path.isabs(directory) else str(base_dir / directory)
    prefix = _text(body.pop("prefix", "streamx"), f"{where}.prefix").strip("/")
    options = secret_options(body, secrets, where)
    if kind == "local" and directory is None:
        raise ConfigError(f"{where}: a local landing zone needs dir")
    return LandingConfig(type=kind, dir=directory, prefix=prefix, options=options)


def _export(name: str, raw: Any) -> ExportSpec:
    where = f"[exports.{name}]"
    body = dict(_mapping(raw, where))
    options = body.pop("options", {})
    spec = _dataclass(ExportSpec, {**body, "name": name}, where)
    spec = replace(spec, options=dict(_mapping(options, f"{where}.options")))
    if spec.dt is not None:
        try:
            dt.date.fromisoformat(spec.dt)
        except ValueError:
            raise ConfigError(f"{where}: dt must be YYYY-MM-DD, got {spec.dt!r}") from None
    return spec


def _engine(raw: Mapping[str, Any], base_dir: Path) -> EngineConfig:
    engine = _dataclass(EngineConfig, raw, "[engine]")
    if engine.ca_file is not None:
        path = engine.ca_file if os.path.isabs(engine.ca_file) else str(base_dir / engine.ca_file)
        if not os.path.isfile(path):
            raise ConfigError(f"[engine] ca_file {path} does not exist")
        engine = replace(engine, ca_file=path)
    return engine


def _check_engine(engine: EngineConfig) -> None:
    for item in fields(EngineConfig):
        value = getattr(engine, item.name)
        if isinstance(value, int | float) and value <= 0:
            raise ConfigError(f"[engine] {item.name} must be > 0, got {value}")
    if engine.poll_backoff < 1:
        raise ConfigError("[engine] poll_backoff must be >= 1")
    if engine.poll_interval_max < engine.poll_interval:
        raise ConfigError("[engine] poll_interval_max must be >= poll_interval")


# --- small TOML helpers ----------------------------------------------------------------------


def _named(raw: Any, what: str) -> list[tuple[str, Any]]:
    """``[what.NAME]`` tables or a ``[[what]]`` array whose items carry ``name``."""
    if isinstance(raw, dict):
        return list(raw.items())
    if not isinstance(raw, list):
        raise ConfigError(f"[{what}] must be tables or an array of tables")
    items = []
    for index, item in enumerate(raw):
        body = dict(_mapping(item, f"[[{what}]] #{index + 1}"))
        name = _text(body.pop("name", None), f"[[{what}]] #{index + 1}.name")
        items.append((name, body))
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[{what}]]: names must be unique")
    return items


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _mapping(raw.get(key, {}), f"[{key}]")


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    return raw


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string")
    return value


def _only(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")


T = TypeVar("T")
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


def _dataclass(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    """Build dataclass ``cls`` from TOML keys, checking names and scalar types."""
    known = {item.name: item for item in fields(cls)}  # type: ignore[arg-type]
    _only(raw, set(known), where)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = str(known[key].type).replace(" | None", "")
        allowed = _TYPES.get(kind)
        wrong_bool = isinstance(value, bool) and kind in ("int", "float")
        if allowed is not None and (not isinstance(value, allowed) or wrong_bool):
            raise ConfigError(f"{where}: {key} must be {kind}, got {value!r}")
        values[key] = float(value) if kind == "float" else value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


__all__ = [
    "SECRET_KEYS",
    "VENDORS",
    "AccountConfig",
    "Config",
    "EngineConfig",
    "ExportSpec",
    "LandingConfig",
    "OutputConfig",
    "StateConfig",
    "check_config",
    "load_config",
    "parse_config",
    "read_toml",
    "resolve_stream",
]
