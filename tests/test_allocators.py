"""Process-wide settings the command line applies before any work (streamx.allocators).

Each test runs in a child interpreter: the settings are process-wide and must not leak into
the test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from streamx.allocators import ARROW_POOL_ENV, JEMALLOC_CONF, JEMALLOC_CONF_ENV, YOUNG_THRESHOLD

_PROBE = """
import gc, json, os
from streamx.allocators import lean_process
before = gc.get_threshold()
lean_process()
import pyarrow
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "pool": os.environ.get("ARROW_DEFAULT_MEMORY_POOL"),
                  "conf": os.environ.get("JE_ARROW_MALLOC_CONF"),
                  "arrow": pyarrow.default_memory_pool().backend_name}))
"""


def _probe(**env: str) -> dict[str, object]:
    chosen = (ARROW_POOL_ENV, JEMALLOC_CONF_ENV)
    clean = {key: value for key, value in os.environ.items() if key not in chosen}
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


def test_lean_process_gives_arrow_one_jemalloc_arena_unless_the_user_chose() -> None:
    seen = _probe()
    if sys.platform != "linux":  # pyarrow bundles jemalloc on Linux only
        assert seen["pool"] == seen["arrow"] == "system" and seen["conf"] is None
        return
    assert seen["pool"] == "jemalloc" and seen["conf"] == JEMALLOC_CONF
    assert seen["arrow"] == "jemalloc"  # this pyarrow has it: Arrow took the choice
    assert "narenas:1" in JEMALLOC_CONF and "tcache:false" in JEMALLOC_CONF
    mine = _probe(JE_ARROW_MALLOC_CONF="narenas:2")
    assert mine["conf"] == "narenas:2" and mine["arrow"] == "jemalloc"
    system = _probe(ARROW_DEFAULT_MEMORY_POOL="system")
    assert system["pool"] == system["arrow"] == "system" and system["conf"] is None
