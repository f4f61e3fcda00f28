"""RESULTS.md as a set of sections, one per benchmark, each rewritten by its own run.

Every ``benchmarks/bench_<name>.py`` measures, then calls :func:`update_section` with its
markdown; the section sits between ``<!-- bench:NAME -->`` markers, so one benchmark can be
rerun without losing the others' figures, and ``scripts/bench`` rewrites them all (plus the
machine header) in one go. Ratios are always measured in the same run as their baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import glob
import importlib
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
#: The repository root: benchmark child processes run with it on ``PYTHONPATH``.
ROOT = Path(__file__).resolve().parent.parent
HEADER = """# Benchmark results

Figures are measured on the machine below by the scripts in `benchmarks/` (`scripts/bench` runs
them all and rewrites this file; `python -m benchmarks.bench_NAME` reruns one section). Inputs
come from the seeded generator (`streamx.testing.data`); nothing large is committed. Every ratio
is measured against its baseline in the same run, on the same input.
"""
PACKAGES = ("orjson", "isal", "aiohttp", "aioboto3", "asyncssh", "zstandard", "pyarrow", "duckdb")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def machine() -> str:
    """The machine section: cores, memory, OS, Python and package versions."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        "## Machine\n\n"
        f"- {os.cpu_count()} cores, {pages / 2**30:.0f} GiB RAM, {platform.platform()}\n"
        f"- Python {platform.python_version()}; {', '.join(versions)}\n"
        f"- load average when last written: {load}\n"
    )


def measured_on() -> str:
    """The line that ends every section: when, and on which kernel, its figures were taken.

    Why per section: a benchmark can be rerun alone, so sections measured months apart sit
    under one machine header; the kernel alone moved peak RSS by ~30 MiB here (see
    :data:`FILE_RSS_NOTE`).
    """
    day = time.strftime("%Y-%m-%d", time.gmtime())
    return f"_Measured {day} on Linux {platform.release()}, {os.cpu_count()} cores._"


def update_section(name: str, markdown: str, *, path: Path = RESULTS) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md with ``markdown`` and the
    :func:`measured_on` line; the machine section is refreshed at the same time."""
    with _locked(path):
        text = path.read_text() if path.exists() else HEADER
        text = _replace(text, "machine", machine())
        body = f"{markdown.strip()}\n\n{measured_on()}\n"
        _write(path, _replace(text, name, body))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of ``path`` across processes: benchmarks of different
    engineers may finish at the same moment, and neither section may be lost. The lock is a
    ``flock`` on the file's directory, so no lock file is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write(path: Path, text: str) -> None:
    """Atomically: a reader (or a crash) never sees half a file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def _replace(text: str, name: str, body: str) -> str:
    start, end = _markers(name)
    block = f"{start}\n{body}{end}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block


def refresh_machine(path: Path = RESULTS) -> None:
    """Rewrite only the machine section (``scripts/bench`` does it after all benchmarks ran)."""
    with _locked(path):
        text = path.read_text() if path.exists() else HEADER
        _write(path, _replace(text, "machine", machine()))


# --- the options every benchmark takes -------------------------------------------------------


#: Where ``--quick`` runs write unless ``--results`` says otherwise: a smoke run's figures must
#: never replace the real ones in RESULTS.md.
QUICK_RESULTS = Path(tempfile.gettempdir()) / "streamx-bench-quick" / "RESULTS.md"


class BenchParser(argparse.ArgumentParser):
    """An argument parser whose ``results`` is always a path: ``--results`` if given, else
    :data:`QUICK_RESULTS` for ``--quick`` runs and :data:`RESULTS` otherwise."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        if getattr(parsed, "results", None) is None:
            parsed.results = QUICK_RESULTS if getattr(parsed, "quick", False) else RESULTS
        parsed.results.parent.mkdir(parents=True, exist_ok=True)
        return parsed, rest


def arguments(description: str | None) -> argparse.ArgumentParser:
    """A parser with the options every ``bench_*`` module shares: ``--quick`` (small inputs, a
    smoke run whose figures mean little) and ``--results PATH`` (the file whose section is
    rewritten; default RESULTS.md, or a temp file for ``--quick`` so a smoke run never replaces
    real figures). ``args.results`` is always a :class:`~pathlib.Path`."""
    parser = BenchParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small inputs (smoke test)")
    parser.add_argument(
        "--results",
        type=Path,
        help=f"results file to update (default {RESULTS}; with --quick {QUICK_RESULTS})",
    )
    return parser


def quick_note(quick: bool) -> str:
    """A line for sections written by a ``--quick`` run (its figures are not the real ones)."""
    if not quick:
        return ""
    return "\n_Quick smoke run (`--quick`): small inputs, figures not representative._\n"


# --- child processes, measured one by one -------------------------------------------------------


FILE_RSS_NOTE = (
    "Peak RSS counts the shared libraries' file pages a process has mapped (pyarrow's are the"
    " largest), which depend on the page cache, not on streamx: on this kernel (Linux 6.18), a"
    " library that was just written by `pip install` sits in the page cache in large folios and"
    " is mapped a whole folio per fault, so the same process shows ~30 MiB more (pyarrow's"
    " import alone: 83 MiB just after install, 52 MiB once the cache is dropped and the library"
    " read back from disk). 'File-backed' is that part, read at exit. Before its first child,"
    " a benchmark drops the installed libraries' unmapped pages from the page cache"
    " (`posix_fadvise(DONTNEED)`), so every child maps them as read from disk, as a deployed"
    " image does."
)


@functools.cache
def settle_library_pages(root: Path = Path(sys.prefix) / "lib") -> int:
    """Drop the shared libraries under ``root`` (the virtualenv's) from the page cache;
    returns how many files.

    Why: see :data:`FILE_RSS_NOTE`. Only clean pages no process maps are dropped (the kernel
    skips the rest), so this changes nothing but where the next reader gets them from.
    """
    libraries = [path for path in root.rglob("*.so*") if path.is_file()]
    for path in libraries:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)
    return len(libraries)


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: exit status, output, wall time, and its *own* peak RSS and CPU
    seconds (user + system)."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mib: float
    cpu_seconds: float
    #: File-backed resident pages at exit (mostly shared libraries: pyarrow's are ~15-30 MiB).
    #: Part of ``peak_rss_mib``, and not memory the input makes grow: see :data:`FILE_RSS_NOTE`.
    file_rss_mib: float = 0.0

    def check(self, what: str) -> ChildRun:
        """Raise with the child's stderr when it failed."""
        if self.returncode != 0:
            raise RuntimeError(f"{what} exited with {self.returncode}: {self.stderr[-4000:]}")
        return self


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours, the repository root importable, plus ``extra``."""
    env = {**os.environ, **(extra or {})}
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


#: Runs ``python -m MODULE ARGS`` (argv[1:]) and, at exit, writes the process's ``VmHWM``
#: (peak resident set of its own address space, KiB) to the file named by the environment.
_PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as status:
        wanted = ("VmHWM:", "RssFile:")
        fields = dict(line.split()[:2] for line in status if line.startswith(wanted))
    with open(os.environ["STREAMX_BENCH_PEAK_FILE"], "w") as out:
        out.write(f"{fields['VmHWM:']} {fields['RssFile:']}")
atexit.register(_peak)
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_python(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600.0,
) -> ChildRun:
    """Run ``python -m module args`` as a child and measure its own peak RSS and CPU time.

    Blocking: call it through ``asyncio.to_thread`` when an event loop (a simulator) must keep
    serving meanwhile.

    Why not ``ru_maxrss`` (``getrusage(RUSAGE_CHILDREN)`` or ``wait4``): Linux carries the
    parent's resident size at fork into the child's ``ru_maxrss`` across ``exec`` (and
    ``RUSAGE_CHILDREN`` keeps the maximum over every child ever waited for), so a benchmark
    holding a 64 MiB input pool would see its own size reported as the child's. The child's
    ``VmHWM`` belongs to the address space ``exec`` created: the streamx process alone. CPU
    time comes from ``os.wait4`` on the child's pid (that one is the child's own).
    """
    settle_library_pages()
    with tempfile.TemporaryDirectory(prefix="streamx-bench-child-") as scratch:
        peak_file = Path(scratch) / "peak"
        extra = {**(env or {}), "STREAMX_BENCH_PEAK_FILE": str(peak_file)}
        argv = [sys.executable, "-c", _PEAK_WRAPPER, module, *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            process = subprocess.Popen(argv, stdout=out, stderr=err, env=child_env(extra))
            helpers: dict[int, int] = {}
            status, usage = _wait4(process, timeout, helpers)
            seconds = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = (
                out.read().decode(errors="replace"),
                err.read().decode(errors="replace"),
            )
        peak_kib, file_kib = _read_peak(peak_file)
    peak_kib += sum(helpers.values())
    return ChildRun(
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
        seconds=seconds,
        peak_rss_mib=peak_kib / 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        file_rss_mib=file_kib / 1024,
    )


def _read_peak(peak_file: Path) -> tuple[int, int]:
    """``(VmHWM, RssFile)`` in KiB as the child wrote them at exit; zeros if it did not."""
    if not peak_file.exists():
        return 0, 0
    hwm, file_rss = peak_file.read_text().split()
    return int(hwm), int(file_rss)


def _wait4(
    process: subprocess.Popen[bytes], timeout: float, helpers: dict[int, int]
) -> tuple[int, resource.struct_rusage]:
    deadline = time.monotonic() + timeout
    while True:
        _note_helpers(process.pid, helpers)
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, usage
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise TimeoutError(f"{argv_text(process.args)} did not end within {timeout:.0f} s")
        time.sleep(0.02)


def _note_helpers(pid: int, helpers: dict[int, int]) -> None:
    """The peak RSS (``VmHWM``, KiB) of each process the child started (streamx's JSON lines
    helper), as last seen: a helper's memory is the child's too, so it is added to its peak
    (a sum of both peaks, an upper bound of what they held at once)."""
    for children in glob.glob(f"/proc/{pid}/task/*/children"):
        with contextlib.suppress(OSError):
            listed = Path(children).read_text().split()
            for child in map(int, listed):
                hwm = _hwm_kib(child)
                if hwm:
                    helpers[child] = max(hwm, helpers.get(child, 0))


def _hwm_kib(pid: int) -> int:
    with (
        contextlib.suppress(OSError, StopIteration, ValueError),
        open(f"/proc/{pid}/status") as status,
    ):
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
    return 0


def argv_text(args: object) -> str:
    """A command line for messages."""
    if isinstance(args, (list, tuple)):
        return " ".join(str(part) for part in args)
    return str(args)


# --- running every benchmark (scripts/bench) -------------------------------------------------


def discover(directory: Path = Path(__file__).parent) -> list[str]:
    """Names of the benchmarks in ``directory`` (``bench_memory.py`` -> ``memory``), sorted, so a
    new ``bench_<name>.py`` joins ``scripts/bench`` without any registration."""
    return sorted(path.stem.removeprefix("bench_") for path in directory.glob("bench_*.py"))


def run_all(argv: Sequence[str] | None = None) -> int:
    """``scripts/bench``: run every benchmark's ``main`` (or the ``--only`` ones), each writing
    its own section, then refresh the machine section. A failing benchmark does not stop the
    others; the exit status says whether any failed."""
    parser = arguments("Run the benchmarks in benchmarks/ and rewrite their RESULTS.md sections.")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="do not run these")
    args = parser.parse_args(argv)
    known = discover()
    chosen = [_short(name) for name in args.only] if args.only else known
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    skip = {_short(name) for name in args.skip}
    forwarded = ["--results", str(args.results), *(["--quick"] if args.quick else [])]
    failed = [name for name in chosen if name not in skip and not _run_one(name, forwarded)]
    refresh_machine(args.results)
    print(f"== results: {args.results}", flush=True)
    if failed:
        print(f"== failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _short(name: str) -> str:
    return name.removesuffix(".py").removeprefix("benchmarks.").removeprefix("bench_")


def _run_one(name: str, argv: list[str]) -> bool:
    print(f"== bench_{name} {' '.join(argv)}", flush=True)
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        code: int = module.main(argv)
    except SystemExit as exc:  # argparse errors and explicit exits
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        traceback.print_exc()
        code = 1
    print(f"== bench_{name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
    return code == 0


if __name__ == "__main__":
    raise SystemExit(run_all())
