"""Nothing leaked: no credential or presigned signature in anything streamx lets out.

Every scenario runs real failures against the simulators (or a real SSH server and moto) and
captures everything an operator could see or paste into a ticket: every log record at DEBUG
(streamx's and the libraries': aiohttp, asyncssh, botocore), each export's error, ``repr`` and
the full traceback of its exception chain, the engine's progress events, every published file
(parts, manifests, quarantine files) and, for ``streamx run`` as a real subprocess, its stdout
and stderr. The captured text must not contain any secret in any of its usual spellings: the
Symplify token, the Cordial API key (and its HTTP Basic form), SFTP passwords, S3 secret keys,
and the signature of every presigned URL the object store issued.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import sys
import traceback
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import asyncssh
import pytest
import pytest_asyncio
from proxied_sims import ProxiedSims, proxied_sims

from streamx.config import ExportSpec
from streamx.engine.runner import Engine, EngineEvent, ExportResult
from streamx.s3 import S3Config
from streamx.sinks.base import Sink
from streamx.sinks.s3 import S3Sink
from streamx.sinks.sftp import SFTPSink
from streamx.ssh import SSHConfig
from streamx.testing import Faults, SymplifyFormat
from streamx.testing.faults import (
    ROUTE_CORDIAL_EXPORT,
    ROUTE_OBJECT_GET,
    ROUTE_SYMPLIFY_START,
)
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START
from streamx.vendors.cordial import basic_auth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ directory
from fixtures.servers import asyncssh_sftp_server

OPENS = ExportSpec("opens", "sym", "opens", period="LAST_DAY")
ACTIVITY = ExportSpec("activity", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END)
WRONG_TOKEN = "wrong-symplify-token-7f3a9c"
WRONG_KEY = "wrong-cordial-key-0b8e2d"
S3_SECRET = "s3-secret-access-key-9d41e7a2"
SFTP_WRONG_PASSWORD = "wrong-sftp-password-c5e1"


@pytest_asyncio.fixture
async def net(tmp_path: Path) -> AsyncIterator[ProxiedSims]:
    async with proxied_sims(tmp_path, rows=200) as running:
        yield running


class Capture:
    """Everything one scenario let out, as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def exception(self, exc: BaseException | None) -> None:
        if exc is not None:
            self.texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]

    def results(self, results: Iterable[ExportResult]) -> None:
        for result in results:
            self.texts += [repr(result), result.error or ""]
            self.exception(result.exception)
            if result.manifest is not None:
                self.texts.append(result.manifest.to_json().decode())

    def files(self, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                self.texts.append(data.decode("utf-8", "replace"))

    def logs(self, caplog: pytest.LogCaptureFixture) -> None:
        for record in caplog.records:
            self.texts.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                self.exception(record.exc_info[1])

    def assert_clean(self, secrets: Iterable[str]) -> None:
        text = "\n".join(self.texts)
        assert text, "nothing was captured"
        for secret in secrets:
            for spelling in {secret, quote(secret, safe=""), quote(secret)}:
                assert spelling not in text, f"secret leaked: {secret[:4]}..."


def secrets_of(net: ProxiedSims) -> list[str]:
    """Every credential of the simulators, and every presigned signature issued so far."""
    sims = net.sims
    found = [
        sims.symplify.token,
        sims.cordial.api_key,
        basic_auth(sims.cordial.api_key).removeprefix("Basic "),
        net.objects.secret_access_key,
        WRONG_TOKEN,
        WRONG_KEY,
        basic_auth(WRONG_KEY).removeprefix("Basic "),
    ]
    for url in net.objects.issued:
        found += parse_qs(urlsplit(url).query)["Signature"]
    return found


async def run_captured(
    net: ProxiedSims,
    specs: list[ExportSpec],
    caplog: pytest.LogCaptureFixture,
    *,
    sink: Sink | None = None,
    **accounts: dict[str, Any],
) -> tuple[list[ExportResult], Capture]:
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    events: list[EngineEvent] = []
    config = net.config(**accounts)
    async with Engine(config, sink=sink, on_event=events.append) as engine:
        results = await engine.run(specs)
    capture.results(results)
    capture.texts += [f"{event.kind} {event.detail} {event.status}" for event in events]
    capture.logs(caplog)
    capture.files(net.sims.out)
    return results, capture


# --- vendor failures -------------------------------------------------------------------------


def _auth(net: ProxiedSims) -> dict[str, dict[str, Any]]:
    return {"sym": {"secret": WRONG_TOKEN}, "cor": {"secret": WRONG_KEY}}


def _server_errors(net: ProxiedSims) -> dict[str, dict[str, Any]]:
    net.sims.faults.set_account("5004", Faults(status=503), route=ROUTE_SYMPLIFY_START)
    net.sims.faults.push(ROUTE_CORDIAL_EXPORT, Faults(status=502), times=10)
    return {}


def _expired_urls(net: ProxiedSims) -> dict[str, dict[str, Any]]:
    net.sims.faults.set_account("5004", Faults(expire_url=True), route=ROUTE_OBJECT_GET)
    return {}


def _corrupt(net: ProxiedSims) -> dict[str, dict[str, Any]]:
    net.sims.provider.symplify = SymplifyFormat("jsonl", gzip=True)
    net.sims.faults.set_account("5004", Faults(truncate_at=3_000), route=ROUTE_OBJECT_GET)
    net.sims.faults.push(ROUTE_CORDIAL_EXPORT, Faults(truncate_at=2_000))
    return {"cor": {"compress": False}}


def _cut_and_quarantined(net: ProxiedSims) -> dict[str, dict[str, Any]]:
    """A CSV result cut mid-record: the export is published with a quarantined row."""
    net.sims.provider.symplify = SymplifyFormat("csv")
    net.sims.faults.set_account("5004", Faults(truncate_at=5_001), route=ROUTE_OBJECT_GET)
    return {}


def _dropped_downloads(net: ProxiedSims) -> dict[str, dict[str, Any]]:
    net.store.reset_after(10_000)  # every download connection: resumed again and again
    net.sims.faults.push(ROUTE_OBJECT_GET, Faults(status=503), times=2)
    return {}


SCENARIOS = {
    "auth-failure": _auth,
    "5xx": _server_errors,
    "url-expiry": _expired_urls,
    "corrupt-file": _corrupt,
    "quarantine": _cut_and_quarantined,
    "connection-drops": _dropped_downloads,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_vendor_failures_leak_no_secret(
    net: ProxiedSims, caplog: pytest.LogCaptureFixture, scenario: str
) -> None:
    accounts = SCENARIOS[scenario](net)
    results, capture = await run_captured(net, [OPENS, ACTIVITY], caplog, **accounts)
    assert net.objects.issued or scenario in ("auth-failure", "5xx")
    capture.assert_clean(secrets_of(net))
    if scenario == "url-expiry":  # the expired URL is named in the error, signature redacted
        assert results[0].error_type == "UrlExpiredError"
        assert "Signature=REDACTED" in (results[0].error or "")
    if scenario == "quarantine":
        assert results[0].ok and results[0].rows_quarantined == 1


@pytest.mark.asyncio
async def test_the_capture_would_see_a_leak(
    net: ProxiedSims, caplog: pytest.LogCaptureFixture
) -> None:
    """The detector itself: an unredacted presigned URL or key in any captured text fails."""
    results, capture = await run_captured(net, [OPENS], caplog)
    assert results[0].ok and net.objects.issued
    capture.assert_clean(secrets_of(net))
    for leak in (net.objects.issued[0], f"Authorization: {basic_auth(net.sims.cordial.api_key)}"):
        capture.texts.append(leak)
        with pytest.raises(AssertionError, match="secret leaked"):
            capture.assert_clean(secrets_of(net))
        capture.texts.pop()


# --- sink failures -----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def sftp_server(tmp_path: Path) -> AsyncIterator[Any]:
    root = tmp_path / "sftp"
    root.mkdir()

    def factory(channel: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(channel, chroot=os.fsencode(root))

    async with asyncssh_sftp_server(root, factory) as server:
        yield server


@pytest.mark.asyncio
async def test_an_sftp_login_failure_leaks_no_password(
    net: ProxiedSims, sftp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    config = SSHConfig(
        host="127.0.0.1",
        port=sftp_server.port,
        username=sftp_server.username,
        password=SFTP_WRONG_PASSWORD,
        known_hosts=sftp_server.known_hosts,
    )
    sink = SFTPSink(config, "/out")
    try:
        results, capture = await run_captured(net, [OPENS], caplog, sink=sink)
    finally:
        await sink.close()
    assert results[0].error_type == "SinkError"
    assert "login refused" in (results[0].error or "")
    capture.assert_clean([*secrets_of(net), SFTP_WRONG_PASSWORD, sftp_server.password])


@pytest.mark.asyncio
async def test_an_s3_error_leaks_no_secret_key(
    net: ProxiedSims, moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = S3Config(
        endpoint_url=moto_endpoint,
        region="us-east-1",
        access_key_id="AKIASTREAMXTEST",
        secret_access_key=S3_SECRET,
        max_attempts=1,
    )
    sink = S3Sink("no-such-bucket", "exports", config=config)
    try:
        results, capture = await run_captured(net, [OPENS], caplog, sink=sink)
    finally:
        await sink.close()
    assert results[0].error_type == "SinkError" and "NoSuchBucket" in (results[0].error or "")
    capture.assert_clean([*secrets_of(net), S3_SECRET])
    assert repr(config).count(S3_SECRET) == 0


# --- the command line --------------------------------------------------------------------------

CONFIG = """
[engine]
poll_interval = 0.02
poll_interval_max = 0.1
backoff_base = 0.01
backoff_cap = 0.05
max_attempts = 3
read_timeout = 0.5

[output]
dir = "out"

[accounts.se]
vendor = "symplify"
base_url = "{symplify}/rest/5004"
token_env = "TEST_SYMPLIFY_TOKEN"

[accounts.us]
vendor = "cordial"
base_url = "{cordial}"
api_key_file = "cordial.key"
[accounts.us.landing]
type = "local"
dir = "{landing}"

[[exports]]
name = "opens"
account = "se"
stream = "opens"
period = "LAST_DAY"

[[exports]]
name = "activity"
account = "us"
stream = "contact_activity"
start = "2026-10-31T00:00:00Z"
end = "2026-11-01T00:00:00Z"
"""
#: ``streamx run`` with the root logger at DEBUG first (run's own basicConfig is then a no-op).
DEBUG_MAIN = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
    "from streamx.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


async def streamx_run(
    net: ProxiedSims, directory: Path, *, token: str, key: str, debug: bool
) -> tuple[int, str]:
    (directory / "cordial.key").write_text(key + "\n")
    config = directory / "streamx.toml"
    sims = net.sims
    config.write_text(
        CONFIG.format(
            symplify=sims.symplify.base_url, cordial=sims.cordial.base_url, landing=sims.landing
        )
    )
    head = ["-c", DEBUG_MAIN] if debug else ["-m", "streamx"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *head, "run", "--config", str(config), "--json", "-v",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEST_SYMPLIFY_TOKEN": token},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


@pytest.mark.asyncio
@pytest.mark.parametrize("debug", [False, True], ids=["verbose", "debug"])
async def test_streamx_run_output_leaks_no_secret(
    net: ProxiedSims, tmp_path: Path, debug: bool
) -> None:
    sims = net.sims
    # opens: its result URL has expired; activity: a wrong API key.
    sims.faults.set_account("5004", Faults(expire_url=True), route=ROUTE_OBJECT_GET)
    code, output = await streamx_run(
        net, tmp_path, token=sims.symplify.token, key=WRONG_KEY, debug=debug
    )
    assert code == 1
    assert "UrlExpiredError" in output and "AuthError" in output
    assert ("DEBUG" in output) == debug
    capture = Capture()
    capture.texts.append(output)
    if (tmp_path / "out").exists():
        capture.files(tmp_path / "out")
    capture.assert_clean(secrets_of(net))
    # and once more with a wrong token and a cut connection, then success for both
    sims.faults.clear()
    code, output = await streamx_run(
        net, tmp_path, token=WRONG_TOKEN, key=sims.cordial.api_key, debug=debug
    )
    assert code == 1 and '"status":"done"' in output and "AuthError" in output
    capture.texts.append(output)
    capture.files(tmp_path / "out")
    capture.assert_clean(secrets_of(net))
