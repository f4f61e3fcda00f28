"""SFTP source throughput against OpenSSH's ``sftp`` get of the same file, over loopback.

    python -m benchmarks.bench_sftp [--mib 256] [--rounds 3] [--quick] [--results PATH]

Needs root: the server is a private Debian OpenSSH ``sshd`` with a throwaway user
(``tests/fixtures/servers.py``; ``scripts/test`` installs ``openssh-server``). Input: ``--mib``
MiB of Cordial activity CSV from the seeded generator (``streamx.testing.data``), written once
into the server's directory (in the page cache for every run). Both sides log in with the same
private key, verify the same host key, and discard what they read:

- **baseline**: ``sftp -b - ... user@127.0.0.1`` running ``get FILE /dev/null``, once with
  OpenSSH's default cipher choice and once with ``-c aes128-gcm@openssh.com`` (the cipher streamx
  prefers), OpenSSH's default 64 requests of 32 KiB in flight;
- **streamx**: :class:`streamx.sources.sftp.SFTPSource` over a fresh
  :class:`streamx.ssh.SFTPSession` (connect and login included, as for ``sftp``), iterating
  every chunk and checking the byte count.

Runs alternate so drift in the machine's load hits every side; the best run of each counts and
every run is listed. Target: streamx >= 50% of the faster ``sftp`` variant.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import report
from benchmarks.bench_s3 import make_input
from streamx.sources.sftp import DEFAULT_CHUNK_SIZE, SFTPSource
from streamx.ssh import SFTPSession, SSHConfig
from tests.fixtures.servers import SSHServerInfo, openssh_server

MIB = 1 << 20
SIZE_MIB, QUICK_SIZE_MIB = 256, 24
ROUNDS, QUICK_ROUNDS = 3, 1
TARGET = 0.5
BASELINES = {"sftp (default cipher)": [], "sftp -c aes128-gcm": ["-c", "aes128-gcm@openssh.com"]}


# --- the sides ----------------------------------------------------------------------------------


def sftp_get(server: SSHServerInfo, remote: str, extra: list[str]) -> float:
    """Seconds for OpenSSH's ``sftp`` to fetch ``remote`` into /dev/null."""
    command = [
        "sftp", "-q", "-b", "-", "-F", "/dev/null", "-P", str(server.port),
        "-i", server.client_key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        *extra, f"{server.username}@{server.host}",
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        command, input=f"get {remote} /dev/null\n", capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"sftp failed ({result.returncode}): {result.stderr.strip()}")
    return seconds


async def streamx_get(server: SSHServerInfo, remote: str, size: int) -> float:
    """Seconds for streamx to connect, log in and stream ``remote`` to the end."""
    config = SSHConfig(
        host=server.host,
        port=server.port,
        username=server.username,
        client_keys=(server.client_key,),
        known_hosts=server.known_hosts,
    )
    started = time.perf_counter()
    session = SFTPSession(config)
    try:
        received = 0
        async for chunk in SFTPSource(session, remote):
            received += len(chunk)
    finally:
        await session.close()
    seconds = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"streamx read {received} bytes of {size}")
    return seconds


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Runs:
    baselines: dict[str, list[float]] = field(default_factory=dict)
    streamx: list[float] = field(default_factory=list)


def measure(server: SSHServerInfo, remote: str, size: int, rounds: int) -> Runs:
    runs = Runs({name: [] for name in BASELINES})
    for index in range(rounds):
        if index % 2:  # alternate who goes first
            runs.streamx.append(asyncio.run(streamx_get(server, remote, size)))
        for name, extra in BASELINES.items():
            runs.baselines[name].append(sftp_get(server, remote, extra))
        if index % 2 == 0:
            runs.streamx.append(asyncio.run(streamx_get(server, remote, size)))
        shown = ", ".join(
            f"{name} {size / seconds[-1] / 1e6:.0f}" for name, seconds in runs.baselines.items()
        )
        print(
            f"round {index + 1}: {shown}, streamx {size / runs.streamx[-1] / 1e6:.0f} MB/s",
            flush=True,
        )
    return runs


# --- report --------------------------------------------------------------------------------------


def section(size: int, runs: Runs, quick: bool) -> str:
    def rate(seconds: float) -> float:
        return size / seconds / 1e6

    def row(name: str, seconds: list[float]) -> str:
        listed = ", ".join(f"{rate(value):.0f}" for value in seconds)
        return f"| {name} | {rate(min(seconds)):.0f} MB/s | {listed} |"

    best_name = min(runs.baselines, key=lambda name: min(runs.baselines[name]))
    baseline = rate(min(runs.baselines[best_name]))
    streamx = rate(min(runs.streamx))
    ratio = streamx / baseline
    median = statistics.median(runs.baselines[best_name]) / statistics.median(runs.streamx)
    met = "met" if ratio >= TARGET else "**not met**"
    rows = "\n".join(row(name, seconds) for name, seconds in runs.baselines.items())
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"""## SFTP source vs OpenSSH `sftp` get, loopback to a real sshd (issue 6)

Command: `python -m benchmarks.bench_sftp --mib {size // MIB}` (root: starts a private OpenSSH
sshd) — {size // MIB} MiB of generated Cordial activity CSV on the server (page cache), read into
nothing. Baseline: OpenSSH's `sftp -b -` running `get FILE /dev/null` (its defaults: 64 requests
of 32 KiB in flight), with its default cipher and with `aes128-gcm@openssh.com`. streamx:
`SFTPSource` over a fresh `SFTPSession` (connect and key login included, like `sftp`), reads of
{DEFAULT_CHUNK_SIZE // MIB} MiB split by asyncssh into pipelined requests of the server's
maximum (255 KiB), cipher `aes128-gcm@openssh.com` first. Best of {len(runs.streamx)}
alternating runs each.

| | best | all runs (MB/s) |
|---|---|---|
{rows}
| streamx `SFTPSource` | {streamx:.0f} MB/s | {", ".join(f"{rate(v):.0f}" for v in runs.streamx)} |

Ratio streamx / fastest `sftp` ({best_name}): **{ratio:.0%}** (of the medians: {median:.0%}).
Target >= {TARGET:.0%}: {met}. On 2 cores the server's encryption and the client's decryption
each take one; load average during the run: {load} (the machine is shared with other engineers'
tests; figures may be pessimistic).

{TUNING}
{report.quick_note(quick)}"""


#: What was tried while writing this benchmark (separate runs, same machine, 128 MiB file).
TUNING = """Tuning tried (separate exploratory runs, load average ~4, 128 MiB): a cProfile of one
streamx read shows the client using ~0.66 s CPU for 1.35 s wall (decrypting 32 KiB SSH packets,
asyncssh's packet loop, socket sends), so the client is not the bottleneck alone: the server's
encryption, `sftp-server` and the client share 2 busy cores. Larger SSH channel windows (8 and
16 MiB instead of asyncssh's 2 MiB), a 256 KiB maximum packet size, read sizes of 1, 4 and 8 MiB
instead of 2 MiB, and one or two reads issued ahead of the one being consumed all landed within
the run-to-run noise (68-118 MB/s for every variant), so the source keeps its simple defaults
(2 MiB reads, asyncssh's pipelining of 255 KiB requests, `aes128-gcm@openssh.com`)."""


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__)
    parser.add_argument("--mib", type=int, help=f"file size in MiB (default {SIZE_MIB})")
    parser.add_argument("--rounds", type=int, help=f"runs of each side (default {ROUNDS})")
    args = parser.parse_args(argv)
    size = (args.mib or (QUICK_SIZE_MIB if args.quick else SIZE_MIB)) * MIB
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    if shutil.which("sftp") is None:
        raise SystemExit("bench_sftp needs OpenSSH's sftp client (apt-get install openssh-client)")
    with openssh_server() as server:
        path = Path(server.root) / "input.csv"
        make_input(path, size)
        path.chmod(0o644)
        runs = measure(server, str(path), size, rounds)
    report.update_section("sftp", section(size, runs, args.quick), path=args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
