"""Process-wide allocator settings that keep streaming memory flat.

Two allocators keep freed memory for reuse by default, which with one block after another
means tens of MB of resident memory that nothing uses any more; streaming needs flat memory
more than the last percent of allocation speed. Both settings are process-wide, so the command
line applies them (:func:`lean_process`, before anything imports pyarrow) and the columnar fast
path applies what can still be applied when it starts in a library user's process.

* glibc malloc: its mmap threshold grows to 32 MB after the first large free, after which
  block-sized ``bytes`` (made in several threads) stay in per-thread arenas. Pinned at
  :data:`MMAP_THRESHOLD` (``mallopt(M_MMAP_THRESHOLD)``, as ``MALLOC_MMAP_THRESHOLD_`` would),
  they are mapped and unmapped instead. Same speed on both paths; 258k rows to JSON lines:
  fast path 1 MiB -> 256 KiB threshold ~5 MiB less peak RSS, row path ~3 MiB less.
* Arrow: pyarrow's default pool is mimalloc, and jemalloc as pyarrow configures it kept the
  Parquet writer's buffers in per-thread arenas and caches: 258k rows to Parquet peaked at
  185-199 MiB, against 103-110 MiB with the system allocator. But the system allocator maps
  every block-sized buffer fresh and unmaps it when freed: a third of the fast path's CPU was
  the kernel's (280k page faults for 500k CSV rows to plain JSON lines). jemalloc with one
  arena, no thread caches and freed pages kept for a second before they go back
  (:data:`JEMALLOC_CONF`) reuses them instead: 98k faults, kernel time 1.1 -> 0.6 s, the run
  10-27% faster, the same peak RSS to JSON lines (~90 MiB) but ~7 MiB more to Parquet
  (110 -> 117 MiB at 500k rows, over 100 MiB either way). glibc's heap
  for large blocks (mmap threshold 2-32 MiB) was as fast but peaked at 105-111 MiB. The CSV
  reader and the Parquet writer allocate from Arrow's C++ default pool, which
  ``pyarrow.set_memory_pool`` does not change: only ``ARROW_DEFAULT_MEMORY_POOL`` does, and
  only before pyarrow is imported; jemalloc reads :data:`JEMALLOC_CONF_ENV` when it starts.
  pyarrow bundles jemalloc on Linux only; elsewhere the system allocator is chosen.

And one collector setting, for speed (:func:`calm_collector`): the row path makes a few dicts
per row, which trips CPython's youngest-generation collection every 700 of them, and every so
often a full collection walks every object the program imported. A :data:`YOUNG_THRESHOLD` of
10,000 takes 300k JSON lines rows from 8.0 to 7.6 s (0.24 s of collections become 0.01 s).
Records are freed by reference counting, not by the collector, so memory is unchanged (35 MiB
either way).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
from typing import Final

#: Allocations at least this large are mmapped (and unmapped when freed).
MMAP_THRESHOLD: Final = 256 * 1024
#: glibc ``mallopt`` parameter number of ``M_MMAP_THRESHOLD``.
_M_MMAP_THRESHOLD: Final = -3
#: The variable Arrow reads (once, when pyarrow is loaded) to choose its default pool.
ARROW_POOL_ENV: Final = "ARROW_DEFAULT_MEMORY_POOL"
#: The variable Arrow's bundled jemalloc reads its options from, when it starts.
JEMALLOC_CONF_ENV: Final = "JE_ARROW_MALLOC_CONF"
#: One arena and no thread caches (freed memory is not held per thread), dirty pages kept
#: 1 s for reuse, then returned at once (no "muzzy" stage). 500k rows, peak RSS to JSON
#: lines: 1 arena 92.5 MiB, 2 arenas 99.4, thread caches on 99.8; a 5 s decay is no faster.
JEMALLOC_CONF: Final = "narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0"
#: Container allocations between two youngest-generation collections (CPython's default: 700).
YOUNG_THRESHOLD: Final = 10_000
_pinned = False


def pin_mmap_threshold() -> None:
    """Pin glibc's mmap threshold (unless ``MALLOC_MMAP_THRESHOLD_`` chose one); idempotent."""
    global _pinned
    if _pinned or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    _pinned = True
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to pin
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def calm_collector() -> None:
    """Collect young objects less often (the older generations keep their ratios)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def lean_process() -> None:
    """All three settings, for a process that has not imported pyarrow yet (the command line).

    A pool the user chose with ``ARROW_DEFAULT_MEMORY_POOL`` is kept, and so are jemalloc
    options given in ``JE_ARROW_MALLOC_CONF``."""
    if ARROW_POOL_ENV not in os.environ:
        if sys.platform == "linux":
            os.environ[ARROW_POOL_ENV] = "jemalloc"
            os.environ.setdefault(JEMALLOC_CONF_ENV, JEMALLOC_CONF)
        else:
            os.environ[ARROW_POOL_ENV] = "system"
    pin_mmap_threshold()
    calm_collector()


__all__ = [
    "ARROW_POOL_ENV",
    "JEMALLOC_CONF",
    "JEMALLOC_CONF_ENV",
    "MMAP_THRESHOLD",
    "YOUNG_THRESHOLD",
    "calm_collector",
    "lean_process",
    "pin_mmap_threshold",
]
