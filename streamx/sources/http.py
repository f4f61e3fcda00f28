"""HTTP(S) downloads as a resumable async iterator of byte chunks (64 KiB to 1 MiB).

A result file can be gigabytes behind a presigned URL that expires, on a connection that drops.
:class:`HttpSource` hides all of that from the parser: it yields the object's bytes exactly once
and in order, and when the transfer breaks it asks again for the rest with
``Range: bytes=<offset>-`` and ``If-Match: <the ETag seen first>``, so the resumed bytes are
guaranteed to come from the same object. What it checks:

* a ``206`` must not start after the offset asked for (a gap), its overlap if it starts
  earlier is skipped, and its total must not change;
* a ``200`` to a range request (a server that ignores ``Range``) is accepted by *skipping* the
  first ``offset`` bytes of the new body: bytes already handed to the consumer cannot be taken
  back, so restarting from zero would duplicate them. The ETag and size must match the original;
* ``412`` (If-Match failed) means the object was replaced: :class:`ObjectChangedError`, permanent;
* ``403`` with S3's "Request has expired": the URL provider is asked for a fresh URL and the
  download resumes at the same offset (it counts as an attempt, not as an error);
* a body shorter than its ``Content-Length``/``Content-Range`` is resumed, and the download ends
  only when ``offset == total``; a premature end that retries cannot fix surfaces as
  :class:`IncompleteBodyError`. (A truncated gzip stream is caught by the codec layer.)

Chunks are handed out as they arrive: each is at most ``chunk_size`` (1 MiB) and, except a body's
last one or the part delivered before a drop, at least ``min(chunk_size, MIN_CHUNK_SIZE)`` (64
KiB). Not exactly ``chunk_size``: the socket delivers ~64-256 KiB per read, and joining those
into exact 1 MiB chunks copied every byte once more (the download ran at ~70% of a raw aiohttp
read); no consumer needs a fixed size (codecs and parsers take any split). Only reads below the
minimum (a trickling peer) are gathered, so a slow link does not make thousands of tiny chunks.

Timeouts are per read, never a total: a healthy 3-hour download must not be killed, a silent peer
must. aiohttp's ``sock_read`` guards the response headers; for the body it is switched off and
:class:`_ReadWatchdog` takes over, because ``sock_read`` re-arms a timer on every packet (about a
quarter of the CPU of a fast download) where the watchdog costs one clock read per read that has to
wait. Responses are never decompressed here (``auto_decompress=False`` on
every request): byte offsets must refer to the stored object, and the codec layer sniffs gzip.
TLS is always verified. Every error message names the source and a redacted URL.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from ssl import SSLContext
from typing import Any, TypeVar

import aiohttp

from streamx.engine.clock import Clock
from streamx.engine.errors import (
    BODY_EXCERPT_LIMIT,
    IncompleteBodyError,
    ObjectChangedError,
    UrlExpiredError,
    classify_exception,
    classify_response,
)
from streamx.engine.retry import Retrier, RetryPolicy
from streamx.exceptions import ConfigError, StreamxError, TransientError
from streamx.redact import redact_url

DEFAULT_CHUNK_SIZE = 1 << 20
# Smallest chunk handed out (except a body's last, or the part before a drop): the sniffer's
# window (streamx.codecs.sniff.SNIFF_BYTES), and large enough that per-chunk work downstream
# (a codec feed, a parser call, a task switch: microseconds) stays far below the per-byte work.
MIN_CHUNK_SIZE = 64 * 1024
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE_RE = re.compile(r"bytes\s+\*/(\d+)")
T = TypeVar("T")


def tls_context(ca_file: str | None = None) -> SSLContext:
    """A verifying TLS context: the system's trust store, plus the CA certificates in the PEM
    file ``ca_file`` (a private or corporate CA). Verification and hostname checks stay on.

    Raises :class:`~streamx.exceptions.ConfigError` when ``ca_file`` cannot be loaded.
    """
    context = ssl_module.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl_module.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"cannot load CA certificates from {ca_file}: {reason}") from None
    return context


def make_session(
    *,
    ssl: SSLContext | None = None,
    limit: int = 100,
    connect_timeout: float = 30.0,
    read_timeout: float = 60.0,
    ca_file: str | None = None,
) -> aiohttp.ClientSession:
    """A session fit for :class:`HttpSource` (and for the vendor APIs).

    ``auto_decompress=False`` (bytes stay as stored), TLS verified with ``ssl``, or with the
    system's trust store plus the CAs in ``ca_file`` (``[engine] ca_file``: how a private CA is
    trusted; there is no way to turn verification off), at most ``limit`` connections, and no
    total timeout: only connect and per-read timeouts.
    """
    if ssl is None and ca_file is not None:
        ssl = tls_context(ca_file)
    connector = aiohttp.TCPConnector(ssl=ssl if ssl is not None else True, limit=limit)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=connect_timeout, sock_read=read_timeout
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)


class HttpSource:
    """The bytes behind a (presigned) URL, resumable at a byte offset. Iterate it once.

    Yields non-empty chunks of at most ``chunk_size`` bytes, as the socket delivers them (no
    copy to make them an exact size); a chunk is shorter than ``min(chunk_size,
    MIN_CHUNK_SIZE)`` only at the end of a response's body or just before a dropped connection.

    ``url_provider`` is awaited for the first URL and again whenever the URL has expired. The
    session should come from :func:`make_session`; a caller-made session must not verify TLS
    less, and may leave ``auto_decompress`` on (each request here turns it off). ``start_offset``
    and ``expected_etag`` resume a download checkpointed by an earlier process.

    Attributes: ``offset`` (absolute position of the next byte: ``start_offset`` + bytes yielded),
    ``etag`` (pinned at the first response), ``total`` (object size, when the server said),
    ``resumes`` (requests made after the first one).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url_provider: Callable[[], Awaitable[str]],
        *,
        name: str,
        policy: RetryPolicy,
        clock: Clock,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        read_timeout: float = 60.0,
        connect_timeout: float = 30.0,
        rng: random.Random | None = None,
        start_offset: int = 0,
        expected_etag: str | None = None,
        vendor: str | None = None,
        account: str | None = None,
        export_id: str | None = None,
    ) -> None:
        if chunk_size < 1 or start_offset < 0:
            raise ValueError("chunk_size must be >= 1 and start_offset >= 0")
        self._session = session
        self._url_provider = url_provider
        self.name = name
        self._chunk_size = chunk_size
        self._min_chunk = min(chunk_size, MIN_CHUNK_SIZE)
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._retrier = Retrier(policy, clock=clock, rng=rng or random.Random())
        self._clock = clock
        self._vendor, self._account, self._export_id = vendor, account, export_id
        self.offset = start_offset
        self.etag = expected_etag
        self.total: int | None = None
        self.resumes = 0
        self._url: str | None = None
        self._requests = 0
        self._claimed = False
        self._done = False
        # Per-response state: next byte position in the object, where this body should end,
        # bytes still to discard (200 answered to a range request), an error held back while a
        # partial chunk is delivered.
        self._position = 0
        self._end: int | None = None
        self._skip = 0
        self._pending: BaseException | None = None
        self._read_timeout = read_timeout
        self._watchdog: _ReadWatchdog | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the object's bytes from ``offset`` to the end, resuming transparently."""
        if self._claimed:
            raise RuntimeError(f"{self.name}: an HttpSource can be iterated only once")
        self._claimed = True
        mark = self.offset
        last: StreamxError | None = None
        while not self._finished():
            self._retrier.check_deadline(last)
            response: aiohttp.ClientResponse | None = None
            try:
                response = await self._guard(self._open())
                before = self.offset
                while chunk := await self._guard(self._read_chunk(response)):
                    self.offset += len(chunk)
                    yield chunk
                self._verify_end()
                response.release()
                self._done = self.total is None  # unknown size: a clean end is the end
                if not self._finished() and self.offset == before:
                    raise self._incomplete("the response delivered no new bytes")
            except UrlExpiredError as exc:
                last, mark, self._url = exc, self._note_progress(mark), None
                self._retrier.count(exc)
            except TransientError as exc:
                last, mark = exc, self._note_progress(mark)
                await self._retrier.backoff(exc)
            finally:
                if self._watchdog is not None:
                    self._watchdog.close()
                    self._watchdog = None
                if response is not None:
                    response.close()

    # -- one request -------------------------------------------------------------------------

    async def _open(self) -> aiohttp.ClientResponse:
        if self._url is None:
            self._url = await self._url_provider()
        url = self._url
        if self._requests:
            self.resumes += 1
        self._requests += 1
        response = await self._session.get(
            url,
            headers=self._request_headers(),
            timeout=self._timeout,
            auto_decompress=False,
            read_bufsize=self._chunk_size,
        )
        try:
            await self._accept(response, url)
        except BaseException:
            response.close()
            raise
        self._watch_body(response)
        return response

    def _watch_body(self, response: aiohttp.ClientResponse) -> None:
        """Hand the body's read timeout from aiohttp's per-packet timer to the watchdog."""
        connection = response.connection
        protocol = connection.protocol if connection is not None else None
        if protocol is not None:
            protocol.read_timeout = None
            protocol.start_timeout()  # with no timeout set, this disarms the pending timer
        self._watchdog = _ReadWatchdog(
            self._read_timeout,
            lambda: response.content.set_exception(
                aiohttp.ServerTimeoutError("Timeout on reading data from socket")
            ),
        )

    def _request_headers(self) -> dict[str, str]:
        headers = {"Accept-Encoding": "identity"}
        if self.offset > 0:
            headers["Range"] = f"bytes={self.offset}-"
        if self.etag and not self.etag.startswith("W/"):
            # A weak ETag can never satisfy If-Match (strong comparison), so it is not sent.
            headers["If-Match"] = self.etag
        return headers

    async def _accept(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._pending, self._skip = None, 0
        if response.status == 416 and self._range_already_done(response):
            self._position, self._end = self.offset, self.offset
            return
        if response.status not in (200, 206):
            raise await self._status_error(response, url)
        self._check_etag(response.headers.get("ETag"))
        if response.status == 206:
            self._accept_partial(response.headers.get("Content-Range"))
        else:
            self._accept_full(response.content_length)
        self._retrier.record_success()

    async def _status_error(self, response: aiohttp.ClientResponse, url: str) -> StreamxError:
        try:
            excerpt = await response.content.read(BODY_EXCERPT_LIMIT)
        except (TimeoutError, aiohttp.ClientError):
            excerpt = b""
        return classify_response(
            response.status,
            response.headers,
            excerpt,
            url=url,
            subject=self.name,
            now=self._clock.wall(),
            vendor=self._vendor,
            account=self._account,
            export_id=self._export_id,
        )

    def _range_already_done(self, response: aiohttp.ClientResponse) -> bool:
        """416 to ``bytes=<offset>-`` with ``*/<offset>``: the body was complete (size unknown)."""
        match = _UNSATISFIED_RANGE_RE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != self.offset:
            return False
        self._set_total(int(match[1]))
        return True

    def _check_etag(self, etag: str | None) -> None:
        if self.etag is None:
            self.etag = etag
        elif etag is not None and _opaque(etag) != _opaque(self.etag):
            raise self._changed(f"ETag changed from {self.etag} to {etag}")

    def _accept_partial(self, content_range: str | None) -> None:
        match = _CONTENT_RANGE_RE.fullmatch((content_range or "").strip())
        if match is None:
            raise self._incomplete(f"206 with an unusable Content-Range {content_range!r}")
        start, end = int(match[1]), int(match[2]) + 1
        if match[3] != "*":
            self._set_total(int(match[3]))
        if start > self.offset:  # a gap: those bytes would be lost
            raise self._incomplete(f"asked for bytes from {self.offset}, got from {start}")
        # A range starting early (a server rounding to blocks) is fine: skip the overlap.
        self._position, self._end, self._skip = start, end, self.offset - start

    def _accept_full(self, length: int | None) -> None:
        """200: the whole object. Bytes before ``offset`` were delivered already: skip them."""
        if length is not None:
            self._set_total(length)
        self._position, self._end, self._skip = 0, length, self.offset

    def _set_total(self, total: int) -> None:
        if self.total is not None and total != self.total:
            raise self._changed(f"size changed from {self.total} to {total} bytes")
        if total < self.offset:
            raise self._changed(f"size {total} is below the {self.offset} bytes already read")
        self.total = total

    # -- reading -----------------------------------------------------------------------------

    async def _read_chunk(self, response: aiohttp.ClientResponse) -> bytes:
        """The next new bytes, at most ``chunk_size`` (b"" at the end of this response's body).

        What one read gives (what is buffered, up to ``chunk_size``: usually one socket read;
        aiohttp joins several only when they piled up) is returned as it is when it holds at
        least ``min_chunk`` bytes: no join of ours, so no extra copy. Only smaller reads (a
        trickling peer, a body's tail) are gathered until ``min_chunk`` or the end, so a slow
        link does not turn into thousands of tiny chunks downstream. If the connection fails
        after part of a chunk arrived, that part is returned first and the failure is raised by
        the next call, so flaky links that drop every few hundred KiB still make progress.
        """
        if self._pending is not None:
            error, self._pending = self._pending, None
            raise error
        parts: list[bytes] = []
        size = 0
        try:
            while size < self._min_chunk:
                data = self._drop_skipped(await self._read_some(response, self._chunk_size - size))
                if data is None:
                    break
                if not size and len(data) >= self._min_chunk:
                    return data  # the common case on a fast link: handed out as it arrived
                parts.append(data)
                size += len(data)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if not size:
                raise
            self._pending = exc
        return b"".join(parts)

    async def _read_some(self, response: aiohttp.ClientResponse, limit: int) -> bytes:
        """Up to ``limit`` body bytes: what is buffered at once, else wait for the peer under
        the watchdog (b"" at the end of the body)."""
        content, watchdog = response.content, self._watchdog
        data = content.read_nowait(limit)
        if data or content.at_eof():
            return data
        if watchdog is None:
            return await content.read(limit)
        watchdog.waiting()
        try:
            return await content.read(limit)
        finally:
            watchdog.idle()

    def _drop_skipped(self, data: bytes) -> bytes | None:
        """Advance the position over ``data`` and cut what must be skipped; None at EOF."""
        if not data:
            return None
        self._position += len(data)
        if self._skip:
            cut = min(self._skip, len(data))
            self._skip -= cut
            data = data[cut:]
        return data

    def _verify_end(self) -> None:
        """The body ended cleanly: make sure it ended where it said it would."""
        if self._end is not None and self._position < self._end:
            raise self._incomplete(f"body ended at byte {self._position} of {self._end}")
        if self._skip:
            raise self._incomplete(f"body ended {self._skip} bytes before the resume offset")

    def _finished(self) -> bool:
        return self._done or (self.total is not None and self.offset >= self.total)

    def _note_progress(self, mark: int) -> int:
        if self.offset > mark:
            self._retrier.reset()
        return self.offset

    # -- errors ------------------------------------------------------------------------------

    async def _guard(self, step: Coroutine[Any, Any, T]) -> T:
        """Await ``step``, mapping network exceptions onto the streamx tree."""
        try:
            return await step
        except StreamxError:
            raise
        except Exception as exc:
            mapped = classify_exception(
                exc,
                url=self._url,
                subject=self.name,
                vendor=self._vendor,
                account=self._account,
                export_id=self._export_id,
            )
            if mapped is None:
                raise
            raise mapped from mapped.__cause__

    def _ids(self) -> dict[str, Any]:
        return {"vendor": self._vendor, "account": self._account, "export_id": self._export_id}

    def _where(self) -> str:
        return f"{self.name} ({redact_url(self._url)})" if self._url else self.name

    def _incomplete(self, reason: str) -> IncompleteBodyError:
        return IncompleteBodyError(
            f"{self._where()}: {reason}",
            url=self._url,
            expected=self._end,
            received=self._position,
            **self._ids(),
        )

    def _changed(self, reason: str) -> ObjectChangedError:
        return ObjectChangedError(
            f"{self._where()}: the object changed during the download ({reason});"
            " it must be restarted from byte 0",
            url=self._url,
            **self._ids(),
        )


class _ReadWatchdog:
    """Fails a body read that waits more than ``timeout`` seconds for the peer.

    One timer per timeout period instead of one per packet: :meth:`waiting` notes when a read
    started to wait and arms the timer only if none is armed; when the timer fires it calls
    ``on_timeout`` if the current wait is that old, else re-arms for when it would be. Time spent
    not reading (the consumer busy, back-pressure) never counts, only a read left without data.
    """

    def __init__(self, timeout: float, on_timeout: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._since: float | None = None
        self._handle: asyncio.TimerHandle | None = None

    def waiting(self) -> None:
        self._since = self._loop.time()
        if self._handle is None:
            self._handle = self._loop.call_at(self._since + self._timeout, self._check)

    def idle(self) -> None:
        self._since = None  # the armed timer lapses at its next check

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._since = None

    def _check(self) -> None:
        self._handle = None
        if self._since is None:
            return
        due = self._since + self._timeout
        if due - self._loop.time() > 0.001:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._since = None
        self._on_timeout()


def _opaque(etag: str) -> str:
    return etag.removeprefix("W/")


__all__ = ["DEFAULT_CHUNK_SIZE", "MIN_CHUNK_SIZE", "HttpSource", "make_session", "tls_context"]
