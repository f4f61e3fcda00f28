"""RESULTS.md as a set of sections, one per benchmark, each rewritten by its own run.

Every ``benchmarks/bench_<name>.py`` measures, then calls :func:`update_section` with its
markdown; the section sits between ``<!-- bench:NAME -->`` markers, so one benchmark can be
rerun without losing the others' figures, and ``scripts/bench`` rewrites them all (plus the
machine header) in one go. Ratios are always measured in the same run as their baseline.
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
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


def update_section(name: str, markdown: str, *, path: Path = RESULTS) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md with ``markdown``; the machine
    section is refreshed at the same time."""
    text = path.read_text() if path.exists() else HEADER
    text = _replace(text, "machine", machine())
    text = _replace(text, name, markdown.strip() + "\n")
    path.write_text(text)


def _replace(text: str, name: str, body: str) -> str:
    start, end = _markers(name)
    block = f"{start}\n{body}{end}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block
