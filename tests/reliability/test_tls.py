"""TLS: a server whose certificate streamx cannot verify is refused, unless its CA is trusted.

The simulators are put behind a TLS terminator on loopback whose certificate is issued by a
private CA made here with ``cryptography``. Without ``[engine] ca_file`` (or an SSL context)
every vendor call and the result download are refused with a permanent
:class:`~streamx.engine.errors.TLSVerificationError`, without a retry and without a single
request reaching the server; with the CA trusted the export is exact. A certificate for another
host name, an expired certificate or one from an untrusted CA is refused even then.

SSH host keys are verified by the tests next to the SFTP code (not repeated here):
``tests/sinks/test_sftp_sink.py`` (``test_changed_host_key_is_refused``,
``test_unknown_host_is_refused``, ``test_pinned_host_key_replaces_known_hosts``) and
``tests/sources/test_sftp.py`` (``test_host_key_mismatch_is_refused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from proxied_sims import ProxiedSims, proxied_sims

from streamx.config import ExportSpec, parse_config
from streamx.engine.clock import SystemClock
from streamx.engine.errors import TLSVerificationError
from streamx.engine.retry import RetryPolicy
from streamx.engine.runner import Engine
from streamx.exceptions import ConfigError
from streamx.sources.http import HttpSource, make_session, tls_context
from streamx.testing.faults import ROUTE_CORDIAL_EXPORT, ROUTE_SYMPLIFY_START
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START

OPENS = ExportSpec("opens", "sym", "opens", period="LAST_DAY")
ACTIVITY = ExportSpec("activity", "cor", "contact_activity", start=ACTIVITY_START, end=ACTIVITY_END)
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _quiet_handshakes() -> None:
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # refused handshakes are logged


# --- a private CA --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def make_ca(common: str = "streamx test CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def server_context(
    ca: Authority, directory: Path, *, host: str = "127.0.0.1", expired: bool = False
) -> ssl.SSLContext:
    """A server TLS context with a certificate for ``host`` issued by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    end = NOW - dt.timedelta(hours=1) if expired else NOW + dt.timedelta(days=7)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=2))
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{host}-{expired}.crt", directory / f"{host}-{expired}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class TLSFront:
    """A TLS terminator on loopback forwarding plaintext to ``target_port``."""

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self.target_port, self.context = target_port, context
        self.handshakes = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> TLSFront:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1  # only completed handshakes get here
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()


# --- fixtures ----------------------------------------------------------------------------------


@dataclass
class Secured:
    net: ProxiedSims
    ca: Authority
    ca_file: Path
    fronts: dict[str, TLSFront]

    def config(self, **engine: Any) -> Any:
        base = self.net.config()
        accounts = dict(base.accounts)
        customer = self.net.sims.symplify.customer_id
        accounts["sym"] = dataclasses.replace(
            accounts["sym"], base_url=f"{self.fronts['symplify'].url}/rest/{customer}"
        )
        accounts["cor"] = dataclasses.replace(
            accounts["cor"], base_url=f"{self.fronts['cordial'].url}/v2"
        )
        return dataclasses.replace(
            base, accounts=accounts, engine=dataclasses.replace(base.engine, **engine)
        )


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@contextlib.asynccontextmanager
async def secured(directory: Path, **certificate: Any) -> AsyncIterator[Secured]:
    ca = make_ca()
    context = server_context(ca, directory, **certificate)
    async with proxied_sims(directory / "sims", rows=100) as net:
        targets = {
            "symplify": _port(net.sims.symplify.base_url),
            "store": _port(net.objects.base_url),
            "cordial": _port(net.sims.cordial.base_url),
        }
        async with contextlib.AsyncExitStack() as stack:
            fronts = {
                name: await stack.enter_async_context(TLSFront(port, context))
                for name, port in targets.items()
            }
            net.objects.public_base = fronts["store"].url  # presigned URLs over HTTPS too
            yield Secured(net, ca, ca.pem(directory / "ca.pem"), fronts)


@pytest_asyncio.fixture
async def tls(tmp_path: Path) -> AsyncIterator[Secured]:
    async with secured(tmp_path) as running:
        yield running


async def run(secured: Secured, session: aiohttp.ClientSession | None = None) -> list[Any]:
    async with Engine(secured.config(), session=session) as engine:
        return await engine.run([OPENS, ACTIVITY])


# --- tests -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_untrusted_certificate_is_refused_at_once(tls: Secured) -> None:
    results = await run(tls)  # the engine's own session: system trust store only
    for result in results:
        assert result.error_type == "TLSVerificationError", result.error
        assert isinstance(result.exception, TLSVerificationError)
        assert result.retries == 0  # permanent: retrying cannot make a certificate valid
        assert "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
    assert all(front.handshakes == 0 for front in tls.fronts.values())
    assert tls.net.plan.seen[ROUTE_SYMPLIFY_START] == tls.net.plan.seen[ROUTE_CORDIAL_EXPORT] == 0


@pytest.mark.asyncio
async def test_a_trusted_private_ca_makes_every_call_work(tls: Secured) -> None:
    session = make_session(ca_file=str(tls.ca_file), read_timeout=5)
    async with session:
        results = await run(tls, session)
    for result in results:
        tls.net.sims.assert_exact(result, tls.config())
    assert tls.fronts["store"].handshakes >= 1  # the download went over TLS as well
    assert all(url.startswith("https://") for url in tls.net.objects.issued)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "certificate", [{"host": "other.example"}, {"expired": True}], ids=["wrong-host", "expired"]
)
async def test_a_bad_certificate_is_refused_even_from_a_trusted_ca(
    tmp_path: Path, certificate: dict[str, Any]
) -> None:
    async with (
        secured(tmp_path, **certificate) as bad,
        make_session(ca_file=str(bad.ca_file)) as session,
    ):
        results = await run(bad, session)
    reason = "IP address mismatch" if "host" in certificate else "certificate has expired"
    for result in results:
        assert result.error_type == "TLSVerificationError" and result.retries == 0
        assert reason in (result.error or ""), result.error


@pytest.mark.asyncio
async def test_another_ca_is_not_trusted(tls: Secured, tmp_path: Path) -> None:
    other = make_ca("someone else").pem(tmp_path / "other.pem")
    async with make_session(ca_file=str(other)) as session:
        results = await run(tls, session)
    assert {result.error_type for result in results} == {"TLSVerificationError"}


@pytest.mark.asyncio
async def test_the_download_source_refuses_an_untrusted_url(tls: Secured) -> None:
    url = f"{tls.fronts['store'].url}/anything"

    async def provide() -> str:
        return url

    async with make_session() as session:
        source = HttpSource(
            session,
            provide,
            name="result.json",
            policy=RetryPolicy(max_attempts=5),
            clock=SystemClock(),
        )
        with pytest.raises(TLSVerificationError, match=r"result\.json"):
            async for _ in source:
                pass
    assert source.resumes == 0  # refused on the first request, not retried


def test_ca_file_is_an_engine_setting_checked_at_load(tmp_path: Path) -> None:
    ca = make_ca().pem(tmp_path / "ca.pem")
    base = {"accounts": {}}
    config = parse_config({**base, "engine": {"ca_file": "ca.pem"}}, base_dir=tmp_path)
    assert config.engine.ca_file == str(ca)  # relative to the configuration file
    with pytest.raises(ConfigError, match=r"ca_file .*missing.pem does not exist"):
        parse_config({**base, "engine": {"ca_file": "missing.pem"}}, base_dir=tmp_path)
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load CA certificates"):
        tls_context(str(tmp_path / "junk.pem"))
    assert tls_context(str(ca)).verify_mode == ssl.CERT_REQUIRED
    assert tls_context(str(ca)).check_hostname


@pytest.mark.asyncio
async def test_engine_ca_file_is_used_by_the_engine(tls: Secured) -> None:
    config = tls.config(ca_file=str(tls.ca_file), read_timeout=5.0)
    async with Engine(config) as engine:
        results = await engine.run([OPENS])
    assert results[0].ok, results[0].error
