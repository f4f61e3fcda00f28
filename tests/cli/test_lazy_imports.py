"""``streamx convert`` and ``import streamx`` load only what they use.

The engine's network libraries (aiohttp, aioboto3/botocore, asyncssh), the worker's metrics and
pyarrow cost start-up time and tens of MiB of resident memory; a conversion of local files is
measured against a 100 MiB budget (benchmarks/RESULTS.md), so they must stay unloaded there.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiohttp", "aioboto3", "botocore", "asyncssh", "prometheus_client", "pyarrow")
PROBE = (
    "import sys, streamx\n"
    "from streamx.cli import build_parser\n"
    "argv = ['convert', 'in.csv', '--source', 'cordial', '--stream', 'contact_activity',"
    " '--out', 'out']\n"
    "build_parser(argv).parse_args(argv)\n"
    "import streamx.convert\n"
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
)


def test_the_convert_command_loads_no_network_library_and_no_pyarrow() -> None:
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


def test_public_names_still_resolve_and_are_the_real_objects() -> None:
    import streamx
    from streamx.engine.runner import Engine

    assert streamx.Engine is Engine
    assert set(streamx.__all__) <= set(dir(streamx))
    for name in streamx.__all__:
        assert getattr(streamx, name) is not None
