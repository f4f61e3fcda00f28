"""The [worker] table: settings with defaults, schedules naming real exports, and an error
naming the key for every mistake."""

from __future__ import annotations

import os
import socket
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from streamx.config import parse_config
from streamx.exceptions import ConfigError
from streamx.worker.config import (
    WorkerSettings,
    default_worker_id,
    load_worker_config,
    parse_worker,
)
from streamx.worker.schedule import Schedule

TOML = """
[accounts.se]
vendor = "symplify"
token_env = "SYM_TOKEN"

[exports.opens_daily]
account = "se"
stream = "opens"
period = "LAST_DAY"

[exports.clicks]
account = "se"
stream = "clicks"
period = "TODAY"

[worker]
id = "worker-a"
host = "0.0.0.0"
port = 9500
log_format = "json"
heartbeat = 20
grace = 45

[worker.schedules.opens_daily]
daily = "02:30"
timezone = "Europe/Stockholm"
catch_up = 3
jitter = 300

[worker.schedules.clicks]
every = "15m"
"""
ENV = {"SYM_TOKEN": "tok-123456"}


def config() -> Any:
    raw = {
        "accounts": {"se": {"vendor": "symplify", "token_env": "SYM_TOKEN"}},
        "exports": {"opens": {"account": "se", "stream": "opens", "period": "TODAY"}},
    }
    return parse_config(raw, env=ENV)


def test_a_whole_file_loads_with_its_worker_table(tmp_path: Path) -> None:
    path = tmp_path / "streamx.toml"
    path.write_text(TOML)
    engine_config, worker = load_worker_config(path, env=ENV)
    assert [spec.name for spec in engine_config.exports] == ["opens_daily", "clicks"]
    assert worker.settings == WorkerSettings(
        id="worker-a", host="0.0.0.0", port=9500, log_format="json", heartbeat=20.0, grace=45.0
    )
    assert worker.schedules == (
        Schedule(
            "opens_daily",
            daily=time(2, 30),
            timezone=ZoneInfo("Europe/Stockholm"),
            catch_up=3,
            jitter=300.0,
        ),
        Schedule("clicks", every=timedelta(minutes=15)),
    )


def test_without_a_worker_table_the_defaults_apply(tmp_path: Path) -> None:
    path = tmp_path / "streamx.toml"
    path.write_text(TOML.split("[worker]")[0])
    _, worker = load_worker_config(path, env=ENV)
    assert worker.schedules == ()
    assert worker.settings.id == default_worker_id()
    assert default_worker_id() == f"{socket.gethostname()}-{os.getpid()}"
    assert worker.settings.port == 9464 and worker.settings.log_format == "text"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"prot": 1}, "unknown key 'prot'"),
        ({"port": "80"}, "port must be int"),
        ({"port": True}, "port must be int"),
        ({"port": 70000}, "port must be 0..65535"),
        ({"heartbeat": 31}, "at most half of [state] lease_seconds (60.0 s)"),
        ({"lease_seconds": 10}, "unknown key 'lease_seconds'"),
        ({"max_exports": 0}, "max_exports must be > 0"),
        ({"log_format": "xml"}, "log_format must be one of json, text"),
        ({"grace": -1}, "grace must be >= 0"),
        ({"tick": 200}, "max_tick_age must be greater than tick"),
        ({"schedules": {"nope": {"every": "1h"}}}, "no export named 'nope' (opens)"),
        ({"schedules": {"opens": {}}}, "exactly one of every or daily"),
        ({"schedules": {"opens": {"every": "1h", "daily": "01:00"}}}, "exactly one"),
        ({"schedules": {"opens": {"every": "1 hour"}}}, "looks like 15m"),
        ({"schedules": {"opens": {"daily": "25:00"}}}, "looks like 02:30"),
        ({"schedules": {"opens": {"daily": "01:00", "timezone": "Mars/Olympus"}}}, "timezone"),
        ({"schedules": {"opens": {"every": "1h", "timezone": "UTC"}}}, "applies to daily"),
        ({"schedules": {"opens": {"every": "1h", "catch_up": 0}}}, "catch_up must be >= 1"),
        ({"schedules": {"opens": {"every": "1h", "catch_up": 1.5}}}, "catch_up must be int"),
        ({"schedules": {"opens": {"every": "1h", "jitter": -5}}}, "jitter must be >= 0"),
        ({"schedules": {"opens": {"every": "1h", "cron": "* * *"}}}, "unknown key(s) cron"),
        ({"schedules": {"opens": "1h"}}, "must be a table"),
    ],
)
def test_mistakes_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_worker(table, config())
    assert message in str(caught.value)


def test_a_worker_table_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[worker\] must be a table"):
        parse_worker("on", config())


def test_an_unreadable_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_worker_config(tmp_path / "missing.toml", env=ENV)
    bad = tmp_path / "bad.toml"
    bad.write_text("[worker\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_worker_config(bad, env=ENV)
