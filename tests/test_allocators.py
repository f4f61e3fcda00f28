"""Process-wide settings the command line applies before any work (streamx.allocators).

Each test runs in a child interpreter: the settings are process-wide and must not leak into
the test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from streamx.allocators import ARROW_POOL_ENV, YOUNG_THRESHOLD

_PROBE = """
import gc, json, os
from streamx.allocators import lean_process
before = gc.get_threshold()
lean_process()
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "pool": os.environ.get("ARROW_DEFAULT_MEMORY_POOL")}))
"""


def _probe(**env: str) -> dict[str, object]:
    clean = {key: value for key, value in os.environ.items() if key != ARROW_POOL_ENV}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_lean_process_collects_young_objects_less_often_and_keeps_the_older_ratios() -> None:
    seen = _probe()
    before, after = seen["before"], seen["after"]
    assert isinstance(before, list) and isinstance(after, list)
    assert after == [YOUNG_THRESHOLD, before[1], before[2]]
    assert before[0] < YOUNG_THRESHOLD


def test_lean_process_chooses_arrows_system_pool_unless_the_user_chose_one() -> None:
    assert _probe()["pool"] == "system"
    assert _probe(ARROW_DEFAULT_MEMORY_POOL="jemalloc")["pool"] == "jemalloc"
