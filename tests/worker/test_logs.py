"""Structured logs: JSON and text lines with the export's identity, one per state change, and
never a secret, whether it arrives in a message, its arguments, a URL, a header, a DSN, an
exception text or a chained traceback, from streamx or from a third-party logger."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamx.config import ExportSpec, parse_config
from streamx.engine.export import EngineEvent
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider
from streamx.vendors.base import JobStatus
from streamx.worker.logs import (
    Redactor,
    configure_logging,
    event_logger,
    log_state_change,
    secrets_from_config,
)

SYM_TOKEN = "symTok-9f8e7d6c5b4a3921"
COR_KEY = "corKey-0a1b2c3d4e5f6789"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_SESSION = "FQoGZXIvYXdzEJr-session-token"
LANDING_WRITE = "landWrite-Secret-123456"
SFTP_PASSWORD = "sftp-Passw0rd-xyz"
PG_PASSWORD = "pgPass-4242-secret"
SIGNATURE = "0123456789abcdef0123456789abcdef"
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/result/5004/1_result.json?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential=AKIDEXAMPLE%2F20260101&X-Amz-Signature={SIGNATURE}&partNumber=3"
)
SECRETS = [SYM_TOKEN, COR_KEY, S3_SECRET, S3_SESSION, LANDING_WRITE, SFTP_PASSWORD, PG_PASSWORD]
LEAKS = [*SECRETS, SIGNATURE, "AKIDEXAMPLE", base64.b64encode(f"{COR_KEY}:".encode()).decode()]


def real_config() -> Any:
    raw = {
        "state": {"url_env": "PG_URL"},
        "output": {
            "url": "s3://out-bucket/records",
            "sink": {
                "access_key_id": "AKIAOUTPUT",
                "secret_access_key_env": "S3_SECRET",
                "session_token_env": "S3_SESSION",
            },
        },
        "accounts": {
            "sym": {"vendor": "symplify", "customer_id": "5004", "token_env": "SYM_TOKEN"},
            "cor": {
                "vendor": "cordial",
                "api_key_env": "COR_KEY",
                "landing": {
                    "type": "s3",
                    "bucket": "landing",
                    "aws_secret_access_key_env": "LANDING_WRITE",
                },
            },
            "cor2": {
                "vendor": "cordial",
                "api_key_env": "COR_KEY",
                "landing": {"type": "sftp", "server": "h", "password_env": "SFTP_PASSWORD"},
            },
        },
    }
    env = {
        "SYM_TOKEN": SYM_TOKEN,
        "COR_KEY": COR_KEY,
        "S3_SECRET": S3_SECRET,
        "S3_SESSION": S3_SESSION,
        "LANDING_WRITE": LANDING_WRITE,
        "SFTP_PASSWORD": SFTP_PASSWORD,
        "PG_URL": f"postgresql://streamx:{PG_PASSWORD}@db.internal:5432/streamx",
    }
    return parse_config(raw, env=env)


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    """Yields the stream the test's configure_logging writes to; removes the handler after."""
    buffer, root = io.StringIO(), logging.getLogger()
    level = root.level
    yield buffer
    for handler in [h for h in root.handlers if h.get_name() == "streamx"]:
        root.removeHandler(handler)
    root.setLevel(level)


def test_every_resolved_secret_of_the_configuration_is_known() -> None:
    secrets = secrets_from_config(real_config())
    assert secrets == {*SECRETS}


def _log_everything() -> None:
    log = logging.getLogger("streamx.engine")
    log.info("calling Symplify with token %s", SYM_TOKEN)
    log.info("GET %s", PRESIGNED)
    log.warning(
        "sent headers {'Authorization': 'Basic %s'}",
        base64.b64encode(f"{COR_KEY}:".encode()).decode(),
    )
    log.warning("state store postgresql://streamx:%s@db.internal:5432/streamx is down", PG_PASSWORD)
    log.warning("psql said: password %s rejected", PG_PASSWORD)
    logging.getLogger("aiohttp.client").error("echo: X-Carma-Authentication-Token: %s", SYM_TOKEN)
    log.error("boto said: aws_secret_access_key=%s; session_token: %s", S3_SECRET, S3_SESSION)
    try:
        try:
            raise ConnectionError(f"sftp login failed with password={SFTP_PASSWORD}")
        except ConnectionError as inner:
            raise RuntimeError(f"landing {LANDING_WRITE} unusable; retried {PRESIGNED}") from inner
    except RuntimeError:
        log.exception("export opens-1 crashed")
    log_state_change(
        "opens-1",
        "failed",
        account="sym",
        stream="symplify.opens",
        export_id="101111",
        detail=f"HTTP 403 from {PRESIGNED}: Request has expired (token={SYM_TOKEN})",
        key="opens@2026-01-01T00:00:00Z",
        level=logging.ERROR,
    )


def test_json_lines_carry_the_fields_and_no_secret(capture: io.StringIO) -> None:
    configure_logging("json", stream=capture, secrets=secrets_from_config(real_config()))
    _log_everything()
    text = capture.getvalue()
    for leak in LEAKS:
        assert leak not in text, leak
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert len(lines) == 9
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    crash = next(line for line in lines if line["msg"] == "export opens-1 crashed")
    assert "ConnectionError" in crash["exc"] and "RuntimeError" in crash["exc"]
    assert "REDACTED" in crash["exc"]
    state = lines[-1]
    assert {k: state[k] for k in ("export", "state", "account", "stream", "export_id", "key")} == {
        "export": "opens-1",
        "state": "failed",
        "account": "sym",
        "stream": "symplify.opens",
        "export_id": "101111",
        "key": "opens@2026-01-01T00:00:00Z",
    }
    assert state["level"] == "ERROR" and state["ts"].endswith("Z")
    assert "bucket.s3.amazonaws.com/result/5004/1_result.json" in state["detail"]
    assert "partNumber=3" in state["detail"]  # only the secret parts go


def test_text_lines_carry_the_fields_and_no_secret(capture: io.StringIO) -> None:
    configure_logging("text", stream=capture, secrets=secrets_from_config(real_config()))
    _log_everything()
    text = capture.getvalue()
    for leak in LEAKS:
        assert leak not in text, leak
    assert "Traceback" in text and "db.internal:5432" in text
    last = text.splitlines()[-1]
    assert "ERROR streamx.worker.state: export opens-1: failed: HTTP 403 from" in last
    assert last.endswith(
        "(export=opens-1 export_id=101111 account=sym stream=symplify.opens state=failed "
        "detail=" + last.split("detail=")[1]
    )


def test_configuring_twice_replaces_the_handler(capture: io.StringIO) -> None:
    other = io.StringIO()
    configure_logging("text", stream=other)
    configure_logging("json", stream=capture)
    logging.getLogger("streamx").warning("once")
    assert other.getvalue() == "" and orjson.loads(capture.getvalue())["msg"] == "once"
    with pytest.raises(ValueError):
        configure_logging("yaml", stream=capture)  # type: ignore[arg-type]


def test_the_redactor_ignores_too_short_values_and_scrubs_longest_first() -> None:
    redactor = Redactor(["abc", "secret-value-long", "secret-value"])
    assert redactor("abc secret-value-long secret-value") == "abc REDACTED REDACTED"


def test_event_logger_logs_each_state_change_once(capture: io.StringIO) -> None:
    configure_logging("json", stream=capture)
    on_event = event_logger(lambda name: ("sym", "symplify.opens"))
    for event in [
        EngineEvent("e1", "started", "101", "symplify id 101"),
        EngineEvent("e1", "status", "101", "PENDING", JobStatus("PENDING")),
        EngineEvent("e1", "status", "101", "PENDING", JobStatus("PENDING")),
        EngineEvent("e1", "status", "101", "FINISHED", JobStatus("FINISHED", done=True)),
        EngineEvent("e1", "retry", "101", f"#1 in 0.5 s after: HTTP 429 from {PRESIGNED}"),
        EngineEvent("e1", "transfer_start", "101"),
        EngineEvent("e1", "progress", "101"),
        EngineEvent("e1", "progress", "101"),
        EngineEvent("e1", "transfer_end", "101"),
        EngineEvent("e1", "done", "101", "30 records"),
    ]:
        on_event(event)
    lines = [orjson.loads(line) for line in capture.getvalue().splitlines()]
    assert [(line["state"], line["level"]) for line in lines] == [
        ("started", "INFO"),
        ("vendor PENDING", "INFO"),
        ("vendor FINISHED", "INFO"),
        ("retry", "WARNING"),
        ("transfer_start", "INFO"),
        ("transfer_end", "INFO"),
        ("done", "INFO"),
    ]
    assert all(
        (line["export"], line["export_id"], line["account"], line["stream"])
        == ("e1", "101", "sym", "symplify.opens")
        for line in lines
    )
    assert SIGNATURE not in capture.getvalue()


@pytest.mark.asyncio
async def test_a_real_engine_run_logs_every_export_with_its_identity(
    capture: io.StringIO, tmp_path: Path
) -> None:
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    async with SimHarness(SeededProvider(rows=10), directory=tmp_path) as sims:
        config = sims.config()
        configure_logging("json", stream=capture, secrets=secrets_from_config(config))
        specs = [ExportSpec(f"opens-{n}", "sym", "opens", period="LAST_DAY") for n in range(3)]
        streams = {spec.name: "symplify.opens" for spec in specs}
        on_event = event_logger(lambda name: ("sym", streams[name]))
        results = await sims.run(specs, config, on_event=on_event)
    assert all(result.ok for result in results)
    text = capture.getvalue()
    for secret in secrets_from_config(config):
        assert secret not in text
    lines = [orjson.loads(line) for line in text.splitlines()]
    states = [line for line in lines if line["logger"] == "streamx.worker.state"]
    for result in results:
        mine = [line for line in states if line["export"] == result.name]
        assert [line["state"] for line in mine].count("started") == 1
        assert mine[-1]["state"] == "done"
        assert all(line["export_id"] == result.remote_id for line in mine)
        assert all((line["account"], line["stream"]) == ("sym", "symplify.opens") for line in mine)
