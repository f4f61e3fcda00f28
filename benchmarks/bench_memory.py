"""Peak RSS: ``streamx convert`` on growing inputs, and 1000 concurrent exports (issue 9.3).

    python -m benchmarks.bench_memory [--sizes 0.1 1 5] [--exports 1000] [--quick]
                                      [--results PATH] [--keep DIR]

1. **Convert.** For each size a gzipped Cordial activity CSV of that many raw (uncompressed)
   bytes is written to a temp dir, then ``streamx convert ... --stream contact_activity`` runs
   as a child process (gzipped JSON lines out) and its own peak RSS is read with ``os.wait4``.
   Target: flat across sizes and under 100 MiB.
2. **Many exports.** Both simulators run in this process (:class:`SimHarness`); ``streamx run``
   runs as a child with 1000 exports in one configuration (half Symplify opens, half Cordial
   activity, small results). Target: the child's peak RSS under 512 MiB.

Why the input is made from a pool: the seeded generator produces ~2 MB/s (a 5 GB input would
take 40 minutes). It now fills a 64 MiB pool of distinct rows once (cached in the temp dir),
and the input is that pool streamed again and again. Every row's ``_id`` (the record id) starts
with a 6-character marker that each repetition replaces with its own hex number, so every row
of the input stays distinct; the bytes per row, the columns and the value mix are the
generator's, so the measured work is unchanged. Compression is gzip level 1 (isal when
installed): generating 5 GB takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from benchmarks import report
from streamx.testing import data
from streamx.testing.files import encode_chunks
from streamx.testing.harness import ACTIVITY_END, ACTIVITY_START, SimHarness
from streamx.testing.seeded import SeededProvider

try:
    from isal import isal_zlib as _gzip_backend
except ImportError:  # pragma: no cover - isal is a dev dependency
    _gzip_backend = zlib  # type: ignore[misc]

GB = 10**9
MIB = 1 << 20
SIZES_GB = (0.1, 1.0, 5.0)
QUICK_SIZES_GB = (0.02,)
POOL_BYTES = 64 * MIB
QUICK_POOL_BYTES = 2 * MIB
BLOCK_ROWS = 2000
MARK = b"ZZZZZZ"  # the first characters of every pool row's ``_id``; never occurs otherwise
CONVERT_LIMIT_MIB = 100.0
EXPORTS = 1000
QUICK_EXPORTS = 40
ROWS_PER_EXPORT = 200
EXPORTS_LIMIT_MIB = 512.0
_WINDOW = data.Window.days_back(7)
_PUBLISHED = re.compile(rb"published (\d+) records")


# --- input --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pool:
    """CSV rows (no header) in blocks of :data:`BLOCK_ROWS` rows; ``ends[i]`` is the byte offset
    where block ``i`` ends, so an input can stop at a row boundary."""

    data: bytes
    ends: list[int]

    @property
    def rows(self) -> int:
        return len(self.ends) * BLOCK_ROWS


def _block(index: int) -> bytes:
    """One block of generator rows, their ``_id`` prefixed with :data:`MARK`."""
    rows = data.cordial_activity_rows(index, rows=BLOCK_ROWS, window=_WINDOW, account=f"m{index}")
    marked = ({**row, "_id": MARK.decode() + row["_id"][len(MARK) :]} for row in rows)
    chunks = encode_chunks(marked, "csv", columns=data.ACTIVITY_CSV_COLUMNS, header=False)
    block = b"".join(chunks)
    if block.count(MARK) != BLOCK_ROWS:
        raise RuntimeError("the pool marker occurs outside the _id column")
    return block


def build_pool(size: int) -> Pool:
    """Generate about ``size`` bytes of distinct rows (slow: the seeded generator)."""
    blocks: list[bytes] = []
    ends: list[int] = []
    total = 0
    while total < size:
        block = _block(len(blocks))
        blocks.append(block)
        total += len(block)
        ends.append(total)
    return Pool(b"".join(blocks), ends)


def load_pool(size: int, cache: Path) -> Pool:
    """The pool of ``size`` bytes, generated once and kept in ``cache`` for later runs."""
    path = cache / f"activity-pool-v1-{size}.csv"
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        return Pool(path.read_bytes(), json.loads(sidecar.read_text()))
    pool = build_pool(size)
    cache.mkdir(parents=True, exist_ok=True)
    for target, content in ((path, pool.data), (sidecar, json.dumps(pool.ends).encode())):
        temp = target.with_name(f".{target.name}.{os.getpid()}")
        temp.write_bytes(content)
        os.replace(temp, target)
    return pool


def input_chunks(pool: Pool, raw_bytes: int) -> Iterator[tuple[bytes, int]]:
    """``(csv bytes, rows in them)``: the header, then the pool repeated (marker replaced by
    the repetition number) until ``raw_bytes``, ending at a block boundary."""
    header = b",".join(name.encode() for name in data.ACTIVITY_CSV_COLUMNS) + b"\r\n"
    yield header, 0
    produced, repetition = len(header), 0
    while produced < raw_bytes:
        text = pool.data.replace(MARK, b"%06x" % repetition)
        start = 0
        for end in pool.ends:
            yield text[start:end], BLOCK_ROWS
            produced += end - start
            start = end
            if produced >= raw_bytes:
                return
        repetition += 1


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: Path
    raw_bytes: int
    gzip_bytes: int
    rows: int
    seconds: float


def make_input(path: Path, raw_bytes: int, pool: Pool) -> InputFile:
    """Write the gzipped (level 1, one member) CSV input of about ``raw_bytes``."""
    started = time.perf_counter()
    compressor = _gzip_backend.compressobj(1, zlib.DEFLATED, 31)
    raw = rows = 0
    with path.open("wb") as handle:
        for chunk, count in input_chunks(pool, raw_bytes):
            raw, rows = raw + len(chunk), rows + count
            handle.write(compressor.compress(chunk))
        handle.write(compressor.flush())
    return InputFile(path, raw, path.stat().st_size, rows, time.perf_counter() - started)


# --- convert ------------------------------------------------------------------------------------


#: The ways ``streamx convert`` runs: as shipped (the columnar fast path when pyarrow is
#: installed and the input suits it), and the row path alone (``STREAMX_FASTPATH=0``: what
#: every input takes without pyarrow).
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "STREAMX_FASTPATH=0": {"STREAMX_FASTPATH": "0"},
}


@dataclasses.dataclass(frozen=True)
class ConvertRun:
    input: InputFile
    variant: str
    child: report.ChildRun
    records: int


def convert(source: InputFile, out: Path, variant: str) -> ConvertRun:
    """``streamx convert`` as a child; checks every row became a record."""
    child = report.run_python(
        "streamx",
        ["convert", str(source.path), "--source", "cordial", "--stream", "contact_activity",
         "--out", str(out), "--export-id", "bench"],
        env=VARIANTS[variant],
    ).check("streamx convert")  # fmt: skip
    match = _PUBLISHED.search(child.stdout.encode())
    records = int(match[1]) if match else -1
    if records != source.rows:
        raise RuntimeError(f"convert published {records} records of {source.rows} rows")
    return ConvertRun(source, variant, child, records)


def convert_runs(sizes: list[float], work: Path, pool: Pool) -> list[ConvertRun]:
    """Every size with every variant (one input per size, deleted after its runs)."""
    runs = []
    for size in sizes:
        source = make_input(work / f"activity-{size}.csv.gz", int(size * GB), pool)
        try:
            for variant in VARIANTS:
                out = work / f"out-{size}"
                try:
                    run = convert(source, out, variant)
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                runs.append(run)
                print(f"convert {size} GB ({variant}): peak RSS {run.child.peak_rss_mib:.1f} "
                      f"MiB, {run.child.seconds:.1f} s", flush=True)  # fmt: skip
        finally:
            source.path.unlink(missing_ok=True)
    return runs


# --- many exports -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportsRun:
    exports: int
    records: int
    child: report.ChildRun


def exports_toml(sims: SimHarness, count: int, out: Path) -> str:
    """A configuration with ``count`` exports: Symplify opens and Cordial activity, alternating."""
    lines = [
        "[engine]\nconcurrency = 8\npoll_interval = 0.5\npoll_interval_max = 5.0\n",
        f'[output]\ndir = "{out}"\n',
        "[accounts.sym]",
        'vendor = "symplify"\ntoken_env = "BENCH_SYMPLIFY_TOKEN"\nmax_transfers = 8',
        f'base_url = "{sims.symplify.base_url}/rest/{sims.symplify.customer_id}"\n',
        "[accounts.cor]",
        'vendor = "cordial"\napi_key_env = "BENCH_CORDIAL_KEY"\nmax_transfers = 8',
        f'base_url = "{sims.cordial.base_url}"\nrecords_per_file = 100',
        f'[accounts.cor.landing]\ntype = "local"\ndir = "{sims.landing}"\n',
    ]
    for index in range(count):
        if index % 2:
            body = 'account = "cor"\nstream = "contact_activity"\n'
            body += f'start = "{ACTIVITY_START}"\nend = "{ACTIVITY_END}"'
        else:
            body = 'account = "sym"\nstream = "opens"\nperiod = "LAST_DAY"'
        lines.append(f'[[exports]]\nname = "e{index:05d}"\n{body}\n')
    return "\n".join(lines)


async def many_exports(count: int, work: Path) -> ExportsRun:
    """``count`` exports through ``streamx run`` (a child) against in-process simulators."""
    provider = SeededProvider(rows=ROWS_PER_EXPORT)
    work.mkdir(parents=True, exist_ok=True)
    async with SimHarness(provider, directory=work) as sims:
        config = work / "streamx.toml"
        config.write_text(exports_toml(sims, count, work / "out"))
        env = {
            "BENCH_SYMPLIFY_TOKEN": sims.symplify.token,
            "BENCH_CORDIAL_KEY": sims.cordial.api_key,
        }
        command = ["run", "--config", str(config), "--json"]
        child = await asyncio.to_thread(report.run_python, "streamx", command, env=env)
    results = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    bad = [item for item in results if item["status"] != "done" or item["rows_quarantined"]]
    if child.returncode != 0 or len(results) != count or bad:
        raise RuntimeError(f"streamx run: {len(bad)} bad of {len(results)}: {child.stderr[-2000:]}")
    return ExportsRun(count, sum(item["records"] for item in results), child)


# --- report -------------------------------------------------------------------------------------


def _verdicts(runs: list[ConvertRun]) -> str:
    """Per variant: peak range, growth over the size range, and whether the target holds."""
    lines = []
    for variant in VARIANTS:
        chosen = [run for run in runs if run.variant == variant]
        peaks = [run.child.peak_rss_mib for run in chosen]
        ratio = chosen[-1].input.raw_bytes / chosen[0].input.raw_bytes
        met = max(peaks) < CONVERT_LIMIT_MIB
        lines.append(
            f"- `{variant}`: peak RSS {min(peaks):.1f}-{max(peaks):.1f} MiB over {ratio:.0f}x the "
            f"input size (spread {max(peaks) - min(peaks):.1f} MiB): "
            f"**{'met' if met else 'NOT met'}**"
        )
    return "\n".join(lines)


def section(runs: list[ConvertRun], exports: ExportsRun, pool: Pool, quick: bool) -> str:
    rows = "\n".join(
        f"| {run.input.raw_bytes / GB:.2f} GB | {run.input.gzip_bytes / 1e6:,.0f} MB | "
        f"{run.input.rows:,} | `{run.variant}` | **{run.child.peak_rss_mib:.1f} MiB** | "
        f"{run.child.file_rss_mib:.1f} MiB | "
        f"{run.child.seconds:.1f} s | {run.input.raw_bytes / 1e6 / run.child.seconds:.1f} MB/s | "
        f"{run.input.seconds:.1f} s |"
        for run in runs
    )
    exports_ok = exports.child.peak_rss_mib < EXPORTS_LIMIT_MIB
    child = exports.child
    exports_row = (
        f"| {exports.exports:,} | {exports.records:,} | **{child.peak_rss_mib:.1f} MiB** | "
        f"{child.file_rss_mib:.1f} MiB | "
        f"{child.seconds:.1f} s | {child.cpu_seconds:.1f} s |"
    )
    return f"""
## Memory: peak RSS (issue 9 point 3)
{report.quick_note(quick)}
Command: `python -m benchmarks.bench_memory{" --quick" if quick else ""}`.
Peak RSS is the child's own (`VmHWM` of the address space `exec` gave it, read at its exit), so
nothing of the generator or the simulators is counted. {report.FILE_RSS_NOTE}

### `streamx convert` of a gzipped Cordial activity CSV

`streamx convert activity.csv.gz --source cordial --stream contact_activity` (gzipped JSON
lines out); every row must come out as a record (checked). Each input is converted twice: as
shipped (`default`: the columnar fast path when pyarrow is installed) and with the row path
alone (`STREAMX_FASTPATH=0`: what every input takes without pyarrow).

| input (raw CSV) | gzip | rows | run | peak RSS | file-backed | wall | raw MB/s | input made in |
|---|---|---|---|---|---|---|---|---|
{rows}

Target: flat and under {CONVERT_LIMIT_MIB:.0f} MiB.

{_verdicts(runs)}

Inputs: a pool of {pool.rows:,} distinct generator rows ({len(pool.data) / MIB:.0f} MiB of CSV,
made once by the seeded generator and cached in the temp dir) streamed repeatedly; each
repetition rewrites the first 6 characters of every row's `_id` (the record id) with its own
number, so all rows stay distinct. gzip level 1 ({_gzip_backend.__name__}), one member.

### {exports.exports:,} concurrent exports through `streamx run`

One `streamx run --config ... --json` child with {exports.exports:,} exports (half Symplify
opens, half Cordial activity in chunk files of 100 rows, {ROWS_PER_EXPORT} rows each), against
both simulators in the benchmark process; engine concurrency 8, 8 transfers per account.

| exports | records published | peak RSS | file-backed | wall | CPU |
|---|---|---|---|---|---|
{exports_row}

Target: under {EXPORTS_LIMIT_MIB:.0f} MiB: **{"met" if exports_ok else "NOT met"}**.
"""


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__)
    parser.add_argument("--sizes", type=float, nargs="+", help="raw input sizes in GB")
    parser.add_argument("--exports", type=int, help=f"concurrent exports (default {EXPORTS})")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: temp)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "streamx-bench")
    args = parser.parse_args(argv)
    sizes = args.sizes or list(QUICK_SIZES_GB if args.quick else SIZES_GB)
    count = args.exports or (QUICK_EXPORTS if args.quick else EXPORTS)
    work = args.keep or Path(tempfile.mkdtemp(prefix="streamx-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        pool = load_pool(QUICK_POOL_BYTES if args.quick else POOL_BYTES, args.cache)
        runs = convert_runs(sorted(sizes), work, pool)
        exports = asyncio.run(many_exports(count, work / "exports"))
        print(f"{count} exports: peak RSS {exports.child.peak_rss_mib:.1f} MiB", flush=True)
        report.update_section("memory", section(runs, exports, pool, args.quick), path=args.results)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
