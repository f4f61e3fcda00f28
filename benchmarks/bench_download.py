"""Downloads: streamx's HTTP source vs raw aiohttp, and a 1 GB result through the engine (9.5, 5).

    python -m benchmarks.bench_download [--mb 1024] [--engine-mb 1024] [--rounds 3] [--quick]
                                        [--results PATH]

1. **Throughput.** The simulator's object store serves one object (``--mb`` MB of random bytes)
   behind a presigned URL, from a child process (``--serve``) so the server does not share the
   client's event loop and GIL. This process reads it, alternating, with a raw aiohttp loop
   (the ceiling: ``iter_chunked(1 MiB)`` and ``iter_any()``, the faster one is the baseline) and
   with :class:`streamx.sources.http.HttpSource` (chunks of 64 KiB to 1 MiB handed out as they
   arrive, the engine's session), counting bytes and chunks only; ``readexactly(1 MiB)`` is
   kept as the cost of exact 1 MiB chunks (HttpSource's earlier contract). Target: HttpSource
   >= 80% of the raw read.
2. **Flat memory.** A Symplify result (JSON array of opens, ``--engine-mb`` MB) served by the
   Symplify simulator in this process goes through ``streamx run`` (a child process: download,
   parse, normalize, gzip JSON lines to disk); its peak RSS is reported next to a 64 MiB run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks import report
from benchmarks.bench_concurrency import BIG_CUSTOMER, ROW_BYTES, BigResultProvider
from streamx.engine.clock import SystemClock
from streamx.engine.retry import RetryPolicy
from streamx.sources.http import HttpSource, make_session
from streamx.testing.objectstore import ObjectStore
from streamx.testing.symplify_sim import SymplifySim, SymplifyTimings

MB = 10**6
MIB = 1 << 20
OBJECT_MB, QUICK_OBJECT_MB = 1024.0, 16.0
ENGINE_MB, QUICK_ENGINE_MB = 1024.0, 8.0
SMALL_ENGINE_MB, QUICK_SMALL_ENGINE_MB = 64.0, 2.0
ROUNDS, QUICK_ROUNDS = 3, 2
TARGET_RATIO = 0.8
KEY = "result/5004/bench_result.json"


# --- the object store (child process) -----------------------------------------------------------


def _random_chunks(size: int) -> Iterator[bytes]:
    block = os.urandom(MIB)  # repeated: the wire does not compress, only the length matters
    while size > 0:
        yield block[: min(size, MIB)]
        size -= MIB


async def serve(size: int, ready: Path) -> None:
    """Serve one object of ``size`` bytes until SIGTERM; write its presigned URL to ``ready``."""
    store = ObjectStore()
    await store.start()
    try:
        await asyncio.to_thread(store.put_chunks, KEY, _random_chunks(size))
        temp = ready.with_name(f".{ready.name}.tmp")
        temp.write_text(store.presign(KEY, expires_in=24 * 3600))
        os.replace(temp, ready)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    finally:
        await store.stop()


# --- the readers (this process) -----------------------------------------------------------------

Reader = Callable[[str], AsyncIterator[bytes]]


async def raw_chunked(url: str) -> AsyncIterator[bytes]:
    """The plainest aiohttp read: one GET, 1 MiB ``iter_chunked``."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url) as response,
    ):
        response.raise_for_status()
        async for chunk in response.content.iter_chunked(MIB):
            yield chunk


async def raw_any(url: str) -> AsyncIterator[bytes]:
    """aiohttp's cheapest read: whatever the socket delivered (``iter_any``)."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url) as response,
    ):
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            yield chunk


async def raw_exact(url: str) -> AsyncIterator[bytes]:
    """aiohttp delivering exact 1 MiB chunks (``readexactly``): HttpSource's earlier contract."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url) as response,
    ):
        response.raise_for_status()
        while True:
            try:
                yield await response.content.readexactly(MIB)
            except asyncio.IncompleteReadError as end:
                if end.partial:
                    yield end.partial
                return


async def streamx_source(url: str) -> AsyncIterator[bytes]:
    """:class:`HttpSource` as the engine uses it (its session, chunks <= 1 MiB, resumable)."""

    async def provider() -> str:
        return url

    async with make_session() as session:
        source = HttpSource(
            session, provider, name="bench", policy=RetryPolicy(), clock=SystemClock()
        )
        async for chunk in source:
            yield chunk


READERS: dict[str, Reader] = {
    "aiohttp iter_chunked(1 MiB)": raw_chunked,
    "aiohttp iter_any()": raw_any,
    "aiohttp readexactly(1 MiB)": raw_exact,
    "streamx HttpSource": streamx_source,
}


@dataclass
class Reads:
    """One reader's rounds: MB/s, CPU seconds per GB of this (client) process, chunks read."""

    rates: list[float] = field(default_factory=list)
    cpu_per_gb: list[float] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)

    def mean_chunk_kib(self, size: int) -> float:
        """Mean chunk size in KiB over the rounds (each round read ``size`` bytes)."""
        return size * len(self.chunks) / sum(self.chunks) / 1024


async def timed_read(reader: Reader, url: str, size: int, into: Reads) -> None:
    """Read the whole object once; checks the byte count."""
    cpu, started = time.process_time(), time.perf_counter()
    received = chunks = 0
    async for chunk in reader(url):
        received += len(chunk)
        chunks += 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if received != size:
        raise RuntimeError(f"read {received} bytes of {size}")
    into.rates.append(size / MB / seconds)
    into.cpu_per_gb.append(cpu / (size / 1e9))
    into.chunks.append(chunks)


async def throughput(size: int, rounds: int, work: Path) -> dict[str, Reads]:
    """Each reader ``rounds`` times, alternating, against a child object store."""
    ready = work / "store.url"
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.bench_download", "--serve", str(size),
        "--ready", str(ready), env=report.child_env(),
    )  # fmt: skip
    try:
        url = await _wait_for(ready, server)
        reads = {name: Reads() for name in READERS}
        for _ in range(rounds):
            for name, reader in READERS.items():
                await timed_read(reader, url, size, reads[name])
        return reads
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        await server.wait()


async def _wait_for(ready: Path, server: asyncio.subprocess.Process) -> str:
    deadline = time.monotonic() + 600
    while not ready.exists():
        if server.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError("the object store child did not start")
        await asyncio.sleep(0.05)
    return ready.read_text()


# --- the whole engine (streamx run child) -------------------------------------------------------


@dataclass(frozen=True)
class EngineRun:
    """One export through ``streamx run``: result size, records, the simulator's job time (it
    writes the result file before the job is FINISHED), the export's own seconds, the child."""

    result_bytes: int
    records: int
    job_seconds: float
    export_seconds: float
    child: report.ChildRun

    @property
    def transfer_rate(self) -> float:
        """MB/s of the transfer (export seconds minus the simulated job)."""
        return self.result_bytes / MB / max(self.export_seconds - self.job_seconds, 1e-9)


def run_toml(sim: SymplifySim, out: Path) -> str:
    return f"""
[engine]
poll_interval = 0.2
poll_interval_max = 0.5

[output]
dir = "{out}"

[accounts.big]
vendor = "symplify"
token_env = "BENCH_TOKEN"
base_url = "{sim.base_url}/rest/{BIG_CUSTOMER}"

[[exports]]
name = "result"
account = "big"
stream = "opens"
period = "LAST_DAY"
"""


async def engine_run(megabytes: float, work: Path) -> EngineRun:
    """One Symplify export of about ``megabytes`` through ``streamx run``; checks the counts."""
    rows = int(megabytes * MB / ROW_BYTES)
    sim = SymplifySim(
        provider=BigResultProvider(big_rows=rows),
        tokens={BIG_CUSTOMER: "bench-token"},
        timings=SymplifyTimings(pending_s=0.05, in_progress_s=0.05),
        url_ttl_s=3600,
    )
    run_dir = work / f"engine-{megabytes:g}"
    run_dir.mkdir(parents=True)
    await sim.start()
    try:
        config = run_dir / "streamx.toml"
        config.write_text(run_toml(sim, run_dir / "out"))
        child = await asyncio.to_thread(
            report.run_python,
            "streamx",
            ["run", "--config", str(config), "--json"],
            env={"BENCH_TOKEN": "bench-token"},
        )
        child.check("streamx run")
        result = json.loads(child.stdout.splitlines()[0])
        job = sim.batch_status(result["remote_id"])
    finally:
        await sim.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    if result["status"] != "done" or result["records"] != rows or result["rows_quarantined"]:
        raise RuntimeError(f"the {megabytes:g} MB export did not publish {rows} records: {result}")
    run = EngineRun(
        result["bytes_read"],
        rows,
        (job["endTime"] - job["startTime"]) / 1000,
        result["seconds"],
        child,
    )
    print(f"engine {megabytes:g} MB: peak RSS {child.peak_rss_mib:.1f} MiB, "
          f"{child.seconds:.1f} s, transfer {run.transfer_rate:.1f} MB/s", flush=True)  # fmt: skip
    return run


# --- report -------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def section(
    size: int,
    reads: dict[str, Reads],
    runs: list[EngineRun],
    quick: bool,
    loads: tuple[float, float],
) -> str:
    best = {name: max(item.rates) for name, item in reads.items()}
    baseline = max((name for name in best if name.startswith("aiohttp")), key=best.__getitem__)
    ours, same_contract = "streamx HttpSource", "aiohttp readexactly(1 MiB)"
    contract_ratio = best[ours] / best[same_contract]
    ratio, median_ratio = (
        best[ours] / best[baseline],
        _median(reads[ours].rates) / _median(reads[baseline].rates),
    )
    cpu_ratio = _median(reads[baseline].cpu_per_gb) / _median(reads[ours].cpu_per_gb)
    rows = "\n".join(
        f"| {name} | {max(item.rates):.0f} MB/s | {_median(item.rates):.0f} MB/s | "
        f"{', '.join(f'{value:.0f}' for value in item.rates)} | "
        f"{_median(item.cpu_per_gb):.2f} s | {item.mean_chunk_kib(size):,.0f} KiB |"
        for name, item in reads.items()
    )
    engine_rows = "\n".join(
        f"| {run.result_bytes / MB:,.0f} MB | {run.records:,} | "
        f"**{run.child.peak_rss_mib:.1f} MiB** | {run.child.seconds:.1f} s | "
        f"{run.job_seconds:.1f} s | {run.transfer_rate:.1f} MB/s |"
        for run in runs
    )
    growth = runs[-1].child.peak_rss_mib - runs[0].child.peak_rss_mib
    met = ratio >= TARGET_RATIO
    return f"""
## Download: presigned-URL result over loopback (issue 9 point 5, issue 5)
{report.quick_note(quick)}
Command: `python -m benchmarks.bench_download{" --quick" if quick else ""}`.

### HttpSource vs raw aiohttp

One {size / MB:,.0f} MB object in the simulator's object store (`streamx.testing.objectstore`,
presigned URL, served from a child process), read {len(reads[ours].rates)} times by each
reader in alternation in the benchmark process; bytes and chunks are counted, nothing else. CPU
is the reading process's (`time.process_time()`), per GB read. 1-minute load average:
{loads[0]:.1f} before these reads, {loads[1]:.1f} after (2 cores).

| reader | best | median | every round (MB/s) | CPU per GB (median) | mean chunk |
|---|---|---|---|---|---|
{rows}

`HttpSource` / best raw aiohttp reader ({baseline}): **{ratio:.0%}** best of rounds
({median_ratio:.0%} median to median). Target >= {TARGET_RATIO:.0%}: \
**{"met" if met else "NOT met"}**.
Per byte, `HttpSource` spends {1 / cpu_ratio:.2f}x the best raw reader's CPU. Against aiohttp
handing out exact 1 MiB chunks (`readexactly`, HttpSource's earlier contract):
**{contract_ratio:.0%}**. The machine is shared with other engineers' tests and benchmarks: the
readers alternate so each sees the same load, but single rounds vary a lot (see every round),
and absolute figures are pessimistic when the load average is near or above the 2 cores.

What was changed: the chunk contract, the body's read timeout, and the object store's write
size. (1) `HttpSource` used to hand out exact 1 MiB chunks by joining the socket's ~256 KiB
reads: one more copy of every byte, and it reached 68% of the best raw reader (92% of
`readexactly`). It now hands out what one read gives (at most 1 MiB, no join, no copy) and
gathers only reads below 64 KiB (a trickling peer) up to that minimum, so a slow link still
does not make tiny chunks; the mean chunk column shows what the pipeline gets per chunk.
No consumer depends on a chunk size (codecs and parsers take any split; the format sniffer
buffers its 64 KiB window itself).
(2) aiohttp's `sock_read` re-arms a timer on every packet (a `TimerHandle` created and
cancelled per ~256 KiB). `HttpSource` now keeps `sock_read` for the headers and guards body
reads with its own watchdog: one timer per timeout period, and a clock read per read that has
to wait. Same semantics (a read left without data for `read_timeout` fails and is resumed);
about 15-20% less client CPU per GB in A/B runs here.
(3) The simulator's object store now reads and writes 1 MiB per step instead of 256 KiB: each
write waits for the transport to drain, and those round trips capped loopback throughput at
~350 MB/s on a loaded machine (600-700 MB/s after the change, same server CPU per GB).

### A large result through the whole engine

`streamx run` (child process) with one Symplify opens export whose result is a JSON array of the
size below (rows from the seeded generator, repeated with distinct event ids), served by the
Symplify simulator and its object store in the benchmark process: download, parse, normalize,
gzip JSON lines to disk. Every row must be published as a record (checked). The job time is
the simulator writing the result file before reporting FINISHED; transfer rate = result bytes /
(export seconds - job time).

| result | records | peak RSS | wall (child) | simulated job | transfer rate |
|---|---|---|---|---|---|
{engine_rows}

Peak RSS grew {growth:+.1f} MiB for {runs[-1].result_bytes / runs[0].result_bytes:.0f}x the
result size: memory does not follow the download size (the transfer rate is the parse and
normalize rate; the download itself is not the bottleneck).
"""


async def measure(
    args: argparse.Namespace,
) -> tuple[int, dict[str, Reads], list[EngineRun], tuple[float, float]]:
    quick = args.quick
    size = int((args.mb or (QUICK_OBJECT_MB if quick else OBJECT_MB)) * MB)
    rounds = args.rounds or (QUICK_ROUNDS if quick else ROUNDS)
    big = args.engine_mb or (QUICK_ENGINE_MB if quick else ENGINE_MB)
    small = QUICK_SMALL_ENGINE_MB if quick else SMALL_ENGINE_MB
    work = Path(tempfile.mkdtemp(prefix="streamx-bench-download-"))
    try:
        before = os.getloadavg()[0]
        reads = await throughput(size, rounds, work)
        loads = (before, os.getloadavg()[0])
        for name, item in reads.items():
            print(f"{name}: {', '.join(f'{value:.0f}' for value in item.rates)} MB/s", flush=True)
        runs = [await engine_run(small, work), await engine_run(big, work)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return size, reads, runs, loads


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__)
    parser.add_argument(
        "--mb", type=float, help=f"object size for the throughput test (MB, default {OBJECT_MB:g})"
    )
    parser.add_argument(
        "--engine-mb",
        type=float,
        help=f"result size through the engine (MB, default {ENGINE_MB:g})",
    )
    parser.add_argument("--rounds", type=int, help=f"rounds per reader (default {ROUNDS})")
    parser.add_argument("--serve", type=int, help="internal: serve an object of this many bytes")
    parser.add_argument("--ready", type=Path, help="internal: where --serve writes its URL")
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.ready))
        return 0
    size, reads, runs, loads = asyncio.run(measure(args))
    markdown = section(size, reads, runs, args.quick, loads)
    report.update_section("download", markdown, path=args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
