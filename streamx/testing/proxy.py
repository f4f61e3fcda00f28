"""A TCP fault proxy on loopback: put a bad network between streamx and any server.

The simulators' fault knobs (:mod:`streamx.testing.faults`) misbehave at the HTTP level; this
proxy misbehaves at the *transport* level, for any protocol (HTTP, S3, SSH), in front of any
server (a simulator, moto, sshd, a real vendor). Point the client at :attr:`FaultProxy.port`
instead of the server's and change the network's behaviour while traffic flows::

    async with FaultProxy("127.0.0.1", server_port) as proxy:
        proxy.add_latency(0.05)          # 50 ms one-way, each direction, without losing bandwidth
        proxy.cap_bandwidth(1_000_000)   # at most ~1 MB/s per direction and connection
        proxy.reset_after(20_000, times=1)  # the next connection gets an RST after 20 kB
        proxy.black_hole()               # accept, swallow the request, never answer
        proxy.pass_through()             # a clean network again

Modes (all off in :meth:`FaultProxy.pass_through`):

* **latency**: every chunk is delivered ``latency`` seconds after it was read, in each
  direction. Chunks are pipelined, so throughput is kept (a long fat pipe, not a slow one).
* **bandwidth**: at most ``bandwidth`` bytes per second per direction and connection.
* **reset after N bytes**: once N bytes went to the client on a connection (counted from the
  moment the mode was set), both sides are aborted, the client with a TCP RST. ``N = 0``
  resets a new connection before anything reaches the server.
* **black hole** (after N bytes): the connection stays open but nothing more is forwarded in
  either direction: a peer that hung, a stalled transfer. ``N = 0`` never even connects to
  the server.

Reset and black hole take ``times``: how many connections they hit before the proxy becomes a
clean pass-through for that knob again (``None``: every connection, an outage). A mode change
applies to connections already open at their next chunk, and per-connection byte counts
restart from the change, so a test can arm a fault exactly when a given call begins.
:attr:`FaultProxy.stats` counts connections, bytes, resets and black-holed connections.

Memory is bounded: each direction holds at most ``_QUEUE_CHUNKS`` chunks of ``_CHUNK`` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

_CHUNK = 64 * 1024
_QUEUE_CHUNKS = 16
_PACE_SLICES_PER_SECOND = 50


@dataclass(frozen=True, slots=True)
class ProxyMode:
    """What the proxy does to traffic (see the module docstring). The default is pass-through."""

    latency: float = 0.0
    bandwidth: int | None = None
    reset_after: int | None = None
    black_hole_after: int | None = None
    #: Connections the reset / black hole may still hit; None = all of them.
    times: int | None = None

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        if self.bandwidth is not None and self.bandwidth < 1:
            raise ValueError("bandwidth must be >= 1 byte/s")
        for name in ("reset_after", "black_hole_after", "times"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.reset_after is not None and self.black_hole_after is not None:
            raise ValueError("choose reset_after or black_hole_after, not both")


@dataclass(slots=True)
class ProxyStats:
    """Counters since the proxy started (never reset by a mode change)."""

    connections: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    resets: int = 0
    black_holed: int = 0


class _Reset(Exception):
    """Raised inside a pump to end the connection with an RST."""


@dataclass(eq=False)
class _Connection:
    """One proxied connection: its streams and its fault state."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    epoch: int = -1
    sent_to_client: int = 0  # since the last mode change
    paced_from: float = 0.0
    paced_bytes: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    hit: bool = False  # this connection consumed one of the mode's ``times``
    black_holed: bool = False
    pending_reset: bool = False


class FaultProxy:
    """Forward ``host:port`` (loopback by default) to ``target_host:target_port``, with faults.

    An async context manager; also :meth:`start` / :meth:`stop`. See the module docstring.
    """

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._host = host
        self._port = port
        self._mode = ProxyMode()
        self._epoch = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = ProxyStats()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen (``port=0`` picks a free port); returns self."""
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        return self._host

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy (for HTTP clients)."""
        return f"http://{self._host}:{self.port}"

    # -- modes -------------------------------------------------------------------------------

    @property
    def mode(self) -> ProxyMode:
        """The current mode; assigning one applies it to open connections at their next chunk."""
        return self._mode

    @mode.setter
    def mode(self, mode: ProxyMode) -> None:
        self._mode = mode
        self._epoch += 1

    def pass_through(self) -> None:
        """Forward everything unchanged."""
        self.mode = ProxyMode()

    def add_latency(self, seconds: float) -> None:
        """Deliver every chunk ``seconds`` late (each direction), keeping the other knobs."""
        self.mode = dataclasses.replace(self._mode, latency=seconds)

    def cap_bandwidth(self, bytes_per_second: int | None) -> None:
        """Limit each direction of each connection (None lifts the cap)."""
        self.mode = dataclasses.replace(self._mode, bandwidth=bytes_per_second)

    def reset_after(self, nbytes: int, *, times: int | None = None) -> None:
        """RST connections once ``nbytes`` went to the client (``times`` connections, or all)."""
        self.mode = dataclasses.replace(
            self._mode, reset_after=nbytes, black_hole_after=None, times=times
        )

    def black_hole(self, *, after: int = 0, times: int | None = None) -> None:
        """Go silent after ``after`` bytes to the client (``times`` connections, or all)."""
        self.mode = dataclasses.replace(
            self._mode, black_hole_after=after, reset_after=None, times=times
        )

    # -- connections -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        conn = _Connection(writer)
        try:
            await self._serve(conn, reader)
        except (_Reset, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): ending quietly keeps asyncio from logging the cancelled handler
        finally:
            self._close(conn)
            self._tasks.discard(task)

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        self._sync(conn)
        self._apply(conn, self._cut(conn, b"")[1])  # N = 0: before anything reaches the server
        if conn.black_holed:
            await _drain_forever(reader)
            return
        up_reader, conn.server = await asyncio.open_connection(self.target_host, self.target_port)
        upstream = asyncio.create_task(self._direction(conn, reader, conn.server, False))
        downstream = asyncio.create_task(self._direction(conn, up_reader, conn.client, True))
        pending: set[asyncio.Task[None]] = {upstream, downstream}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a reset or a broken socket ends the connection
                if downstream in done or (upstream in done and conn.black_holed):
                    return  # the server is finished, or the client gave up on a silent peer
        finally:
            for task in (upstream, downstream):
                task.cancel()
            await asyncio.gather(upstream, downstream, return_exceptions=True)

    async def _direction(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        to_client: bool,
    ) -> None:
        """One direction: a feeder task fills a bounded queue, this task delivers it late."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)
        feeder = asyncio.create_task(_feed(reader, queue, lambda: self._mode.latency))
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                await self._deliver(conn, writer, data, to_client)
            if conn.black_holed and to_client:
                await asyncio.Event().wait()  # the client must not even see the server leave
            if not conn.black_holed and writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)

    async def _deliver(
        self, conn: _Connection, writer: asyncio.StreamWriter, data: bytes, to_client: bool
    ) -> None:
        self._sync(conn)
        if conn.black_holed:
            return
        if to_client:
            data, action = self._cut(conn, data)
        else:  # a fault at N = 0 hits before the request reaches the server
            action = self._cut(conn, b"")[1]
            self._apply(conn, action)
            if action is not None:
                return
        view = memoryview(data)
        while view:
            piece = await self._pace(conn, view, to_client)
            writer.write(piece)
            await writer.drain()
            if to_client:
                self.stats.bytes_to_client += len(piece)
                conn.sent_to_client += len(piece)
            else:
                self.stats.bytes_to_server += len(piece)
            view = view[len(piece) :]
        self._apply(conn, action)

    async def _pace(self, conn: _Connection, view: memoryview, to_client: bool) -> bytes:
        """The next slice of ``view``, sent no earlier than the bandwidth cap allows."""
        rate = self._mode.bandwidth
        if rate is None:
            return bytes(view)
        piece = bytes(view[: max(1, rate // _PACE_SLICES_PER_SECOND)])
        loop = asyncio.get_running_loop()
        if not conn.paced_from:
            conn.paced_from = loop.time()
        due = conn.paced_from + conn.paced_bytes[to_client] / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        conn.paced_bytes[to_client] += len(piece)
        return piece

    # -- faults ------------------------------------------------------------------------------

    def _sync(self, conn: _Connection) -> None:
        """A mode change restarts the connection's counters (faults count from the change)."""
        if conn.epoch != self._epoch:
            conn.epoch = self._epoch
            conn.sent_to_client = 0
            conn.paced_from = 0.0
            conn.paced_bytes = {True: 0, False: 0}
            conn.hit = False

    def _cut(self, conn: _Connection, data: bytes) -> tuple[bytes, str | None]:
        """What of ``data`` may still go to the client, and the fault due after it (if any).

        ``data`` empty asks whether a fault is due before anything is sent (``N`` reached).
        """
        mode = self._mode
        limit = mode.reset_after if mode.reset_after is not None else mode.black_hole_after
        if limit is None or not self._may_hit(conn):
            return data, None
        room = limit - conn.sent_to_client
        if room > len(data) or (not data and room > 0):
            return data, None
        self._hit(conn)
        action = "reset" if mode.reset_after is not None else "black_hole"
        return data[: max(room, 0)], action

    def _apply(self, conn: _Connection, action: str | None) -> None:
        if action == "reset":
            conn.pending_reset = True
            raise _Reset
        if action == "black_hole":
            conn.black_holed = True
            self.stats.black_holed += 1

    def _may_hit(self, conn: _Connection) -> bool:
        return conn.hit or self._mode.times is None or self._mode.times > 0

    def _hit(self, conn: _Connection) -> None:
        if conn.hit:
            return
        conn.hit = True
        times = self._mode.times
        if times is not None:  # not a mode change: the epoch (and byte counts) stay
            self._mode = dataclasses.replace(self._mode, times=times - 1)

    def _close(self, conn: _Connection) -> None:
        if conn.pending_reset:
            self.stats.resets += 1
            _abort_with_rst(conn.client)
        else:
            conn.client.close()
        if conn.server is not None:
            conn.server.transport.abort()


async def _feed(
    reader: asyncio.StreamReader,
    queue: asyncio.Queue[tuple[float, bytes]],
    latency: Callable[[], float],
) -> None:
    """Read chunks and stamp each with its delivery time; an empty chunk marks the end."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await reader.read(_CHUNK)
        except (ConnectionError, OSError):
            data = b""
        await queue.put((loop.time() + latency(), data))
        if not data:
            return


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    """Swallow what the client sends until it hangs up (a black hole never answers)."""
    with contextlib.suppress(ConnectionError, OSError):
        while await reader.read(_CHUNK):
            pass


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Abort with SO_LINGER 0: the peer sees ECONNRESET, like a crashed host or a middlebox."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


__all__ = ["FaultProxy", "ProxyMode", "ProxyStats"]
