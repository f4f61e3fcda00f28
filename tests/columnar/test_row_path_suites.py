"""The existing pipeline and ``streamx convert`` tests, run once more on the row path.

With pyarrow installed (as in CI) the regular run of ``tests/test_pipeline.py`` and
``tests/cli/test_convert_cli.py`` goes through the columnar fast path for CSV input; this runs
the same modules with ``STREAMX_FASTPATH=0``, so both paths pass the same codec, chunking, BOM,
multi-member gzip, quoting and quarantine cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streamx.columnar import ENV_SWITCH, fast_path_available

ROOT = Path(__file__).resolve().parents[2]
SUITES = ("tests/test_pipeline.py", "tests/cli/test_convert_cli.py")


def test_fast_path_is_on_by_default_here() -> None:
    assert fast_path_available() == (os.environ.get(ENV_SWITCH, "") != "0")


def test_pipeline_and_convert_suites_pass_on_the_row_path() -> None:
    env = {**os.environ, ENV_SWITCH: "0"}
    command = [sys.executable, "-m", "pytest", *SUITES, "-q", "-x", "-p", "no:cacheprovider"]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
