"""The existing pipeline and ``streamx convert`` tests, run once more on the row path.

With pyarrow installed (as in CI) the regular run of ``tests/test_pipeline.py`` and
``tests/cli/test_convert_cli.py`` goes through the columnar fast path for CSV input; this runs
the same modules with ``STREAMX_FASTPATH=0``, so both paths pass the same codec, chunking, BOM,
multi-member gzip, quoting and quarantine cases; and once with every JSON lines file, however
small, in tiny Arrow blocks (the default leaves files under 64 KiB to the row path).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streamx.columnar import ENV_SWITCH, fast_path_available

ROOT = Path(__file__).resolve().parents[2]
SUITES = ("tests/test_pipeline.py", "tests/cli/test_convert_cli.py")
#: With the abuse and fuzz suites: invalid UTF-8, deep nesting and odd lines in JSON lines.
JSON_SUITES = (
    *SUITES,
    "tests/reliability/test_abuse.py",
    "tests/reliability/test_fuzz_properties.py",
)


def test_fast_path_is_on_by_default_here() -> None:
    assert fast_path_available() == (os.environ.get(ENV_SWITCH, "") != "0")


def _run_suites(env: dict[str, str], *options: str, suites: tuple[str, ...] = SUITES) -> None:
    command = [sys.executable, "-m", "pytest", *suites, "-q", "-x", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, *options], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_pipeline_and_convert_suites_pass_on_the_row_path() -> None:
    _run_suites({**os.environ, ENV_SWITCH: "0"})


def test_pipeline_and_convert_suites_pass_with_every_json_lines_file_in_arrow_blocks() -> None:
    env = {key: value for key, value in os.environ.items() if key != ENV_SWITCH}
    _run_suites(env, "-p", "tests.columnar.tiny_json_blocks", suites=JSON_SUITES)
