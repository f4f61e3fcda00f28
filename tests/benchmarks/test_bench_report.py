"""The shared benchmark helpers: child measurement, options, sections and the runner."""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import platform
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest tests/...` without `python -m` does not add the root
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

ALLOCATE = "import sys\nDATA = b'x' * ({mib} << 20)\nprint('allocated')\nsys.exit({code})\n"


def child_module(tmp_path: Path, name: str, mib: int, code: int = 0) -> dict[str, str]:
    (tmp_path / f"{name}.py").write_text(ALLOCATE.format(mib=mib, code=code))
    return {"PYTHONPATH": str(tmp_path)}


def test_child_peak_rss_is_its_own_not_the_parents(tmp_path: Path) -> None:
    env = child_module(tmp_path, "small_child", mib=1)
    ballast = b"\x01" * (300 << 20)  # the parent is large when it spawns the child

    run = report.run_python("small_child", [], env=env)

    assert ballast[-1] == 1
    assert run.returncode == 0 and run.stdout == "allocated\n"
    assert 5 < run.peak_rss_mib < 100  # a Python interpreter, not the parent's 300 MiB


def test_child_peak_rss_sees_what_the_child_allocates(tmp_path: Path) -> None:
    env = child_module(tmp_path, "big_child", mib=200)

    run = report.run_python("big_child", [], env=env)

    assert run.peak_rss_mib >= 200
    assert run.cpu_seconds > 0
    assert run.seconds > 0


def test_failed_child_is_reported_with_its_stderr(tmp_path: Path) -> None:
    env = child_module(tmp_path, "failing_child", mib=1, code=3)

    run = report.run_python("failing_child", [], env=env)

    assert run.returncode == 3
    with pytest.raises(RuntimeError, match="failing child exited with 3"):
        run.check("failing child")
    missing = report.run_python("no_such_module_here", [], env=env)
    assert missing.returncode != 0 and "no_such_module_here" in missing.stderr


def test_sections_are_replaced_in_place_and_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    report.update_section("alpha", "## Alpha\n\n1 MB/s", path=path)
    report.update_section("beta", "## Beta\n\n2 MB/s", path=path)
    report.update_section("alpha", "## Alpha\n\n3 MB/s", path=path)

    text = path.read_text()
    assert text.startswith(report.HEADER)
    assert text.count("<!-- bench:alpha -->") == 1 and "3 MB/s" in text and "1 MB/s" not in text
    assert "2 MB/s" in text
    assert text.index("bench:machine") < text.index("bench:alpha") < text.index("bench:beta")
    stamp = f"on Linux {platform.release()}, {os.cpu_count()} cores._"
    assert text.count(stamp) == 2  # each section says where its figures were taken


def _write_sections(path: Path, name: str) -> None:
    for round_ in range(15):
        report.update_section(name, f"## {name}\n\nround {round_}", path=path)


def test_concurrent_writers_lose_no_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    names = [f"writer{index}" for index in range(6)]
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_sections, args=(path, name)) for name in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0

    text = path.read_text()
    for name in names:
        assert text.count(f"<!-- bench:{name} -->") == 1
        assert f"## {name}\n\nround 14" in text
    assert text.count("<!-- bench:machine -->") == 1


def test_results_default_keeps_quick_runs_out_of_results_md(tmp_path: Path) -> None:
    parser = report.arguments("test")
    assert parser.parse_args([]).results == report.RESULTS
    assert parser.parse_args(["--quick"]).results == report.QUICK_RESULTS
    chosen = tmp_path / "sub" / "R.md"
    assert parser.parse_args(["--quick", "--results", str(chosen)]).results == chosen
    assert chosen.parent.is_dir()


def test_runner_refreshes_the_machine_section_and_checks_names(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    everything = report.discover()

    assert report.run_all(["--skip", *everything, "--results", str(path)]) == 0
    assert "## Machine" in path.read_text() and "cores" in path.read_text()
    with pytest.raises(SystemExit) as info:
        report.run_all(["--only", "no_such_benchmark", "--results", str(path)])
    assert info.value.code == 2


MAP_FILE = (  # the mapping stays open until exit, when the file-backed pages are read
    "import mmap, sys\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    MAPPED = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
    "print(sum(MAPPED[i] for i in range(0, len(MAPPED), 4096)))\n"
    "sys.modules['kept_mapping'] = MAPPED  # outlives runpy's module namespace\n"
)


def test_child_file_backed_pages_are_reported_apart(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x01" * (64 << 20))
    (tmp_path / "map_child.py").write_text(MAP_FILE)

    run = report.run_python("map_child", [str(data)], env={"PYTHONPATH": str(tmp_path)})

    assert run.returncode == 0 and run.stdout == f"{16384}\n"
    assert run.file_rss_mib >= 64  # every page of the file mapped and touched
    assert run.peak_rss_mib >= run.file_rss_mib


def _resident_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache (``mincore`` over an untouched mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with path.open("rb") as file:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, file.fileno(), 0)
        assert address not in (None, ctypes.c_void_p(-1).value)
        try:
            vector = ctypes.create_string_buffer(pages)
            assert libc.mincore(address, size, vector) == 0, ctypes.get_errno()
            return sum(byte & 1 for byte in vector.raw)
        finally:
            libc.munmap(address, size)


def test_library_pages_are_dropped_from_the_page_cache(tmp_path: Path) -> None:
    library = tmp_path / "site" / "libexample.so.1"
    library.parent.mkdir()
    with library.open("wb") as out:
        out.write(b"\x7fELF" + b"\x00" * (8 << 20))
        out.flush()
        os.fsync(out.fileno())  # dirty pages cannot be dropped; clean ones can
    (tmp_path / "site" / "notes.txt").write_text("not a library")
    assert _resident_pages(library) > 0

    assert report.settle_library_pages(library.parent) == 1

    assert _resident_pages(library) == 0
