"""Every benchmark runs end to end in ``--quick`` mode and writes its RESULTS.md section.

Each discovered ``benchmarks/bench_<name>.py`` is run through its ``main(["--quick",
"--results", tmp])`` (what ``scripts/bench --quick`` does), so a benchmark that no longer runs
against the current code, or stops writing its figures, fails here rather than at release time.
The real RESULTS.md is never touched.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest tests/...` without `python -m` does not add the root
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

#: Benchmarks left out of the smoke run, with the reason.
EXCLUDED: dict[str, str] = {
    "convert": "its --quick run takes ~45 s here (DuckDB/dlt baselines); run it with scripts/bench",
}

MIB_FIGURE = r"\*\*\d+(\.\d+)? MiB\*\*"
#: samples | big result MB/s | lag p50 | **lag p99** (the lag-while-parsing table)
LAG_ROW = r"[\d,]+ \| [\d.]+ \| [\d.]+ ms \| \*\*[\d.]+ ms\*\* \|"
#: Figures each of our sections must contain (the others: a section with numbers in it).
FIGURES: dict[str, list[str]] = {
    "memory": [
        rf"\| 0\.02 GB \| \d+ MB \| [\d,]+ \| `default` \| {MIB_FIGURE} \|",  # fast path
        rf"\| `STREAMX_FASTPATH=0` \| {MIB_FIGURE} \|",  # row path
        rf"\| 40 \| 8,000 \| {MIB_FIGURE} \|",  # the concurrent exports row
        r"- `default`: peak RSS .*\*\*(met|NOT met)\*\*",
    ],
    "concurrency": [
        r"\| control \| 40 \|",
        r"\| polling \| 40 \| 1\.0 s \|",
        r"\| parsing \| 40 \+ big \|",
        r"\| parsing-csv \| 40 \+ big \|",
        r"~\d+\.\d+ ms per poll",
        rf"\| parsing \| jsonl \| \d+ KiB \| {LAG_ROW}",
        rf"\| parsing-csv \| csv \| \d+ KiB \| {LAG_ROW}",
        rf"\| parsing-64k \| jsonl \| 64 KiB \| {LAG_ROW}",
        rf"\| parsing-csv-64k \| csv \| 64 KiB \| {LAG_ROW}",
        r"as shipped \(`PARSE_SLICE` \d+ KiB\):\s+\*\*(met|NOT met)\*\*",
    ],
    "download": [
        r"\| streamx HttpSource \| \d+ MB/s \|",
        r"\| aiohttp iter_chunked\(1 MiB\) \| \d+ MB/s \|",
        r"\| aiohttp readexactly\(1 MiB\) \| \d+ MB/s \|",
        r"\*\*\d+%\*\* best of rounds",
        rf"\| 8 MB \| [\d,]+ \| {MIB_FIGURE} \|",
    ],
}


def section(text: str, name: str) -> str:
    match = re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->", text, re.S)
    assert match, f"no {name} section in:\n{text}"
    return match[1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [name for name in report.discover() if name not in EXCLUDED])
def test_quick_run_writes_its_section(name: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    module = importlib.import_module(f"benchmarks.bench_{name}")

    assert module.main(["--quick", "--results", str(results)]) == 0

    text = results.read_text()
    body = section(text, name)
    assert "Quick smoke run" in body
    assert re.search(r"\d+(\.\d+)? ?(MiB|MB/s|ms|s)\b", body), body
    for pattern in FIGURES.get(name, []):
        assert re.search(pattern, body), f"{pattern!r} not in the {name} section:\n{body}"
    assert "## Machine" in section(text, "machine")


def test_every_benchmark_is_discovered() -> None:
    files = (ROOT / "benchmarks").glob("bench_*.py")
    on_disk = sorted(path.stem.removeprefix("bench_") for path in files)
    assert report.discover() == on_disk
    assert {"memory", "concurrency", "download"} <= set(on_disk)
