"""HttpSource against a tiny raw-asyncio HTTP/1.1 object server with fault knobs.

The server is raw asyncio (not aiohttp.web) because the faults need byte-level control: cut a
body after N bytes, lie about Content-Length, stall mid-body, end a chunked body without its
terminator. Recoverable faults must yield the body exactly (no byte lost or duplicated);
unrecoverable ones must raise the right error, whose text never holds the URL's signature.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import re
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streamx.engine.backoff import Backoff
from streamx.engine.clock import FakeClock
from streamx.engine.errors import (
    AuthError,
    IncompleteBodyError,
    ObjectChangedError,
    RequestRejectedError,
    TLSVerificationError,
    UrlExpiredError,
)
from streamx.engine.retry import RetryPolicy
from streamx.sources.http import MIN_CHUNK_SIZE, HttpSource, make_session

BODY = random.Random(20260301).randbytes(5 << 20)
MIB = 1 << 20
SECRETS = ("SIGSECRET", "AKIASECRET")
EXPIRED_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires></Error>"
)


@dataclass
class Fault:
    """What the server does to one request (faults are used in order, then it behaves)."""

    kind: str  # drop | stall | status | expire_after_drop | change_after_drop | chunked_cut
    at: int = 0
    status: int = 0
    body: bytes = b""


class ObjectServer:
    """Serves BODY at any path, honouring Range and If-Match like S3, plus fault knobs."""

    def __init__(self, body: bytes = BODY) -> None:
        self.body = body
        self.etag = '"v1"'
        self.faults: list[Fault] = []
        self.requests: list[dict[str, str]] = []
        self.expired: set[str] = set()
        self.ignore_range = False
        self.ignore_if_match = False
        self.lie_extra = 0
        self.range_cap: int | None = None  # serve at most this many bytes per range request
        self.range_shift = 0  # serve ranges from this many bytes after the asked start
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ssl_context)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        target = head[0].split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        self.requests.append({"target": target, **headers})
        fault = self.faults.pop(0) if self.faults else Fault("none")
        signature = parse_qs(urlsplit(target).query).get("Signature", [""])[0]
        if signature in self.expired:
            return await self._send_simple(writer, 403, EXPIRED_XML)
        if fault.kind == "status":
            return await self._send_simple(writer, fault.status, fault.body)
        if_match = headers.get("if-match")
        if if_match and if_match != self.etag and not self.ignore_if_match:
            return await self._send_simple(writer, 412, b"<Error><Code>PreconditionFailed</Code>")
        await self._send_object(writer, headers.get("range", ""), fault)
        if fault.kind == "expire_after_drop":
            self.expired.add(signature)
        if fault.kind == "change_after_drop":
            self.etag = '"v2"'

    async def _send_object(self, writer: asyncio.StreamWriter, range_: str, fault: Fault) -> None:
        size = len(self.body) + self.lie_extra
        match = re.fullmatch(r"bytes=(\d+)-", range_)
        start = int(match[1]) + self.range_shift if match and not self.ignore_range else 0
        if start >= size:
            return await self._send_simple(writer, 416, b"", {"Content-Range": f"bytes */{size}"})
        extra = {"ETag": self.etag, "Accept-Ranges": "bytes"}
        end = size
        if match and not self.ignore_range:
            end = size if self.range_cap is None else min(size, start + self.range_cap)
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        payload = memoryview(self.body)[start:end]
        if fault.kind == "chunked_cut":
            extra["Transfer-Encoding"] = "chunked"
            writer.write(self._head(200, extra))
            for i in range(0, len(payload), 256 * 1024):
                piece = payload[i : i + 256 * 1024]
                writer.write(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
                await writer.drain()
            return  # connection closed without the terminating 0-size chunk
        extra["Content-Length"] = str(end - start)
        writer.write(self._head(206 if "Content-Range" in extra else 200, extra))
        if fault.kind in ("drop", "stall", "expire_after_drop", "change_after_drop"):
            payload = payload[: fault.at]
        for i in range(0, len(payload), 256 * 1024):
            writer.write(bytes(payload[i : i + 256 * 1024]))
            await writer.drain()
        if fault.kind == "stall":
            await asyncio.sleep(3600)

    async def _send_simple(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        extra: dict[str, str] | None = None,
    ) -> None:
        writer.write(self._head(status, {"Content-Length": str(len(body)), **(extra or {})}))
        writer.write(body)
        await writer.drain()

    @staticmethod
    def _head(status: int, headers: dict[str, str]) -> bytes:
        lines = [
            f"HTTP/1.1 {status} X",
            "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Urls:
    """A URL provider handing out a new presigned-looking URL on each call."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return (
            f"{self.base}/result/5004/3232465_result.json?Expires=1403187484"
            f"&AWSAccessKeyId=AKIASECRET&Signature=SIGSECRET{self.calls}"
        )


@pytest_asyncio.fixture
async def server() -> AsyncIterator[ObjectServer]:
    srv = ObjectServer()
    await srv.start()
    yield srv
    await srv.close()


def make_source(server: ObjectServer, session: object, **kwargs: object) -> tuple[HttpSource, Urls]:
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    urls = Urls(f"http://127.0.0.1:{port}")
    options: dict[str, object] = {
        "name": "symplify opens 101111",
        "policy": RetryPolicy(backoff=Backoff(base=0.5, cap=2.0), max_attempts=4),
        "clock": FakeClock(),
        "rng": random.Random(0),
        "vendor": "symplify",
        "account": "5004",
        "export_id": "101111",
        **kwargs,
    }
    return HttpSource(session, urls, **options), urls  # type: ignore[arg-type]


async def collect(source: HttpSource, start: int = 0) -> tuple[bytes, list[int]]:
    got = bytearray()
    sizes: list[int] = []
    async for chunk in source:
        sizes.append(len(chunk))
        got += chunk
        assert source.offset == start + len(got)
    return bytes(got), sizes


def assert_no_secret(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen), *map(str, seen.args)):
            for secret in SECRETS:
                assert secret not in text, text
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)


async def fetch_expecting(
    server: ObjectServer, error: type[BaseException], **kwargs: object
) -> tuple[BaseException, bytes, HttpSource]:
    got = bytearray()
    async with make_session() as session:
        source, _ = make_source(server, session, **kwargs)
        with pytest.raises(error) as info:
            async for chunk in source:
                got += chunk
    assert_no_secret(info.value)
    start = int(kwargs.get("start_offset", 0))  # type: ignore[call-overload]
    assert BODY[start:].startswith(got)  # what was delivered is a true prefix, never garbage
    assert source.offset == start + len(got)
    return info.value, bytes(got), source


# -- recoverable ---------------------------------------------------------------------------


def assert_chunk_contract(sizes: list[int], chunk_size: int = MIB) -> None:
    """One response's chunks: none empty, none above ``chunk_size``, and none below the minimum
    except the body's last one."""
    assert sizes and all(0 < size <= chunk_size for size in sizes), sizes
    assert all(size >= min(chunk_size, MIN_CHUNK_SIZE) for size in sizes[:-1]), sizes


@pytest.mark.asyncio
@pytest.mark.parametrize("chunk_size", [MIB, 100_000, 10_000])
async def test_clean_download_in_bounded_chunks(server: ObjectServer, chunk_size: int) -> None:
    async with make_session() as session:
        source, urls = make_source(server, session, chunk_size=chunk_size)
        got, sizes = await collect(source)
    assert got == BODY
    assert_chunk_contract(sizes, chunk_size)
    if chunk_size <= MIN_CHUNK_SIZE:  # the minimum is the chunk size: gathered to exactly it
        assert sizes[:-1] == [chunk_size] * (len(sizes) - 1)
    assert (source.offset, source.total, source.etag, source.resumes) == (
        len(BODY),
        len(BODY),
        '"v1"',
        0,
    )
    assert urls.calls == 1
    request = server.requests[0]
    assert request["accept-encoding"] == "identity"
    assert "range" not in request and "if-match" not in request


@pytest.mark.asyncio
async def test_trickling_server_still_yields_chunks_of_the_minimum() -> None:
    """A peer sending 1 KiB at a time with pauses: every read is tiny, yet chunks are gathered
    up to the minimum (not one chunk per packet), and the bytes are exact."""
    body = random.Random(7).randbytes(3 * MIN_CHUNK_SIZE + 5_000)
    piece = 1024
    writes = 0

    async def trickle(request: web.Request) -> web.StreamResponse:
        nonlocal writes
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        for start in range(0, len(body), piece):
            await response.write(body[start : start + piece])
            writes += 1
            if writes % 4 == 0:
                await asyncio.sleep(0.002)  # let the client drain what arrived so far
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/result.json", trickle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]

        async def url() -> str:
            return f"http://127.0.0.1:{port}/result.json"

        async with make_session() as session:
            source = HttpSource(
                session, url, name="trickle", policy=RetryPolicy(), clock=FakeClock()
            )
            got, sizes = await collect(source)
    finally:
        await runner.cleanup()
    assert got == body
    assert writes == -(-len(body) // piece)  # the server did trickle
    assert_chunk_contract(sizes)  # so at most 4 chunks, not ~200 packet-sized ones


@pytest.mark.asyncio
async def test_resumes_after_drops_with_range_and_if_match(server: ObjectServer) -> None:
    cuts = [300_000, 1, 1_500_000, 2_000_000, 0, 123_457]
    server.faults = [Fault("drop", at=n) for n in cuts]
    async with make_session() as session:
        source, urls = make_source(server, session)
        got, sizes = await collect(source)
    assert got == BODY
    assert all(0 < size <= MIB for size in sizes)
    assert source.resumes == len(cuts)
    assert urls.calls == 1
    offsets = [0]
    for cut in cuts:
        offsets.append(offsets[-1] + cut)
    assert [r.get("range") for r in server.requests[1:]] == [f"bytes={o}-" for o in offsets[1:]]
    assert all(r["if-match"] == '"v1"' for r in server.requests[1:])


@pytest.mark.asyncio
async def test_stall_longer_than_read_timeout_is_resumed(server: ObjectServer) -> None:
    server.faults = [Fault("stall", at=700_000)]
    async with make_session() as session:
        source, _ = make_source(server, session, read_timeout=0.3)
        got, _ = await collect(source)
    assert got == BODY
    assert source.resumes == 1
    assert server.requests[1]["range"] == "bytes=700000-"


@pytest.mark.asyncio
async def test_server_ignoring_range_is_skipped_not_duplicated(server: ObjectServer) -> None:
    server.faults = [Fault("drop", at=2_500_000)]
    server.ignore_range = True
    async with make_session() as session:
        source, _ = make_source(server, session)
        got, _ = await collect(source)
    assert got == BODY
    assert server.requests[1]["range"] == "bytes=2500000-"
    assert source.resumes == 1


@pytest.mark.asyncio
async def test_expired_url_fetches_a_new_one_and_resumes(server: ObjectServer) -> None:
    server.faults = [Fault("expire_after_drop", at=1_234_567)]
    async with make_session() as session:
        source, urls = make_source(server, session)
        got, _ = await collect(source)
    assert got == BODY
    assert urls.calls == 2
    assert "Signature=SIGSECRET1" in server.requests[1]["target"]  # the 403
    assert "Signature=SIGSECRET2" in server.requests[2]["target"]
    assert server.requests[2]["range"] == "bytes=1234567-"


@pytest.mark.asyncio
async def test_url_expired_before_first_byte(server: ObjectServer) -> None:
    server.expired.add("SIGSECRET1")
    async with make_session() as session:
        source, urls = make_source(server, session)
        got, _ = await collect(source)
    assert got == BODY
    assert urls.calls == 2


@pytest.mark.asyncio
async def test_transient_statuses_are_retried(server: ObjectServer) -> None:
    server.faults = [
        Fault("status", status=503, body=b"<Error><Code>SlowDown</Code></Error>"),
        Fault("drop", at=10),
        Fault("status", status=500),
    ]
    async with make_session() as session:
        source, _ = make_source(server, session)
        got, _ = await collect(source)
    assert got == BODY
    assert source.resumes == 3


@pytest.mark.asyncio
async def test_chunked_body_cut_before_terminator_resumes_to_416(server: ObjectServer) -> None:
    """No Content-Length: all bytes arrive but the chunked terminator does not. The resume asks
    for the rest, the server says 416 ``*/size`` with size == offset: the body was complete."""
    server.faults = [Fault("chunked_cut")]
    async with make_session() as session:
        source, _ = make_source(server, session)
        got, _ = await collect(source)
    assert got == BODY
    assert source.total == len(BODY)
    assert server.requests[1]["range"] == f"bytes={len(BODY)}-"


@pytest.mark.asyncio
async def test_resume_from_a_checkpoint(server: ObjectServer) -> None:
    async with make_session() as session:
        source, _ = make_source(server, session, start_offset=3_000_001, expected_etag='"v1"')
        got, _ = await collect(source, start=3_000_001)
    assert got == BODY[3_000_001:]
    assert source.offset == len(BODY)
    assert server.requests[0]["range"] == "bytes=3000001-"
    assert server.requests[0]["if-match"] == '"v1"'


@pytest.mark.asyncio
async def test_many_drops_with_progress_do_not_exhaust_attempts(server: ObjectServer) -> None:
    """max_attempts bounds failures without progress, not drops over a long transfer."""
    server.faults = [Fault("drop", at=400_000) for _ in range(12)]
    async with make_session() as session:
        source, _ = make_source(server, session)
        got, _ = await collect(source)
    assert got == BODY
    assert source.resumes == 12


@pytest.mark.asyncio
async def test_server_serving_short_ranges_is_followed_without_failures(
    server: ObjectServer,
) -> None:
    """A server may answer a range with less than asked: ask again for the rest, no backoff."""
    server.faults = [Fault("drop", at=100_000)]
    server.range_cap = 1_000_000
    clock = FakeClock()
    async with make_session() as session:
        source, _ = make_source(server, session, clock=clock)
        got, _ = await collect(source)
    assert got == BODY
    assert source.resumes == 6  # 5 MiB - 100 kB in 1 MB ranges
    assert len(clock.sleeps) == 1  # only after the drop


@pytest.mark.asyncio
async def test_range_starting_early_is_trimmed(server: ObjectServer) -> None:
    server.faults = [Fault("drop", at=1_000_000)]
    server.range_shift = -4096
    async with make_session() as session:
        source, _ = make_source(server, session)
        got, _ = await collect(source)
    assert got == BODY


# -- unrecoverable -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_object_changed_mid_download_is_412(server: ObjectServer) -> None:
    server.faults = [Fault("change_after_drop", at=1_000_000)]
    error, got, _ = await fetch_expecting(server, ObjectChangedError)
    assert len(got) == 1_000_000
    assert "restarted" in str(error)
    assert getattr(error, "status", None) == 412
    assert "symplify opens 101111" in str(error)


@pytest.mark.asyncio
async def test_object_changed_seen_through_etag_when_server_ignores_range(
    server: ObjectServer,
) -> None:
    server.faults = [Fault("change_after_drop", at=1_000_000)]
    server.ignore_range = server.ignore_if_match = True
    error, _, _ = await fetch_expecting(server, ObjectChangedError)
    assert 'ETag changed from "v1" to "v2"' in str(error)


@pytest.mark.asyncio
async def test_wrong_checkpoint_etag_is_object_changed(server: ObjectServer) -> None:
    await fetch_expecting(server, ObjectChangedError, start_offset=10, expected_etag='"old"')


@pytest.mark.asyncio
async def test_lying_content_length_ends_as_incomplete_body(server: ObjectServer) -> None:
    server.lie_extra = 100
    _, got, source = await fetch_expecting(server, IncompleteBodyError)
    assert got == BODY  # every real byte delivered once, then no more progress is possible
    assert source.total == len(BODY) + 100
    # max_attempts (4) consecutive failed requests: the first one failed after delivering the
    # body, the next three made no progress at all.
    assert len(server.requests) == 4
    assert [r.get("range") for r in server.requests[1:]] == [f"bytes={len(BODY)}-"] * 3


@pytest.mark.asyncio
async def test_empty_ranges_count_as_failures(server: ObjectServer) -> None:
    """A server answering every range with zero bytes must not loop forever."""
    server.faults = [Fault("drop", at=100_000)]
    server.range_cap = 0
    error, got, _ = await fetch_expecting(server, IncompleteBodyError)
    assert got == BODY[:100_000]
    assert "no new bytes" in str(error)
    assert len(server.requests) == 4


@pytest.mark.asyncio
async def test_range_starting_late_is_a_gap_never_accepted(server: ObjectServer) -> None:
    server.faults = [Fault("drop", at=1_000_000)]
    server.range_shift = 10
    error, got, _ = await fetch_expecting(server, IncompleteBodyError)
    assert got == BODY[:1_000_000]
    assert "asked for bytes from 1000000, got from 1000010" in str(error)


@pytest.mark.asyncio
async def test_repeated_drops_without_progress_give_up(server: ObjectServer) -> None:
    server.faults = [Fault("drop", at=0) for _ in range(10)]
    _, got, _ = await fetch_expecting(server, IncompleteBodyError)
    assert got == b""
    assert len(server.requests) == 4


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, b"<Error><Code>NoSuchKey</Code></Error>", RequestRejectedError),
        (
            403,
            b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            AuthError,
        ),
        (400, b'{"error": "bad"}', RequestRejectedError),
    ],
)
async def test_permanent_statuses_are_not_retried(
    server: ObjectServer, status: int, body: bytes, error: type[Exception]
) -> None:
    server.faults = [Fault("status", status=status, body=body)]
    raised, _, _ = await fetch_expecting(server, error)
    assert len(server.requests) == 1
    assert "/result/5004/3232465_result.json?" in str(raised)


@pytest.mark.asyncio
async def test_url_that_keeps_expiring_gives_up(server: ObjectServer) -> None:
    server.expired.update(f"SIGSECRET{n}" for n in range(1, 20))
    await fetch_expecting(server, UrlExpiredError)
    assert len(server.requests) == 4


@pytest.mark.asyncio
async def test_iterating_twice_is_refused(server: ObjectServer) -> None:
    async with make_session() as session:
        source, _ = make_source(server, session)
        await collect(source)
        with pytest.raises(RuntimeError):
            await collect(source)


# -- TLS -----------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.asyncio
async def test_tls_is_verified_and_a_private_ca_can_be_trusted() -> None:
    directory = Path(tempfile.mkdtemp())
    cert, key = self_signed(directory)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = ObjectServer(BODY[:100_000])
    port = await srv.start(server_ctx)
    try:
        urls = Urls(f"https://127.0.0.1:{port}")
        policy = RetryPolicy(max_attempts=3)
        async with make_session() as session:
            untrusted = HttpSource(session, urls, name="tls", policy=policy, clock=FakeClock())
            with pytest.raises(TLSVerificationError) as info:
                await collect(untrusted)
            assert_no_secret(info.value)
        assert srv.requests == []  # nothing was sent over the unverified connection
        assert urls.calls == 1  # permanent: not retried
        client_ctx = ssl.create_default_context(cafile=str(cert))
        async with make_session(ssl=client_ctx) as session:
            trusted = HttpSource(session, urls, name="tls", policy=policy, clock=FakeClock())
            got, _ = await collect(trusted)
        assert got == BODY[:100_000]
    finally:
        await srv.close()
