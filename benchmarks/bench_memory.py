"""Peak RSS of ``streamx convert`` on a generated Cordial activity CSV.gz of a given raw size.

    python -m benchmarks.bench_memory --gb 2 [--keep DIR]

The input comes from the seeded generator (streamed to disk, nothing committed); the conversion
runs as a real ``streamx convert`` child process, and its peak RSS is read from the kernel's
rusage of that child. Memory must stay flat however large the input is.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from streamx.testing import data
from streamx.testing.files import encode_chunks, gzip_chunks

_WINDOW = data.Window.days_back(7)


def _rows_until(raw_bytes: int) -> Iterator[bytes]:
    """CSV bytes from the generator until ``raw_bytes`` have been produced."""
    produced = 0
    seed = 0
    while produced < raw_bytes:
        rows = data.cordial_activity_rows(seed, rows=50_000, window=_WINDOW, account=f"b{seed}")
        for index, chunk in enumerate(
            encode_chunks(rows, "csv", columns=data.ACTIVITY_CSV_COLUMNS)
        ):
            if seed and index == 0:  # only the first batch carries the header
                chunk = chunk.split(b"\r\n", 1)[1]
            produced += len(chunk)
            yield chunk
            if produced >= raw_bytes:
                return
        seed += 1


def make_input(path: str, raw_bytes: int) -> int:
    """Write a gzipped CSV of about ``raw_bytes`` uncompressed; returns the raw size."""
    raw = 0
    with open(path, "wb") as handle:

        def counted() -> Iterator[bytes]:
            nonlocal raw
            for chunk in _rows_until(raw_bytes):
                raw += len(chunk)
                yield chunk

        for block in gzip_chunks(counted(), level=1):
            handle.write(block)
    return raw


def measure(path: str, out: str) -> tuple[float, float, str]:
    """Run streamx convert as a child; returns (seconds, peak RSS MiB, summary line)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "streamx", "convert", path, "--source", "cordial",
         "--stream", "contact_activity", "--out", out, "--export-id", "bench"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"streamx convert failed ({result.returncode}): {result.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kib / 1024, result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0, help="uncompressed input size in GB")
    parser.add_argument("--keep", help="directory to keep input/output in (default: temp)")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="streamx-bench-")
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "activity.csv.gz")
    raw = make_input(path, int(args.gb * 1e9))
    seconds, peak, summary = measure(path, os.path.join(work, "out"))
    print(f"input: {raw / 1e9:.2f} GB raw CSV, {os.path.getsize(path) / 1e6:.0f} MB gzip")
    print(f"convert: {seconds:.1f} s, {raw / 1e6 / seconds:.1f} MB/s raw, peak RSS {peak:.1f} MiB")
    print(summary)


if __name__ == "__main__":
    main()
