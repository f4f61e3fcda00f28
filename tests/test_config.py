"""streamx.toml: every key checked at load time, secrets only from the environment or files."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from streamx.config import (
    EngineConfig,
    ExportSpec,
    LandingConfig,
    OutputConfig,
    load_config,
    parse_config,
)
from streamx.exceptions import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
ENV = {"SYM_TOKEN": "tok-123\n", "COR_KEY": "key-456"}
BASE = """
[engine]
concurrency = 4
deadline = 600
poll_interval = 0.5

[output]
dir = "out"
format = "jsonl"
compression = "none"
records_per_part = 1000

[accounts.se]
vendor = "symplify"
base_url = "https://eu.example.com/rest/5004"
token_env = "SYM_TOKEN"

[accounts.us]
vendor = "cordial"
region = "usw2"
api_key_env = "COR_KEY"
max_transfers = 3
records_per_file = 1000
[accounts.us.landing]
type = "local"
dir = "landing"

[[exports]]
name = "opens"
account = "se"
stream = "opens"
period = "LAST_DAY"

[[exports]]
name = "activity"
account = "us"
stream = "cordial.contact_activity"
days = 1
deadline = 60
dt = "2026-11-01"
[exports.options]
selected_action_names = ["open", "click"]
"""


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "streamx.toml"
    path.write_text(text)
    return load_config(path, env=ENV if env is None else env)


def test_a_full_configuration_loads_with_every_value_typed(tmp_path: Path) -> None:
    config = _load(tmp_path, BASE)
    assert config.engine == EngineConfig(concurrency=4, deadline=600.0, poll_interval=0.5)
    assert config.output == OutputConfig(
        dir=str(tmp_path / "out"), compression="none", records_per_part=1000
    )
    se, us = config.accounts["se"], config.accounts["us"]
    assert (se.vendor, se.secret, se.base_url) == (
        "symplify",
        "tok-123",
        "https://eu.example.com/rest/5004",
    )
    assert (us.vendor, us.secret, us.region, us.max_transfers) == ("cordial", "key-456", "usw2", 3)
    assert us.landing == LandingConfig(type="local", dir=str(tmp_path / "landing"))
    assert config.exports == (
        ExportSpec("opens", "se", "opens", period="LAST_DAY"),
        ExportSpec(
            "activity", "us", "cordial.contact_activity", days=1.0, deadline=60.0,
            dt="2026-11-01", options={"selected_action_names": ["open", "click"]},
        ),
    )  # fmt: skip
    assert config.export("activity").account == "us"
    assert "tok-123" not in repr(config) and "key-456" not in repr(config)


def test_secrets_may_come_from_files_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("from-file\n")
    config = _load(tmp_path, BASE.replace('token_env = "SYM_TOKEN"', 'token_file = "token.txt"'))
    assert config.accounts["se"].secret == "from-file"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('token_env = "SYM_TOKEN"', 'token = "tok-123"', "secret in clear text"),
        ('api_key_env = "COR_KEY"', 'api_key = "k"', "secret in clear text"),
        ('token_env = "SYM_TOKEN"', 'token_env = "NOPE"', "NOPE is not set"),
        ('token_env = "SYM_TOKEN"', 'token_file = "missing.txt"', "cannot read secret file"),
        ('token_env = "SYM_TOKEN"', 'token_env = "SYM_TOKEN"\ntoken_file = "x"', "not both"),
        ('token_env = "SYM_TOKEN"', "", "missing token_env or token_file"),
        ('token_env = "SYM_TOKEN"', 'api_key_env = "COR_KEY"', "takes token_env"),
        ('token_env = "SYM_TOKEN"', 'token_env = "SYM_TOKEN"\nsecret = "x"', "not a setting"),
        ('dir = "landing"', 'dir = "landing"\npassword = "hunter2"', "secret in clear text"),
        ("concurrency = 4", "concurency = 4", "unknown key"),
        ("concurrency = 4", 'concurrency = "4"', "concurrency must be int"),
        ("concurrency = 4", "concurrency = true", "concurrency must be int"),
        ("concurrency = 4", "concurrency = 0", "must be > 0"),
        ("poll_interval = 0.5", "poll_interval = 99", "poll_interval_max must be >="),
        ('vendor = "symplify"', 'vendor = "mailchimp"', "vendor must be one of"),
        ('[accounts.us.landing]\ntype = "local"\ndir = "landing"', "", r"needs a \[landing\]"),
        ('type = "local"\ndir = "landing"', 'type = "local"', "needs dir"),
        ('account = "se"', 'account = "nobody"', "unknown account 'nobody'"),
        ('stream = "opens"', 'stream = "contacts"', "not a symplify stream"),
        ('name = "activity"', 'name = "opens"', "names must be unique"),
        ('dt = "2026-11-01"', 'dt = "yesterday"', "dt must be YYYY-MM-DD"),
        ("max_transfers = 3", "max_transfers = 0", "max_transfers must be >= 1"),
        ("[output]", "[output]\ncolour = 1", "unknown key"),
    ],
)
def test_mistakes_are_config_errors_naming_the_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in BASE
    with pytest.raises(ConfigError, match=message) as error:
        _load(tmp_path, BASE.replace(old, new, 1))
    assert "tok-123" not in str(error.value) and "hunter2" not in str(error.value)


def test_output_url_and_sink_options_with_secrets(tmp_path: Path) -> None:
    text = BASE.replace('dir = "out"', 'url = "s3://bucket/exports"').replace(
        "records_per_part = 1000",
        'records_per_part = 1000\n[output.sink]\nregion = "eu-north-1"\n'
        'access_key_id = "AKIA1"\nsecret_access_key_env = "SYM_TOKEN"',
    )
    output = _load(tmp_path, text).output
    assert output.url == "s3://bucket/exports"
    assert output.options == {
        "region": "eu-north-1", "access_key_id": "AKIA1", "secret_access_key": "tok-123",
    }  # fmt: skip
    assert "tok-123" not in repr(output)
    with pytest.raises(ConfigError, match="secret in clear text"):
        _load(
            tmp_path, text.replace('secret_access_key_env = "SYM_TOKEN"', 'secret_access_key = "x"')
        )
    with pytest.raises(ConfigError, match="dir or url"):
        _load(tmp_path, text.replace('url = "s3', 'dir = "d"\nurl = "s3'))
    with pytest.raises(ConfigError, match="need an \\[output\\] url"):
        _load(tmp_path, text.replace('url = "s3://bucket/exports"', 'dir = "d"'))


def test_array_form_of_accounts_and_table_form_of_exports(tmp_path: Path) -> None:
    text = """
[[accounts]]
name = "se"
vendor = "symplify"
base_url = "https://h"
customer_id = "1"
token_env = "SYM_TOKEN"

[exports.daily]
account = "se"
stream = "clicks"
period = "TODAY"
"""
    config = _load(tmp_path, text)
    assert list(config.accounts) == ["se"] and config.accounts["se"].customer_id == "1"
    assert config.exports == (ExportSpec("daily", "se", "clicks", period="TODAY"),)
    with pytest.raises(ConfigError, match="no export named 'weekly'"):
        config.export("weekly")


def test_unreadable_or_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "[engine\n")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"engines": {}})


def test_the_documented_example_configuration_loads(tmp_path: Path) -> None:
    example = DOCS.read_text().split("```toml", 1)[1].split("```", 1)[0]
    config = parse_config(
        tomllib.loads(example),
        base_dir=tmp_path,
        env={"ACME_SYMPLIFY_TOKEN": "t", "ACME_CORDIAL_KEY": "k"},
    )
    assert [spec.name for spec in config.exports] == ["opens-yesterday", "activity-oct-31"]
    assert config.output.dir == str(tmp_path / "streamx-out")
